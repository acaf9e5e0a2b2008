"""Which negatives teach most (the paper's Figure 5): one Likra curve per negative kind, all with the same
positive head.

The learning curve's runs provide the positive head for every seed (a head does not depend on the other
being trained: same seed, same questions, same bytes). Each other kind trains a negative head alone on the
same questions in the same order, and only that head is scored; its numbers are joined to the positive
head's stored ones per checkpoint.

Layout under the curve's folder::

    ablate/<kind>/seed-<s>/step-<k>/negative/        likra train --heads negative
    scores/<task>-<split>/ablate/<kind>/seed-<s>/step-<k>.items.jsonl
    ablate.csv, ablate.json
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from likra import plots
from likra.checkpoints import list_checkpoints
from likra.errors import LikraError
from likra.evaluation import prepare, read_items
from likra.experiments.curve import CurveConfig, load_models, run_curve, score_checkpoint, scores_dir_of, stored_steps
from likra.files import write_csv, write_json
from likra.metrics import combine, correct, summarize_mode
from likra.models import LoadedModel
from likra.negatives import KINDS
from likra.progress import OnLoad, quiet
from likra.training import train

ABLATE_FIELDS = ["kind", "method", "examples", "seed", "accuracy", "n"]


def check_kinds(kinds: list[str]) -> list[str]:
    """``kinds``, when they name one known kind or more."""
    if not kinds:
        raise LikraError("--negatives: name at least one kind")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise LikraError(f"--negatives {','.join(unknown)}: unknown kind (known: {', '.join(KINDS)})")
    return kinds


def ablation_experiment(
    config: CurveConfig,
    kinds: list[str],
    out: str | Path,
    *,
    dtype: str = "auto",
    log: Callable[[str], None] = print,
    on_load: OnLoad = quiet,
) -> dict[str, Any]:
    """``likra ablate``: the kinds checked, the models loaded (``likra.experiments.curve.load_models``), then
    ``run_ablation``."""
    check_kinds(kinds)
    trainer, scorer = load_models(config.train, dtype, on_load)
    return run_ablation(trainer, scorer, config, kinds, out, log)


def run_ablation(
    trainer: LoadedModel,
    scorer: LoadedModel,
    config: CurveConfig,
    kinds: list[str],
    out: str | Path,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The curve first (it holds the positive heads), then a negative head per other kind; rows per kind in
    ``ablate.csv`` and ``ablate.json``, the figure in ``ablate.png``."""
    check_kinds(kinds)
    out = Path(out)
    run_curve(trainer, scorer, config, out, log)
    requests = prepare(config.eval_config())
    scores_dir = scores_dir_of(out, config)
    base = read_items(scores_dir / "base.items.jsonl")
    rows: list[dict[str, Any]] = []
    for kind in kinds:
        for seed in config.seeds:
            main = scores_dir / f"seed-{seed}"
            if kind == config.train.negatives:
                negative_scores = main
            else:
                run = out / "ablate" / kind / f"seed-{seed}"
                train_config = replace(config.train, seed=seed, negatives=kind, heads="negative")
                done = [k for k, _ in list_checkpoints(run)] if run.is_dir() else []
                if train_config.n not in done:
                    log(f"{kind}, seed {seed}: training the negative head in {run}")
                    train(trainer, train_config, run, resume=bool(done))
                negative_scores = scores_dir / "ablate" / kind / f"seed-{seed}"

                def said(line: str, kind: str = kind) -> None:  # the log lines name the kind
                    log(f"{kind}, {line}")

                for examples, path in list_checkpoints(run):  # waits for another process scoring the same
                    score_checkpoint(scorer, config, requests, base, negative_scores, examples, path, said, wait=True)
            rows += _kind_rows(kind, seed, main, negative_scores, config.neg_weight)
    write_csv(out / "ablate.csv", rows, ABLATE_FIELDS)
    summary = {"kinds": kinds, "seeds": config.seeds, "rows": rows}
    write_json(out / "ablate.json", summary)
    level = summarize_mode(base)[0]["acc_norm"]
    plot_ablation(rows, out / "ablate.png", f"negative kinds · {config.train.model}", {"base": level})
    return summary


def _kind_rows(kind: str, seed: int, positive_dir: Path, negative_dir: Path, neg_weight: float) -> list[dict]:
    """Likra and Base-Likra accuracy per checkpoint, the positive head's numbers joined to the kind's."""
    rows = []
    for examples, path in stored_steps(negative_dir):
        positive_path = positive_dir / path.name
        if not positive_path.is_file():
            continue
        positives, negatives = read_items(positive_path), read_items(path)
        if [p.id for p in positives] != [n.id for n in negatives]:
            raise ValueError(f"{path} and {positive_path} score different questions")
        joined = [
            replace(p, heads={"positive": p.heads["positive"], "negative": n.heads["negative"]}, heads_unconditional={})
            for p, n in zip(positives, negatives, strict=True)
        ]
        for method, mode in (("likra", "likra"), ("negbase", "negbase")):
            hits = correct([combine(s, mode, neg_weight) for s in joined], "acc_norm")
            rows.append(
                {
                    "kind": kind,
                    "method": method,
                    "examples": examples,
                    "seed": seed,
                    "accuracy": sum(hits) / len(hits),
                    "n": len(hits),
                }
            )
    return rows


# --- its figure --------------------------------------------------------------------------------------


def plot_ablation(
    rows: Sequence[dict[str, Any]], path: str | Path, title: str, levels: dict[str, float] | None = None
) -> Path:
    """One Likra curve per negative kind (mean and 95% band across seeds, log2 axis); ``levels`` flat."""
    fig, ax = plots.axes()
    for kind in dict.fromkeys(r["kind"] for r in rows):
        by_x: dict[int, list[float]] = defaultdict(list)
        for r in rows:
            if r["kind"] == kind and r["method"] == "likra":
                by_x[r["examples"]].append(r["accuracy"])
        plots.band(ax, by_x, plots.KIND_COLOURS.get(kind, "black"), "-", f"Likra, {kind} negatives")
    plots.levels(ax, levels)
    return plots.finish(fig, ax, path, title, plots.EXAMPLES_AXIS, "accuracy (acc_norm)", True)
