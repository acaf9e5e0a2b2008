"""Train Likra's two LoRA heads: a positive head on (question, correct answer) and a negative head on
(question, negative answer), on the same questions in the same order.

Read top to bottom: ``TrainConfig`` → ``build_training_set`` (pool → the first N questions of a seeded
order → answer pairs, built exactly as evaluation builds its requests) → ``schedule`` (batches that never
straddle a checkpoint) → ``train`` (pairs → token examples and a manifest) → ``fit``, the loop NAT's agent
training shares, split as a torchtune recipe: ``_set_up`` (order, schedule, heads, optimisers), ``_restore``
(from the checkpoint resumed from), the loop in ``_fit`` with ``_head_step`` (one optimiser step of one head),
``_tear_down``. The run folder's format (``save_checkpoint``, resume state, loading) is ``likra.checkpoints``.

The loop is written out rather than handed to ``transformers.Trainer`` because the two things that make it
fast (vocabulary logits only at answer positions; one body for two heads' optimisers) and the things that make
it safe (checkpoints named by examples seen, atomic saves, exact resume) are each a few lines here and a
fight with callbacks there. ``benchmarks/train_speed.py`` measures it against the Trainer recipe.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from likra import parallel
from likra.checkpoints import (
    FULL,
    HEADS,
    OPTIMIZER_STATE,
    PREFIX_HEAD,
    TRAIN_LOG,
    base_model_entry,
    list_checkpoints,
    load_full,
    manifest_of,
    prepare_out,
    quiet_peft,
    save_checkpoint,
    step_dir,
    truncate_log,
)
from likra.data import get_task
from likra.data.items import MCItem
from likra.data.pools import Pool, training_pool
from likra.data.prompts import ANSWER_PREFIXES, answer_pairs, build_requests
from likra.errors import LikraError
from likra.files import check_free, claim
from likra.models import DEFAULT_MODEL, LoadedModel, check_device, describe
from likra.negatives import KINDS, NEEDS_BASE_SCORES, Negative, make_negatives, unrelated_texts
from likra.options import TASK_HELP, data_dir_option, device_option, model_option, option
from likra.scoring import Scorer, encode_pairs, masked_hidden_states, output_logits
from likra.version import __version__

HEAD_CHOICES = {"both": HEADS, "positive": ("positive",), "negative": ("negative",)}
# Options that may differ between a run and its --resume without changing what is computed.
# (a run trained on a GPU resumes on the CPU; gradient checkpointing recomputes the same activations)
RESUME_FREE = ("data_dir", "device", "gradient_checkpointing")
# Options added after runs were made, with the value those runs had (so they still resume and extend).
ADDED_OPTIONS = {"method": "likra", "grad_accum": 1}


@dataclass(kw_only=True)  # configs are built with keywords
class LoopConfig:
    """The optimisation settings every training method shares (Likra's heads, NAT's agent)."""

    # constant; 1e-4 barely moves a 135M model's heads in a few hundred examples
    lr: float = option(1e-3, "Constant AdamW learning rate.")
    lora_r: int = option(8, "LoRA rank.")
    lora_alpha: int = option(8, "LoRA alpha.")
    lora_dropout: float = option(0.0, "LoRA dropout.")
    target_modules: list[str] = option(factory=lambda: ["gate_proj", "up_proj", "down_proj"],
                                       help="Module names (comma-separated) that get LoRA.")  # fmt: skip
    batch_size: int = option(8, "Examples per optimiser step (Likra: questions; NAT: trajectories).")
    micro_batch_size: int | None = option(None, "Examples per forward pass (gradient accumulation; default all).")
    grad_accum: int = option(1, "Forward passes per optimiser step (the batch split evenly; or --micro-batch-size).")
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass instead of keeping "
                                          "them (less memory, more time; the same numbers).")  # fmt: skip
    epochs: int = option(1, "Passes over the training examples.")
    seed: int = option(1234, "Seeds the data order and sample, the negatives and the LoRA initialisation.")
    save_at: list[int] | None = option(None, "Example counts to save at, comma-separated (default 8,16,32,...).")
    max_length: int = option(1024, "Longest example in tokens (the context is cut on the left).")
    # weights and optimiser keep the model's dtype
    bf16: bool = option(False, "bfloat16 autocast for forward and backward (weights and optimiser stay in --dtype).")
    device: str = device_option()

    def check_loop(self) -> None:
        """Reject impossible optimisation options before any work, naming the option."""
        positive = {
            "--batch-size": self.batch_size,
            "--micro-batch-size": self.micro_batch_size,
            "--grad-accum": self.grad_accum,
            "--epochs": self.epochs,
            "--lora-r": self.lora_r,
            "--max-length": self.max_length,
        }
        for name, value in positive.items():
            if value is not None and value < 1:
                raise LikraError(f"{name} {value}: must be 1 or more")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise LikraError(f"--lr {self.lr}: must be a positive number")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise LikraError(f"--lora-dropout {self.lora_dropout}: must be in [0, 1)")
        if not self.target_modules:
            raise LikraError("--target-modules: name at least one module")
        if self.grad_accum > 1 and self.micro_batch_size is not None:
            raise LikraError(f"--grad-accum {self.grad_accum}: give it or --micro-batch-size, not both")
        check_device(self.device)
        if self.save_at is not None and any(s < 1 for s in self.save_at):
            raise LikraError(f"--save-at {','.join(map(str, self.save_at))}: example counts must be 1 or more")


@dataclass(kw_only=True)
class TrainConfig(LoopConfig):
    """Everything that decides a Likra training run; ``likra train`` options map one to one. Paper defaults."""

    model: str = model_option(DEFAULT_MODEL)
    task: str = option("arc_challenge", TASK_HELP)
    eval_split: str | None = option(None, "The evaluation split kept out of the pool (default: the task's test split).",
                                    flags=("--split",))  # fmt: skip
    n: int | None = option(None, "Questions to train on (default: the whole pool).", flags=("--n",))
    negatives: str = option("incorrect", "incorrect, hardest, easiest, irrelevant, unrelated.")
    negatives_per_question: int = option(1, "Negative answers per question.")
    contamination: float = option(0.0, "Fraction of negatives replaced by the correct answer.")
    heads: str = option("both", "both, positive, negative.")
    data_dir: str | None = data_dir_option()
    train_file: str | None = option(None, "A JSONL pool in the task's format (needed for jsonl:).")
    hold_out: list[str] = option(factory=list, help="More evaluation sets kept out of the pool: task[:split], "
                                 "comma-separated.")  # fmt: skip
    method: str = option("likra", "likra (two LoRA heads) or prefix (one adapter on both kinds of answer, each "
                         "after a line saying which kind it is).")  # fmt: skip

    METHODS: ClassVar[tuple[str, ...]] = ("likra", "prefix")

    def check(self) -> None:
        """Reject impossible options before any work, naming the option."""
        if self.method not in self.METHODS:
            raise LikraError(f"--method {self.method}: expected one of {', '.join(self.METHODS)}")
        if self.method == "prefix" and self.heads != "both":
            raise LikraError(f"--heads {self.heads}: prefix Likra trains one adapter on both kinds of answer")
        if self.negatives not in KINDS:
            raise LikraError(f"--negatives {self.negatives}: unknown kind (known: {', '.join(KINDS)})")
        if self.heads not in HEAD_CHOICES:
            raise LikraError(f"--heads {self.heads}: expected one of {', '.join(HEAD_CHOICES)}")
        for name, value in {"--n": self.n, "--negatives-per-question": self.negatives_per_question}.items():
            if value is not None and value < 1:
                raise LikraError(f"{name} {value}: must be 1 or more")
        if not 0.0 <= self.contamination <= 1.0:
            raise LikraError(f"--contamination {self.contamination}: must be between 0 and 1")
        self.check_loop()

    @property
    def head_names(self) -> tuple[str, ...]:
        return (PREFIX_HEAD,) if self.method == "prefix" else HEAD_CHOICES[self.heads]


# --- data -------------------------------------------------------------------------------------------


@dataclass
class TrainingSet:
    """The questions in training order and, per question, its positive pair and its negative pairs."""

    questions: list[MCItem]
    positive: list[tuple[str, str]]
    negative: list[list[tuple[str, str]]]
    negatives: list[list[Negative]]
    pool: Pool

    def hash(self, questions: int | None = None) -> str:
        """Identity of the training data (prompts and answers, in order), recorded in every checkpoint; of its first
        ``questions`` only, to check that a run on fewer questions is a prefix of this one."""
        end = len(self.questions) if questions is None else questions
        payload = json.dumps([self.positive[:end], self.negative[:end]], ensure_ascii=False).encode()
        return "sha256:" + hashlib.sha256(payload).hexdigest()


def select_questions(config: TrainConfig, pool: Pool) -> list[MCItem]:
    """The first ``n`` questions of a seeded shuffle of the pool: a larger ``n`` extends a smaller one's list."""
    if config.n is not None and config.n > len(pool.items):
        raise LikraError(f"--n {config.n}: the training pool has only {len(pool.items)} questions")
    order = list(pool.items)
    random.Random(f"{config.seed}:questions").shuffle(order)
    return order[: config.n or len(order)]


def base_option_scores(loaded: LoadedModel, task: str, items: Sequence[MCItem]) -> dict[str, list[float]]:
    """The base model's per-character log-likelihood of every option (what ``hardest``/``easiest`` rank)."""
    from likra.evaluation import score_requests

    scorer = Scorer(loaded.model, loaded.tokenizer)
    scores = score_requests(scorer, build_requests(get_task(task), items), calibrate=False)
    return {s.id: [ll / max(n, 1) for ll, n in zip(s.loglikelihoods, s.n_chars, strict=True)] for s in scores}


def build_training_set(config: TrainConfig, loaded: LoadedModel | None = None, pool: Pool | None = None) -> TrainingSet:
    """Pool → questions → negatives → text pairs. ``loaded`` is needed only to mine hardest/easiest."""
    config.check()
    task = get_task(config.task)
    pool = pool or training_pool(task, config.eval_split, config.data_dir, config.train_file, config.hold_out)
    questions = select_questions(config, pool)
    base_scores = None
    if config.negatives in NEEDS_BASE_SCORES:
        if loaded is None:
            raise LikraError(f"--negatives {config.negatives} needs a model to rank the options")
        base_scores = base_option_scores(loaded, config.task, questions)
    foreign = unrelated_texts(task.name, config.data_dir) if config.negatives == "unrelated" else ()
    negatives = make_negatives(
        questions,
        config.negatives,
        k=config.negatives_per_question,
        contamination=config.contamination,
        seed=config.seed,
        base_scores=base_scores,
        others=pool.items,
        foreign_texts=foreign,
    )
    positive = [answer_pairs(task, q, [q.choices[q.label]])[0] for q in questions]
    negative = [
        answer_pairs(task, q, [n.text for n in negs]) if negs else []
        for q, negs in zip(questions, negatives, strict=True)
    ]
    return TrainingSet(questions, positive, negative, negatives, pool)


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


# --- model ------------------------------------------------------------------------------------------

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


def answer_example(context: list[int], answer: list[int]) -> Example:
    """A (context, answer) pair as an example trained on its answer tokens only (question masked, no EOS)."""
    return context + answer, [False] * len(context) + [True] * len(answer)


def answer_loss(model: Any, examples: Sequence[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, int]:
    """``token_loss`` of (context, answer) pairs."""
    return token_loss(model, [answer_example(c, a) for c, a in examples])


def encode_examples(
    tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int
) -> list[tuple[list[int], list[int]]]:
    """Tokenise as the scoring engine does (the answer tokens are the ones evaluation scores); longer examples
    lose the start of their context."""
    encoded = encode_pairs(tokenizer, pairs)
    out = []
    for context, answer in encoded:
        answer = answer[-max_length:]
        keep = max(max_length - len(answer), 1)
        out.append((context[-keep:], answer))
    return out


# --- resuming ---------------------------------------------------------------------------------------


def comparable_config(config: dict[str, Any]) -> dict[str, Any]:
    return {**ADDED_OPTIONS, **{k: v for k, v in config.items() if k not in RESUME_FREE}}


# --- the loop ---------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    out: Path
    checkpoints: list[Path]
    examples_seen: int
    losses: dict[str, float]  # mean per-token loss of the last interval, per head
    seconds: float
    resumed_from: int = 0


def train(
    loaded: LoadedModel,
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    data: TrainingSet | None = None,
    progress: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train the heads of ``config`` on ``loaded`` and write checkpoints under ``out`` (see the module doc)."""
    config.check()
    out = Path(out)
    if parallel.is_main():  # (the other processes of one launch share the main one's claim)
        check_free(out)  # refuse a folder in use, or a wrong one, before the (possibly slow) data building
    prepare_out(out, resume)
    data = data or build_training_set(config, loaded)
    examples = head_examples(loaded.tokenizer, config, data)
    manifest = training_manifest(config, data, loaded.tokenizer, list(config.head_names))
    heads = {h: examples[h] for h in config.head_names}
    extends = resume and _extends(out, config, data)
    return fit(loaded, config, heads, out, manifest, resume=resume, progress=progress, extends=extends)


def head_examples(tokenizer: Any, config: TrainConfig, data: TrainingSet) -> dict[str, list[list[Example]]]:
    """Per question, the positive head's one example and the negative head's (possibly several); for prefix Likra,
    the one adapter's: the positive after its kind's prefix, then the negatives after theirs (the prefix is
    context, so no loss is taken on it)."""

    def encoded(pairs: Sequence[tuple[str, str]], kind: str | None = None) -> list[Example]:
        if kind is not None:
            pairs = [(ANSWER_PREFIXES[kind] + context, answer) for context, answer in pairs]
        return [answer_example(*e) for e in encode_examples(tokenizer, pairs, config.max_length)]

    if config.method == "prefix":
        pairs = zip(data.positive, data.negative, strict=True)
        return {PREFIX_HEAD: [encoded([p], "positive") + encoded(n, "negative") for p, n in pairs]}
    return {"positive": [encoded([p]) for p in data.positive], "negative": [encoded(n) for n in data.negative]}


def _extends(out: Path, config: TrainConfig, data: TrainingSet) -> bool:
    """Whether ``--resume`` continues a run on fewer questions (a curve to a larger ``--max-n``): allowed when that
    run's questions and negatives are the first of this one's and its newest checkpoint falls between two batches
    of this run, so the continuation computes what a run made to the larger ``--n`` at once computes."""
    done = list_checkpoints(out)
    if not done:
        return False
    examples, path = done[-1]
    previous = manifest_of(path)
    before, now = previous["questions"], len(data.questions)
    if before == now:
        return False
    if before > now:
        raise LikraError(
            f"--n {now}: {out} holds a run on {before} questions; give --n {before} or more, or another --out"
        )
    if config.epochs != 1:
        raise LikraError(f"--epochs {config.epochs}: a run is extended to more questions only with --epochs 1")
    if previous["data"]["hash"] != data.hash(before):
        raise LikraError(f"--resume: the first {before} questions or their negatives differ from the run in {out}")
    batches = schedule(now, save_points(now, config.save_at), config.batch_size)
    if examples not in {b.stop for b in batches}:
        raise LikraError(
            f"--n {now}: {path.name} is not between two batches of a run to {now} questions "
            f"(--batch-size {config.batch_size}), so it cannot be continued exactly; pick another --out"
        )
    return True


def training_manifest(config: TrainConfig, data: TrainingSet, tokenizer: Any, heads: list[str]) -> dict[str, Any]:
    """What every checkpoint of a run records about it (the loop adds the base model and the counts)."""
    return {
        "format": "likra-checkpoint",
        "format_version": 1,
        "likra_version": __version__,
        "tokenizer": getattr(tokenizer, "name_or_path", None),
        "task": get_task(config.task).name,
        "eval_split": data.pool.eval_split,
        "heads": heads,
        "questions": len(data.questions),
        "config": asdict(config),
        "data": {
            "hash": data.hash(),
            "pool_size": len(data.pool.items),
            "dropped": len(data.pool.dropped),
            "sources": data.pool.sources,
            "held_out": data.pool.held_out,
            "question_ids": [q.id for q in data.questions],
        },
        "seed": config.seed,
    }


def fit(
    loaded: LoadedModel,
    config: LoopConfig,
    heads: dict[str, list[list[Example]]],
    out: Path,
    manifest: dict[str, Any],
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
    manifest: dict[str, Any]
    micro: int
    autocast: Any
    rank: int = 0
    size: int = 1
    main: bool = True


def _set_up(
    loaded: LoadedModel, config: LoopConfig, heads: dict[str, list[list[Example]]], manifest: dict[str, Any]
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
        manifest={**manifest, "base_model": base_model_entry(loaded), "hardware": describe(loaded)},
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
    manifest: dict[str, Any],
    resume: bool,
    progress: Callable[[int], None] | None,
    extends: bool,
) -> TrainResult:
    """Set up, restore, the loop (one step per head per batch, a checkpoint at each save point), tear down."""
    config.check_loop()
    resumed_from, last_good = prepare_out(out, resume)
    run = _set_up(loaded, config, heads, manifest)
    seen, step, checkpoints, start = 0, 0, [], time.perf_counter()
    try:
        if last_good is not None:
            _restore(run, last_good, extends)
            if run.main:
                truncate_log(out / TRAIN_LOG, resumed_from)
            if progress is not None:  # a progress bar over the whole run starts where the checkpoint left it
                progress(resumed_from)
        out.mkdir(parents=True, exist_ok=True)
        interval: dict[str, list[float]] = {h: [0.0, 0.0] for h in run.names}  # summed loss, trained tokens
        with (out / TRAIN_LOG).open("a") if run.main else open(os.devnull, "w") as log:
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
                log.write(json.dumps(record) + "\n")
                log.flush()
                if progress is not None:
                    progress(len(batch))
                if seen in run.points:
                    mean = {h: (s / n if n else None) for h, (s, n) in interval.items()}
                    if run.main:
                        entry = {**run.manifest, "examples_seen": seen, "steps": step, "loss": mean}
                        save_checkpoint(out, run.model, run.names, run.optimizers, entry, loaded.tokenizer)
                    last_good = step_dir(out, seen)
                    checkpoints.append(last_good)
                    interval = {h: [0.0, 0.0] for h in run.names}
    finally:
        _tear_down(run, loaded)
    parallel.barrier()  # the last checkpoint is on disk before any process reads it
    done = list_checkpoints(out)
    final_loss = manifest_of(done[-1][1])["loss"] if done else {}
    return TrainResult(out, checkpoints, seen, final_loss, time.perf_counter() - start, resumed_from)


def check_resumable(previous: dict[str, Any], current: dict[str, Any], path: Path, extends: bool = False) -> None:
    if previous["base_model"]["hash"] != current["base_model"]["hash"]:
        raise LikraError(f"--resume: {path} was trained on another base model ({previous['base_model']['name']})")
    old, new = comparable_config(previous["config"]), comparable_config(current["config"])
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and not (extends and k == "n"))
    if changed:
        raise LikraError(f"--resume: options differ from the run in {path.parent}: {', '.join(changed)}")
    if not extends and previous["data"]["hash"] != current["data"]["hash"]:
        raise LikraError(f"--resume: the training data differs from the run in {path.parent}")
