"""Evaluate a model on a multiple-choice task: items → requests → log-likelihoods → metrics → results."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from likra import parallel
from likra.checkpoints import HEADS, PREFIX_HEAD, load_heads, read_manifest, uses_prefix
from likra.data import build_requests, get_task, load_items
from likra.data.items import MCItem
from likra.data.prompts import TARGET_DELIMITER, ItemRequests, with_prefix
from likra.data.tasks import SAMPLERS
from likra.errors import LikraError
from likra.files import write_jsonl
from likra.metrics import (
    NORMS,
    ItemScores,
    available_modes,
    check_mode,
    check_mode_heads,
    check_norm,
    check_weight,
    summarize_mode,
)
from likra.models import LoadedModel, check_device, describe
from likra.options import TASK_HELP, batch_tokens_option, check_batch_tokens, data_dir_option, device_option, option
from likra.ptrue import add_ptrue
from likra.scoring import LogLikelihood, Scorer
from likra.verifier_metrics import verifier_table
from likra.version import __version__

T = TypeVar("T")


@dataclass(kw_only=True)  # configs are built with keywords
class EvalConfig:
    """What to evaluate; the CLI's ``likra eval`` options map one to one."""

    task: str = option("arc_challenge", TASK_HELP)
    split: str | None = option(None, "Split as in the data (default: the task's test split).")
    limit: int | None = option(None, "Only the first N items, in file order (lm-eval's --limit).")
    sample: int | None = option(None, "A seeded random sample of N items (kept in file order).")
    subjects: list[str] | None = option(None, "Only questions of these subjects (MMLU's, e.g. college_physics).")
    shots: int = option(0, "Few-shot examples from the training split.")
    fewshot_sampler: str | None = option(None, "first_n (the first K of the few-shot split, of the same subject: "
                                         "every question gets the same shots, a shared prefix scored once) or "
                                         "random (seeded per question); default: the task's (MMLU's first_n, "
                                         "the others' random).")  # fmt: skip
    seed: int = option(1234, "Seed of the few-shot examples and --sample.")
    data_dir: str | None = data_dir_option()
    batch_tokens: str = batch_tokens_option()
    device: str = device_option()
    shared_prefix: int = option(32, "Contexts sharing a prefix of this many tokens or more (MMLU's shots) compute "
                                "it once; 0: never (same numbers, slower).")  # fmt: skip
    # ~40% more scoring at 0 shots
    calibrate: bool = option(True, "Also score each answer after a bare 'Answer:' (acc_calibrated).")
    checkpoint: str | None = option(None, "A `likra train` folder or its step-K/: score its heads beside the base "
                                    "model.")  # fmt: skip
    mode: str | None = option(None, "likra (L+ - w·L-), sft (L+), negbase (Lbase - w·L-), posbase (L+ - Lbase), "
                              "base (default: the first of likra, sft, negbase the heads allow).")  # fmt: skip
    neg_weight: float = option(1.0, "w, the negative head's weight.")
    norm: str = option("char", "Headline normalisation: char (acc_norm), byte, token, none (acc).")
    p_true: bool = option(False, "Also score P(True) of every option (is this answer true? a verifier baseline), "
                          "under the base model and each head.")  # fmt: skip

    def check(self) -> None:
        """Refuse options that cannot work, before any data is read or model pass made."""
        self.batch_tokens = check_batch_tokens(self.batch_tokens)
        check_device(self.device)
        if self.shared_prefix < 0:
            raise LikraError(f"--shared-prefix {self.shared_prefix}: must be 0 or more")
        if self.fewshot_sampler not in (None, *SAMPLERS):
            raise LikraError(f"--fewshot-sampler {self.fewshot_sampler}: not one of {', '.join(SAMPLERS)}")
        if self.mode is not None:
            check_mode(self.mode)
        if self.mode not in (None, "base") and not self.checkpoint:
            raise LikraError(f"--mode {self.mode}: needs trained heads; give --checkpoint DIR")
        check_weight(self.neg_weight)
        check_norm(self.norm)


def scored_heads(manifest: dict[str, Any]) -> list[str]:
    """The heads a checkpoint's scores will have (prefix Likra's one adapter gives both)."""
    return list(HEADS) if uses_prefix(manifest) else list(manifest["heads"])


def check_checkpoint(config: EvalConfig, manifest: dict[str, Any]) -> None:
    """Refuse a mode the checkpoint's heads cannot give, before the scoring pass."""
    if manifest.get("format") == "likra-nat-checkpoint":
        raise LikraError(f"--checkpoint {config.checkpoint}: a NAT (agent) checkpoint; use likra nat eval")
    if config.mode is not None:
        check_mode_heads(config.mode, scored_heads(manifest), config.checkpoint or "the checkpoint")


@dataclass
class EvalResult:
    results: dict[str, Any]
    items: list[ItemScores]


def select_items(items: list[T], limit: int | None, sample: int | None, seed: int) -> list[T]:
    """The first ``limit`` items, or a seeded sample of ``sample`` kept in file order (questions or problems)."""
    if limit is not None and sample is not None:
        raise LikraError("--limit and --sample exclude each other")
    for name, value in (("--limit", limit), ("--sample", sample)):
        if value is not None and value <= 0:
            raise LikraError(f"{name} {value}: must be a positive number")
    if limit is not None:
        return items[:limit]
    if sample is not None and sample < len(items):
        keep = sorted(random.Random(seed).sample(range(len(items)), sample))
        return [items[i] for i in keep]
    return items


def of_subjects(items: list[MCItem], subjects: Sequence[str] | None, task: str) -> list[MCItem]:
    """The items of ``subjects`` (all of them when None); an unknown subject is refused, naming the known ones."""
    if not subjects:
        return items
    known = sorted({i.meta["subject"] for i in items if "subject" in i.meta})
    if not known:
        raise LikraError(f"--subjects: {task} questions have no subject")
    unknown = [s for s in subjects if s not in known]
    if unknown:
        raise LikraError(f"--subjects {','.join(unknown)}: not a subject of {task} (known: {', '.join(known)})")
    return [i for i in items if i.meta.get("subject") in subjects]


def score_requests(
    scorer: Scorer,
    requests: Sequence[ItemRequests],
    progress: Callable[[int], None] | None = None,
    calibrate: bool = True,
    base: Sequence[ItemScores] | None = None,
) -> list[ItemScores]:
    """Score every choice of every item, and the unconditional controls, in one engine call.

    ``base``: the base model's scores of the same requests from an earlier run; a scorer whose heads leave
    out "base" then runs only the trained heads (a learning curve scores the base model once, not per
    checkpoint)."""
    pairs = [(c, x) for r in requests for c, x in zip(r.contexts, r.continuations, strict=True)]
    n_conditional = len(pairs)
    if calibrate:
        pairs += [pair for r in requests for pair in r.unconditional]
    if scorer.heads:
        by_head = scorer.loglikelihoods_by_head(pairs, progress)
        values, trained = by_head.pop("base", None), by_head
    else:
        values, trained = scorer.loglikelihoods(pairs, progress), {}
    if values is None and (base is None or [b.id for b in base] != [r.item.id for r in requests]):
        raise LikraError("base scores are needed for the same questions in the same order (--base-items)")
    out, at = [], 0
    for i, r in enumerate(requests):
        k = len(r.continuations)
        answers = [c[len(TARGET_DELIMITER) :] for c in r.continuations]

        def logprobs(per_request: Sequence[LogLikelihood], offset: int, at: int = at, k: int = k) -> list[float]:
            return [v.logprob for v in per_request[offset + at : offset + at + k]]

        if values is None:
            assert base is not None
            if calibrate and not base[i].unconditional:
                raise LikraError("the base scores were made without calibration; add --no-calibrate")
            own = (base[i].loglikelihoods, base[i].unconditional if calibrate else [], base[i].n_tokens)
        else:
            own = (logprobs(values, 0), logprobs(values, n_conditional), [v.n_tokens for v in values[at : at + k]])
        out.append(
            ItemScores(
                id=r.item.id,
                label=r.item.label,
                loglikelihoods=own[0],
                unconditional=own[1],  # empty without calibration
                n_tokens=own[2],
                n_chars=[len(a) for a in answers],
                n_bytes=[len(a.encode("utf-8")) for a in answers],
                heads={head: logprobs(v, 0) for head, v in trained.items()},
                heads_unconditional={head: logprobs(v, n_conditional) for head, v in trained.items()}
                if calibrate
                else {},
            )
        )
        at += k
    return out


def engine(model: Any, tokenizer: Any, config: EvalConfig, heads: Sequence[str] | None) -> Scorer:
    """The scoring engine under ``heads`` with the evaluation's batch size and prefix sharing."""
    tokens = None if config.batch_tokens == "auto" else int(config.batch_tokens)
    return Scorer(model, tokenizer, batch_tokens=tokens, shared_prefix_from=config.shared_prefix, heads=heads)


def score_prefixed(
    model: Any,
    tokenizer: Any,
    requests: Sequence[ItemRequests],
    config: EvalConfig,
    progress: Callable[[int], None] | None = None,
    base: Sequence[ItemScores] | None = None,
) -> list[ItemScores]:
    """Prefix Likra: its one adapter scored after each kind's line, kept as the heads "positive" and "negative", so
    every mode applies unchanged (likra: L(a | correct) - w·L(a | wrong)); the base model on the plain requests."""
    passes = 2 if base is not None else 3
    share = (lambda n: progress(n / passes)) if progress is not None else None
    if base is None:
        plain = engine(model, tokenizer, config, ("base",))
        base = score_requests(plain, requests, share, config.calibrate)
    adapter = engine(model, tokenizer, config, (PREFIX_HEAD,))
    kinds = {k: score_requests(adapter, with_prefix(requests, k), share, config.calibrate, base) for k in HEADS}
    out = []
    for i, b in enumerate(base):
        heads = {k: kinds[k][i].heads[PREFIX_HEAD] for k in HEADS}
        controls = {k: kinds[k][i].heads_unconditional[PREFIX_HEAD] for k in HEADS} if config.calibrate else {}
        out.append(replace(b, heads=heads, heads_unconditional=controls))
    return out


def count_requests(requests: Sequence[ItemRequests], calibrate: bool = True, p_true: bool = False) -> int:
    """Requests the progress bar counts (each is scored under every head in the same pass; P(True) is two more
    per option)."""
    return (2 if calibrate else 1) * sum(len(r.continuations) for r in requests) + (
        2 * sum(len(r.item.choices) for r in requests) if p_true else 0
    )


def prepare(config: EvalConfig) -> list[ItemRequests]:
    """Read the task and build its requests (no model needed)."""
    config.check()
    task = get_task(config.task)
    if config.fewshot_sampler:
        task = replace(task, fewshot_sampler=config.fewshot_sampler)
    items = of_subjects(load_items(task, config.split, config.data_dir), config.subjects, task.name)
    items = select_items(items, config.limit, config.sample, config.seed)
    pool: list[MCItem] = []
    if config.shots:
        pool = load_items(task, task.fewshot_split, config.data_dir)
    return build_requests(task, items, config.shots, pool, config.seed)


def evaluate(
    loaded: LoadedModel,
    config: EvalConfig,
    requests: Sequence[ItemRequests] | None = None,
    progress: Callable[[int], None] | None = None,
    base: Sequence[ItemScores] | None = None,
) -> EvalResult:
    """Evaluate ``loaded`` on ``config.task``; ``requests`` may be passed when already prepared.

    With a checkpoint and ``base`` (the base model's items of the same evaluation), only the trained heads
    are run: a third less work per checkpoint."""
    requests = prepare(config) if requests is None else requests
    config.check()  # before the scoring, not after it
    if base is not None and not config.checkpoint:
        raise LikraError("--base-items: only with --checkpoint (it replaces the base model's pass)")
    model, checkpoint = loaded.model, None
    if config.checkpoint:
        check_checkpoint(config, read_manifest(config.checkpoint)[1])
        model, checkpoint = load_heads(loaded, config.checkpoint)
    try:
        start = time.perf_counter()
        # under `accelerate launch` each process scores every world-th question; all get every score back
        size = parallel.world()[1]
        local_base = parallel.shard(base) if base is not None else None
        advance = (lambda n: progress(n * size)) if progress is not None and size > 1 else progress
        mine = parallel.shard(requests)
        local = score_heads(model, loaded.tokenizer, checkpoint, mine, config, advance, local_base)
        if config.p_true:
            plain = replace(config, calibrate=False)
            local = add_ptrue(local, mine, lambda r, p: score_heads(model, loaded.tokenizer, checkpoint, r, plain, p),
                              advance)  # fmt: skip
        scores = parallel.gather(local)
        seconds = time.perf_counter() - start
    finally:
        if checkpoint is not None:
            model.unload()  # take the adapters out again: ``loaded.model`` is the plain base model afterwards
    mode = config.mode or available_modes(scores)[0]  # MODES lists likra, sft, negbase first
    results = summarize_results(scores, mode, config.neg_weight, config.norm)
    if checkpoint is not None:
        results["checkpoint"] = {
            "path": checkpoint["checkpoint"],
            "examples_seen": checkpoint["examples_seen"],
            "heads": checkpoint["heads"],
            "negatives": checkpoint["config"]["negatives"],
            "base_model_hash": checkpoint["base_model"]["hash"],
            "trained_on_eval_questions": trained_on(checkpoint, requests),
        }
    task = get_task(config.task)
    results = {
        "task": task.name,
        "split": config.split or task.default_split,
        "n": len(scores),
        "model": loaded.name,
        "model_path": loaded.path,
        **describe(loaded),
        "shots": config.shots,
        "seed": config.seed,
        "limit": config.limit,
        "sample": config.sample,
        **results,
        "seconds": round(seconds, 2),
        "likra_version": __version__,
    }
    return EvalResult(results, scores)


def score_heads(
    model: Any,
    tokenizer: Any,
    checkpoint: dict[str, Any] | None,
    requests: Sequence[ItemRequests],
    config: EvalConfig,
    progress: Callable[[int], None] | None = None,
    base: Sequence[ItemScores] | None = None,
) -> list[ItemScores]:
    """Score ``requests`` with the base model and, when ``checkpoint`` (its manifest, as ``load_heads`` returns it)
    is given, the heads it put on ``model``: prefix Likra's one adapter after each kind's line, else every head in
    one pass (only the heads when ``base`` holds the base model's scores already)."""
    if checkpoint is not None and uses_prefix(checkpoint):
        return score_prefixed(model, tokenizer, requests, config, progress, base)
    heads = None
    if checkpoint is not None:
        heads = tuple(checkpoint["heads"]) if base is not None else ("base", *checkpoint["heads"])
    scorer = engine(model, tokenizer, config, heads)
    return score_requests(scorer, requests, progress, config.calibrate, base)


def trained_on(checkpoint: dict[str, Any], requests: Sequence[ItemRequests]) -> int:
    """How many evaluation questions the checkpoint's heads were trained on (by id), e.g. ARC-Easy test
    questions under heads trained on the paper's ARC pool: those numbers measure memory, not learning."""
    seen = set(checkpoint["data"]["question_ids"][: checkpoint["examples_seen"]])
    return sum(r.item.id in seen for r in requests)


def summarize_results(
    scores: Sequence[ItemScores], mode: str = "base", neg_weight: float = 1.0, norm: str = "char"
) -> dict[str, Any]:
    """Metrics of ``mode`` (the headline), and of every mode the scores allow (they cost nothing more)."""
    check_norm(norm)
    check_weight(neg_weight)
    metrics, intervals = summarize_mode(scores, mode, neg_weight)
    return {
        "mode": mode,
        "neg_weight": neg_weight,
        "norm": norm,
        "accuracy": metrics[NORMS[norm]],
        "metrics": metrics,
        "ci95": intervals,
        "modes": {m: summarize_mode(scores, m, neg_weight)[0] for m in available_modes(scores)},
        "verifier": verifier_table(scores, neg_weight),  # each option scored on its own: AUROC, ...
    }


def write_items(path: str | Path, items: Sequence[ItemScores]) -> None:
    write_jsonl(path, (item.to_json() for item in items))


def _item_problem(item: ItemScores) -> str | None:
    """What is wrong with a stored row (a hand-edited or truncated file), or None: every list one number per
    choice, every number finite (a NaN would rank first), the label one of the choices."""
    required = (item.loglikelihoods, item.n_tokens, item.n_chars, item.n_bytes)
    lengths = [len(v) for v in required if isinstance(v, list)]
    n = max(set(lengths), key=lengths.count) if lengths else 0  # the choices: what most lists agree on
    lists = {"loglikelihoods": item.loglikelihoods, "unconditional": item.unconditional, "n_tokens": item.n_tokens,
             "n_chars": item.n_chars, "n_bytes": item.n_bytes}  # fmt: skip
    lists |= {f"heads.{h}": v for h, v in item.heads.items()}
    lists |= {f"heads_unconditional.{h}": v for h, v in item.heads_unconditional.items()}
    lists |= {f"p_true.{h}": v for h, v in item.p_true.items()}
    if n == 0:
        return "no log-likelihoods"
    for name, values in lists.items():
        optional = name.startswith("heads_unconditional") or name == "unconditional"  # empty without --calibrate
        if not isinstance(values, list) or (len(values) != n and not (optional and values == [])):
            return f"'{name}' should list {n} numbers, one per choice"
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            return f"'{name}' holds a value that is not a finite number"
    if not isinstance(item.label, int) or not 0 <= item.label < n:
        return f"label {item.label!r} is not one of the {n} choices"
    return None


def read_items(path: str | Path) -> list[ItemScores]:
    """Items written by ``write_items``; a malformed line names file and line."""
    from likra.data.items import read_jsonl

    items = []
    for number, row in read_jsonl(Path(path)):
        try:
            items.append(ItemScores.from_json(row))
            problem = _item_problem(items[-1])
        except (KeyError, TypeError, AttributeError) as err:
            raise LikraError(f"{path}:{number}: not an items.jsonl row ({err})") from None
        if problem:
            raise LikraError(f"{path}:{number}: {problem}")
    if not items:
        raise LikraError(f"{path}: no items")
    return items
