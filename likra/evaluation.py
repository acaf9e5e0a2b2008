"""Evaluate a model on a multiple-choice task: items → requests → log-likelihoods → metrics → results."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from likra import parallel
from likra.checkpoints import Checkpoint, Manifest
from likra.configs import EvalConfig
from likra.data import build_requests, get_task, load_items
from likra.data.items import MCItem, select_items
from likra.data.prompts import ItemRequests
from likra.errors import LikraError
from likra.files import check_outputs, write_json, write_jsonl
from likra.item_scores import ByHead, of_model, score_requests
from likra.metrics import (
    NORMS,
    ItemScores,
    available_modes,
    check_norm,
    check_weight,
    summarize_mode,
)
from likra.model_card import record_evaluation
from likra.models import DEFAULT_MODEL, LoadedModel, describe, load_model
from likra.progress import OnLoad, ProgressFactory, no_progress, quiet
from likra.ptrue import add_ptrue
from likra.scoring import Scorer
from likra.verifier_metrics import verifier_table
from likra.version import __version__


@dataclass
class EvalResult:
    results: dict[str, Any]
    items: list[ItemScores]


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


def scoring_options(config: EvalConfig) -> dict[str, Any]:
    """The scoring engine's batch budget and prefix sharing, as ``Checkpoint.open`` takes them."""
    tokens = None if config.batch_tokens == "auto" else int(config.batch_tokens)
    return {"batch_tokens": tokens, "shared_prefix": config.shared_prefix}


def open_checkpoint(
    config: EvalConfig, loaded: LoadedModel | None = None, model: str | None = None, dtype: str = "auto"
) -> Checkpoint:
    """``config.checkpoint`` opened to score with the evaluation's options (its mode checked before any model
    loads); on ``loaded`` when given, else on ``model`` or the base model it records."""
    assert config.checkpoint
    return Checkpoint.open(config.checkpoint, loaded=loaded, model=model, dtype=dtype, device=config.device,
                           mode=config.mode, **scoring_options(config))  # fmt: skip


def count_requests(requests: Sequence[ItemRequests], calibrate: bool = True, p_true: bool = False) -> int:
    """Requests the progress bar counts (each is scored under every head in the same pass; P(True) is two more
    per option)."""
    return (2 if calibrate else 1) * sum(len(r.continuations) for r in requests) + (
        2 * sum(len(r.item.choices) for r in requests) if p_true else 0
    )


def prepare(config: EvalConfig) -> list[ItemRequests]:
    """Read the task and build its requests (no model needed)."""
    task = get_task(config.task)
    if config.fewshot_sampler:
        task = replace(task, fewshot_sampler=config.fewshot_sampler)
    items = of_subjects(load_items(task, config.split, config.data_dir), config.subjects, task.name)
    items = select_items(items, config.limit, config.sample, config.seed)
    pool: list[MCItem] = []
    if config.shots:
        pool = load_items(task, task.fewshot_split, config.data_dir)
    return build_requests(task, items, config.shots, pool, config.seed)


def run_eval(
    config: EvalConfig,
    *,
    model: str = DEFAULT_MODEL,
    dtype: str = "auto",
    base_items: str | None = None,
    out: str | None = None,
    items_out: str | None = None,
    progress: ProgressFactory = no_progress,
    on_load: OnLoad = quiet,
) -> EvalResult:
    """``likra eval`` from start to end: its files checked and its data read (every error before the model
    loads), the model or ``config.checkpoint`` (on ``model`` when one is named, else on the base model it records)
    loaded, every request scored, and ``out`` (results JSON) and ``items_out`` (one line per question) written."""
    user_file = config.task.removeprefix("jsonl:") if config.task.startswith("jsonl:") else None
    check_outputs({"--out": out, "--items-out": items_out}, {"--task": user_file, "--base-items": base_items})
    requests = prepare(config)
    base = read_items(base_items) if base_items else None
    check_base_items(base, bool(config.checkpoint))
    given = None if model == DEFAULT_MODEL else model  # the checkpoint's own base model unless told
    source = open_checkpoint(config, model=given, dtype=dtype) if config.checkpoint else (
        load_model(model, dtype=dtype, device=config.device))  # fmt: skip
    on_load(source.loaded if isinstance(source, Checkpoint) else source)
    total = count_requests(requests, config.calibrate, config.p_true)
    try:
        with progress(total, f"scoring {len(requests)} questions") as advance:
            result = evaluate(source, config, requests, advance, base)
    finally:  # the caller's model comes back without adapters, whatever happened
        if isinstance(source, Checkpoint):
            source.close()
    if parallel.is_main():  # under `accelerate launch`, every process holds the gathered results; one writes them
        if isinstance(source, Checkpoint):  # its model card shows the numbers
            record_evaluation(source.path, source.manifest, result.results)
        if out:
            write_json(out, result.results)
        if items_out:
            write_items(items_out, result.items)
    return result


def check_base_items(base: Sequence[ItemScores] | None, checkpoint: bool) -> None:
    if base is not None and not checkpoint:
        raise LikraError("--base-items: only with --checkpoint (it replaces the base model's pass)")


def evaluate(
    model: LoadedModel | Checkpoint,
    config: EvalConfig,
    requests: Sequence[ItemRequests] | None = None,
    progress: Callable[[float], None] | None = None,
    base: Sequence[ItemScores] | None = None,
) -> EvalResult:
    """Evaluate ``model`` on ``config.task`` (with ``config.checkpoint``'s heads on it, opened and closed here, or
    an open ``Checkpoint``'s); ``requests`` may be passed when already prepared.

    With a checkpoint and ``base`` (the base model's items of the same evaluation), only the trained heads
    are run: a third less work per checkpoint."""
    requests = prepare(config) if requests is None else requests
    check_base_items(base, bool(config.checkpoint) or isinstance(model, Checkpoint))
    if isinstance(model, Checkpoint) or not config.checkpoint:
        return _evaluate(model, config, requests, progress, base)
    with open_checkpoint(config, loaded=model) as checkpoint:
        return _evaluate(checkpoint, config, requests, progress, base)


def _evaluate(
    source: LoadedModel | Checkpoint,
    config: EvalConfig,
    requests: Sequence[ItemRequests],
    progress: Callable[[float], None] | None,
    base: Sequence[ItemScores] | None,
) -> EvalResult:
    start = time.perf_counter()
    # under `accelerate launch` each process scores every world-th question; all get every score back
    size = parallel.world()[1]
    local_base = parallel.shard(base) if base is not None else None
    advance = (lambda n: progress(n * size)) if progress is not None and size > 1 else progress
    mine = parallel.shard(requests)
    local = score_heads(source, mine, config, advance, local_base)
    if config.p_true:
        plain = replace(config, calibrate=False)
        local = add_ptrue(local, mine, lambda r, p: score_heads(source, r, plain, p), advance)
    scores = parallel.gather(local)
    seconds = time.perf_counter() - start
    mode = config.mode or available_modes(scores)[0]  # MODES lists likra, sft, negbase first
    results = summarize_results(scores, mode, config.neg_weight, config.norm)
    loaded = source.loaded if isinstance(source, Checkpoint) else source
    if isinstance(source, Checkpoint):
        results["checkpoint"] = {**source.manifest.describe(source.path),
                                 "trained_on_eval_questions": trained_on(source.manifest, requests)}  # fmt: skip
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
    source: LoadedModel | Checkpoint,
    requests: Sequence[ItemRequests],
    config: EvalConfig,
    progress: Callable[[float], None] | None = None,
    base: Sequence[ItemScores] | None = None,
) -> list[ItemScores]:
    """Score ``requests`` with a model, or with a checkpoint's base model and heads (only the heads when ``base``
    holds the base model's scores already)."""
    if isinstance(source, Checkpoint):
        heads = tuple(source.scored_heads) if base is not None else ("base", *source.scored_heads)
        by_head: ByHead = lambda pairs, p: source.loglikelihoods(pairs, p, heads=heads)  # noqa: E731
    else:
        options = scoring_options(config)
        by_head = of_model(Scorer(source.model, source.tokenizer, batch_tokens=options["batch_tokens"],
                                  shared_prefix_from=options["shared_prefix"]))  # fmt: skip
    return score_requests(by_head, requests, progress, config.calibrate, base)


def trained_on(manifest: Manifest, requests: Sequence[ItemRequests]) -> int:
    """How many evaluation questions the checkpoint's heads were trained on (by id), e.g. ARC-Easy test
    questions under heads trained on the paper's ARC pool: those numbers measure memory, not learning."""
    seen = manifest.trained_ids()
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


def rescore(items: str, mode: str = "likra", neg_weight: float = 1.0, norm: str = "char",
            out: str | None = None) -> dict[str, Any]:  # fmt: skip
    """``likra rescore``: the metrics of any mode and weight from a stored items file (no model); written to
    ``out`` when given."""
    check_outputs({"--out": out}, {"ITEMS": items})
    scores = read_items(items)
    results = {"items": items, "n": len(scores), **summarize_results(scores, mode, neg_weight, norm)}
    if out:
        write_json(out, results)
    return results


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
