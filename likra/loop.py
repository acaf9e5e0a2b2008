"""The training loop every method shares: Likra's heads (``likra.training``), NAT's agent (``likra.nat.training``)
and, for their checkpoints and resume checks, the TRL baselines (``likra.baselines``).

Read top to bottom, a torchtune recipe: ``fit`` claims the run folder, then ``_fit`` runs ``_set_up`` (order,
schedule, heads, optimisers), ``_restore`` (from the checkpoint resumed from), the loop with ``_head_step`` (one
optimiser step of one head) and a checkpoint at each save point, and ``_tear_down``. A method builds its examples
(token ids and, per token, whether the loss is taken on it) and a manifest, and calls ``fit``; the run folder's
format (``save_checkpoint``, resume state) is ``likra.checkpoints``.

The loop is written out rather than handed to ``transformers.Trainer`` because the two things that make it
fast (vocabulary logits only at answer positions; one body for two heads' optimisers) and the things that make
it safe (checkpoints named by examples seen, atomic saves, exact resume) are each a few lines here and a
fight with callbacks there. ``benchmarks/train_speed.py`` measures it against the Trainer recipe.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from likra import parallel
from likra.checkpoints import (
    FULL,
    OPTIMIZER_STATE,
    Manifest,
    base_model_entry,
    check_resumable,
    list_checkpoints,
    load_full,
    manifest_of,
    prepare_out,
    quiet_peft,
    save_checkpoint,
    step_dir,
)
from likra.configs import LoopConfig
from likra.errors import LikraError
from likra.files import claim
from likra.models import LoadedModel, describe
from likra.scoring import masked_hidden_states, output_logits
from likra.training_log import training_log

# --- schedule ---------------------------------------------------------------------------------------


def save_points(total: int, save_at: Sequence[int] | None = None) -> list[int]:
    """Examples seen at which to save: 8, 16, 32, ... below ``total`` (or ``save_at``), and ``total``."""
    if save_at is None:
        points, p = [], 8
        while p < total:
            points.append(p)
            p *= 2
    else:
        points = [p for p in save_at if p < total]
    return [*sorted(set(points)), total]


def schedule(total: int, points: Sequence[int], batch_size: int) -> list[range]:
    """Batches of example positions, in order. A batch never straddles a save point, so a checkpoint named
    step-K has seen exactly the first K examples whatever the batch size (the last batch before a point may be
    smaller). No grouping by length is needed: a batch is packed into one row without padding."""
    batches: list[range] = []
    start = 0
    for end in points:
        batches += [range(i, min(i + batch_size, end)) for i in range(start, end, batch_size)]
        start = end
    assert start == total
    return batches


def steps_within(batches: Sequence[range], examples: int) -> int:
    """The optimiser steps of a schedule that fall within its first ``examples`` examples."""
    seen = 0
    for step, batch in enumerate(batches):
        seen += len(batch)
        if seen > examples:
            return step
    return len(batches)


# --- the model and its heads ------------------------------------------------------------------------------------------

Example = tuple[list[int], list[bool]]  # token ids and, per token, whether the loss is taken on it


def attach_heads(model: Any, config: LoopConfig, heads: Sequence[str]) -> Any:
    """Wrap ``model`` in peft with one LoRA adapter per head, each initialised from ``config.seed``."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        with (
            quiet_peft(),
            torch.random.fork_rng(devices=[]),
        ):  # peft draws the initial A matrices from the global generator
            torch.manual_seed(config.seed)
            peft_model = get_peft_model(model, lora, adapter_name=heads[0])
            for head in heads[1:]:
                torch.manual_seed(config.seed)
                peft_model.add_adapter(head, lora)
    except ValueError as err:
        if "not found in the base model" in str(err) or "Target modules" in str(err):
            raise LikraError(f"--target-modules {','.join(config.target_modules)}: not found in the model") from None
        raise
    return peft_model


def checkpointing(model: Any, on: bool) -> None:
    """Turn activation (gradient) checkpointing on or off under the name the installed transformers has: 5.2x
    renamed ``gradient_checkpointing_*`` to ``activation_checkpointing_*`` (the old names warn). Non-reentrant, so
    LoRA's frozen inputs need no ``requires_grad``."""
    prefix = "activation" if hasattr(model, "activation_checkpointing_enable") else "gradient"
    if on:
        getattr(model, f"{prefix}_checkpointing_enable")({"use_reentrant": False})
    elif is_checkpointing(model):
        getattr(model, f"{prefix}_checkpointing_disable")()


def is_checkpointing(model: Any) -> bool:
    return any(getattr(module, "gradient_checkpointing", False) for module in model.modules())


def head_parameters(model: Any, head: str) -> list[torch.nn.Parameter]:
    if head == FULL:
        return list(model.parameters())
    return [p for name, p in model.named_parameters() if f".{head}." in name]


def token_loss(model: Any, examples: Sequence[Example]) -> tuple[torch.Tensor, int]:
    """Summed negative log-likelihood of the flagged tokens (each predicted from the tokens before it), and
    their count.

    The examples are packed into one row without padding: each attends causally to itself only (a
    block-diagonal mask, position ids restarting per example), which costs what the real tokens cost whatever
    the spread of lengths. The LM head runs only at the positions that predict a flagged token."""
    ids, positions, cols, targets = [], [], [], []
    blocks = []
    for tokens, flags in examples:
        start = len(ids)
        inputs = tokens[:-1]  # the last token is only ever a target
        ids += inputs
        positions += range(len(inputs))
        trained = [t for t in range(1, len(tokens)) if flags[t]]
        cols += [start + t - 1 for t in trained]
        targets += [tokens[t] for t in trained]
        blocks.append(torch.ones(len(inputs), len(inputs), dtype=torch.bool).tril())
    allowed = torch.block_diag(*blocks)[None]
    hidden = masked_hidden_states(model, torch.tensor([ids]), torch.tensor([positions]), allowed)
    logits = output_logits(model, hidden[0, torch.tensor(cols, device=hidden.device)])
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(targets, device=logits.device), reduction="sum")
    return loss, len(targets)


# --- the loop ---------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    out: Path
    checkpoints: list[Path]
    examples_seen: int
    losses: dict[str, float]  # mean per-token loss of the last interval, per head
    seconds: float
    resumed_from: int = 0


def fit(
    loaded: LoadedModel,
    config: LoopConfig,
    heads: dict[str, list[list[Example]]],
    out: Path,
    manifest: Manifest,
    *,
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
    extends: bool = False,
) -> TrainResult:
    """The training loop every method shares. ``heads[h][i]`` are the examples head ``h`` learns from at position
    ``i`` (one question or trajectory; a Likra negative head may have several per question). Heads are LoRA
    adapters on one frozen body, or the one head ``FULL`` (all weights train). Writes ``out/step-K`` at the
    save points, ``K`` counting positions seen; ``manifest`` (with ``config`` and ``data.hash``) goes in each.
    ``extends``: the run resumed from was on fewer positions, checked by the caller to be a prefix of these.
    ``progress(n)`` is told the positions each step adds (a resumed run first those its checkpoint holds).
    ``out`` is claimed for the run (``likra.files.claim``): a second writer is refused."""
    with claim(out) if parallel.is_main() else nullcontext():
        return _fit(loaded, config, heads, out, manifest, resume, progress, extends)


@dataclass
class _Run:
    """Everything the loop reads, set up once (the recipe's state, as torchtune keeps it on the recipe)."""

    model: Any
    names: list[str]
    full: bool
    params: dict[str, list[torch.nn.Parameter]]
    optimizers: dict[str, torch.optim.Optimizer]
    sequence: list[int]  # position i (across epochs) → example index
    points: list[int]
    batches: list[range]
    manifest: Manifest
    micro: int
    autocast: Any
    rank: int = 0
    size: int = 1
    main: bool = True


def _set_up(
    loaded: LoadedModel, config: LoopConfig, heads: dict[str, list[list[Example]]], manifest: Manifest
) -> _Run:
    """The order of positions, the schedule, the heads on the model and one optimiser per head."""
    names = list(heads)
    full = names == [FULL]
    # epoch 0 keeps the given order, later epochs reshuffle
    n_items = len(next(iter(heads.values())))
    sequence = list(range(n_items))
    for epoch in range(1, config.epochs):
        again = list(range(n_items))
        random.Random(f"{config.seed}:epoch:{epoch}").shuffle(again)
        sequence += again
    points = save_points(len(sequence), config.save_at)
    if config.gradient_checkpointing:
        checkpointing(loaded.model, True)
    model = loaded.model if full else attach_heads(loaded.model, config, names)
    model.train()  # dropout, when asked for; in LoRA runs the base weights stay frozen
    params = {h: head_parameters(model, h) for h in names}
    rank, size = parallel.world()  # under `accelerate launch`: each process takes a share of every batch
    return _Run(
        model=model,
        names=names,
        full=full,
        params=params,
        optimizers={h: torch.optim.AdamW(params[h], lr=config.lr, weight_decay=0.0) for h in names},
        sequence=sequence,
        points=points,
        batches=schedule(len(sequence), points, config.batch_size),
        manifest=replace(manifest, base_model=base_model_entry(loaded), hardware=describe(loaded)),
        micro=config.micro_batch_size or math.ceil(config.batch_size / config.grad_accum),
        autocast=torch.autocast(model.device.type, torch.bfloat16) if config.bf16 else nullcontext(),
        rank=rank,
        size=size,
        main=parallel.is_main(),
    )


def _restore(run: _Run, resume_path: Path, extends: bool) -> None:
    """Heads and optimisers from the checkpoint resumed from, after checking that it is this run's."""
    from peft import set_peft_model_state_dict
    from peft.utils import load_peft_weights

    check_resumable(manifest_of(resume_path), run.manifest, resume_path, extends)
    # onto the CPU first (a run trained on a GPU resumes anywhere); the optimiser moves it to its parameters' device
    state = torch.load(resume_path / OPTIMIZER_STATE, weights_only=True, map_location="cpu")
    for head in run.names:
        if run.full:
            load_full(run.model, resume_path / FULL)
        else:
            set_peft_model_state_dict(run.model, load_peft_weights(str(resume_path / head)), adapter_name=head)
        run.optimizers[head].load_state_dict(state[head])


def _head_step(run: _Run, head: str, chosen: list[Example], where: str) -> tuple[float, int] | None:
    """One optimiser step of one head on a batch's examples: (summed loss, trained tokens), or None when the
    batch has nothing for it to learn. ``where`` names the last good checkpoint for the error on a NaN."""
    chosen = [e for e in chosen if any(e[1][1:])]  # nothing to learn from an example without targets
    if not chosen:
        return None
    if not run.full:
        run.model.set_adapter(head)  # only this head's weights take gradients
    n_tokens = sum(sum(flags[1:]) for _, flags in chosen)  # over all processes' shares
    local = chosen[run.rank :: run.size]
    total_loss = 0.0
    for j in range(0, len(local), run.micro):
        with run.autocast:
            loss_sum, _ = token_loss(run.model, local[j : j + run.micro])
        (loss_sum / n_tokens).backward()
        total_loss += loss_sum.item()
    parallel.all_reduce_gradients(run.params[head])
    total_loss = parallel.all_reduce_sum(total_loss, run.params[head][0].device)
    if not math.isfinite(total_loss):
        raise LikraError(f"training stopped: the {head} head's loss became {total_loss} {where}")
    run.optimizers[head].step()
    run.optimizers[head].zero_grad(set_to_none=True)
    return total_loss, n_tokens


def _tear_down(run: _Run, loaded: LoadedModel) -> None:
    """Give the caller back the plain base model (peft wrapped it in place)."""
    if not run.full:
        run.model.unload()
    checkpointing(loaded.model, False)
    loaded.model.eval()


def _fit(
    loaded: LoadedModel,
    config: LoopConfig,
    heads: dict[str, list[list[Example]]],
    out: Path,
    manifest: Manifest,
    resume: bool,
    progress: Callable[[int], None] | None,
    extends: bool,
) -> TrainResult:
    """Set up, restore, the loop (one step per head per batch, a checkpoint at each save point), tear down."""
    resumed_from, last_good = prepare_out(out, resume)
    run = _set_up(loaded, config, heads, manifest)
    seen, step, checkpoints, start = 0, 0, [], time.perf_counter()
    try:
        if last_good is not None:
            _restore(run, last_good, extends)
            if progress is not None:  # a progress bar over the whole run starts where the checkpoint left it
                progress(resumed_from)
        out.mkdir(parents=True, exist_ok=True)
        interval: dict[str, list[float]] = {h: [0.0, 0.0] for h in run.names}  # summed loss, trained tokens
        first_step = 1 + steps_within(run.batches, resumed_from)
        logs = run.main and resumed_from < len(run.sequence)  # a finished run resumed writes nothing
        log = training_log(out, config.report_to, resumed_from=resumed_from, first_step=first_step,
                           config=run.manifest.config) if logs else nullcontext(lambda record: None)  # fmt: skip
        with log as write:
            for batch in run.batches:
                seen, step = seen + len(batch), step + 1
                if seen <= resumed_from:  # replaying the schedule up to the checkpoint (nothing is computed)
                    continue
                tick, losses = time.perf_counter(), {}
                where = f"at example {seen} (try a lower --lr); " + (
                    f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written"
                )
                for head in run.names:
                    done = _head_step(run, head, [e for i in batch for e in heads[head][run.sequence[i]]], where)
                    if done is not None:
                        losses[head] = done[0] / done[1]
                        interval[head] = [interval[head][0] + done[0], interval[head][1] + done[1]]
                record = {"step": step, "examples": seen, "loss": losses,
                          "examples_per_s": round(len(batch) / (time.perf_counter() - tick), 3)}  # fmt: skip
                write(record)
                if progress is not None:
                    progress(len(batch))
                if seen in run.points:
                    mean = {h: (s / n if n else None) for h, (s, n) in interval.items()}
                    if run.main:
                        entry = replace(run.manifest, examples_seen=seen, steps=step, loss=mean)
                        save_checkpoint(out, run.model, run.names, run.optimizers, entry, loaded.tokenizer)
                    last_good = step_dir(out, seen)
                    checkpoints.append(last_good)
                    interval = {h: [0.0, 0.0] for h in run.names}
    finally:
        _tear_down(run, loaded)
    parallel.barrier()  # the last checkpoint is on disk before any process reads it
    done = list_checkpoints(out)
    final_loss = (manifest_of(done[-1][1]).loss or {}) if done else {}
    return TrainResult(out, checkpoints, seen, final_loss, time.perf_counter() - start, resumed_from)
