"""Learning curves: SFT, Likra and Base-Likra against examples seen, over several seeds (the paper's
Figures 1 and 3), with the calibration control and paired significance.

One training run per seed (both heads, data order from the seed) writes checkpoints at 8, 16, ..., N; the
base model is scored once on the evaluation split, and each checkpoint's heads once more (``base=``), so
every method at every N comes from stored per-item numbers. Every piece of work is a file; a re-run skips
the files that exist.

Layout of ``out``::

    runs/seed-<s>/step-<k>/...                      likra train
    runs/<dpo|kto>-seed-<s>/step-<k>/...            likra baseline (with --methods ...,dpo,kto)
    runs/prefix-seed-<s>/step-<k>/...               likra train --method prefix (with --methods ...,prefix)
    scores/<task>-<split>/eval.json                 the evaluation set (task, split, n, limit, sample)
    scores/<task>-<split>/base.items.jsonl          the base model, once
    scores/<task>-<split>/seed-<s>/step-<k>.items.jsonl
    scores/<task>-<split>/<dpo|kto|prefix>-seed-<s>/step-<k>.items.jsonl
    curve.csv, curve.json                           one row per evaluation set x method x examples x seed

DPO and KTO (``likra.baselines``, trained by TRL on the same questions, negatives and seeds) are one more run
per seed each; their policy is scored as a head, so ``dpo`` is its likelihood (mode sft) and ``dpo_reward`` its
implicit reward (mode posbase, ``L_policy - L_base``). Prefix Likra (one adapter, each answer after a line saying
which kind it is) is one more run per seed: ``prefix`` is ``L(a | correct line) - w·L(a | wrong line)``,
``prefix_sft`` the first term alone (NAT's way: ask for the correct kind).

Several evaluation sets may share the runs (``--eval-task arc_easy`` after the ARC-Challenge curve), provided
the training pool keeps each of them out (``--hold-out``); ``check_held_out`` refuses otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from likra import plots
from likra.artefacts import EvalSet, read_stored
from likra.baselines import train_baseline
from likra.checkpoints import list_checkpoints
from likra.configs import CURVE_METHODS, LIKRA_METHODS, OTHER_RUNS, CurveConfig, TrainConfig
from likra.data import get_task
from likra.data.items import MCItem
from likra.data.pools import training_pool
from likra.data.prompts import ItemRequests
from likra.errors import LikraError
from likra.evaluation import evaluate, prepare, read_items, write_items
from likra.files import FolderInUse, claim, write_csv, write_json
from likra.metrics import ItemScores, argmax, available_modes, mcnemar_exact
from likra.models import LoadedModel, describe, load_model, pick_dtype
from likra.progress import OnLoad, quiet
from likra.training import train
from likra.verifier_metrics import (
    PTRUE_METHODS,
    VERIFIER_FIELDS,
    available_methods,
    method_scores,
    option_scores,
    verifier_metrics,
)

METHODS = CURVE_METHODS  # the curves of Likra's own runs (configs.py: with the baselines' and prefix's)
DEFAULT_METHODS = list(LIKRA_METHODS)
# Likra is compared, item by item, with these (exact McNemar p-values in the CSV); each baseline with Likra
PAIRED = ("sft", "sft_calibrated")
EVAL_SET = "eval.json"  # in each scores/<task>-<split>/: which questions were scored
P_FIELDS = [f"p_vs_{m}" for m in (*PAIRED, "likra")]
CSV_FIELDS = ["task", "split", "method", "examples", "seed", "accuracy", "n", *P_FIELDS, *VERIFIER_FIELDS]


def scores_dir_of(out: Path, config: CurveConfig) -> Path:
    task = get_task(config.eval_task or config.train.task)
    split = config.eval_split or task.default_split
    return out / "scores" / f"{task.name.replace(':', '_').replace('/', '_')}-{split}"


def load_models(training: TrainConfig, dtype: str = "auto", on_load: OnLoad = quiet) -> tuple[LoadedModel, LoadedModel]:
    """The model that trains (in float32 on the CPU, the reference) and the one that scores: the same, unless
    ``dtype`` asks for another (bfloat16 where the CPU computes it natively; see ``likra.models.pick_dtype``)."""
    trainer = load_model(training.model, device=training.device, training=True)
    wanted = str(pick_dtype(dtype, trainer.device)).removeprefix("torch.")
    scorer = trainer if wanted == trainer.dtype else load_model(training.model, dtype=dtype, device=trainer.device)
    on_load(trainer, "training")
    if scorer is not trainer:
        on_load(scorer, "scoring")
    return trainer, scorer


def curve_experiment(
    config: CurveConfig,
    out: str | Path,
    *,
    dtype: str = "auto",
    figure: str | Path | None = None,
    title: str | None = None,
    log: Callable[[str], None] = print,
    on_load: OnLoad = quiet,
) -> dict[str, Any]:
    """``likra curve``: the models loaded (``load_models``), then ``run_curve``."""
    trainer, scorer = load_models(config.train, dtype, on_load)
    return run_curve(trainer, scorer, config, out, log, figure=figure, title=title)


def run_curve(
    trainer: LoadedModel,
    scorer: LoadedModel,
    config: CurveConfig,
    out: str | Path,
    log: Callable[[str], None] = print,
    *,
    figure: str | Path | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Train what is missing, score what is missing, and write ``curve.csv``, ``curve.json`` and the figure
    (``figure``, default ``out/curve.png``: the methods and seeds of ``config``), and the verifier curve in
    ``out/verifier.png`` (AUROC and hard AUROC against examples).

    ``trainer`` trains (float32 is the reference); ``scorer`` scores and may be the same model or a
    bfloat16 copy of it (same weight files, so checkpoints accept it). The outputs cover every evaluation
    set scored in ``out`` so far: a second run with another ``eval_task`` adds its curves to the same runs."""
    out = Path(out)
    requests = prepare(config.eval_config())  # data errors before any work
    check_held_out(config, [r.item for r in requests])
    scores_dir = scores_dir_of(out, config)
    base_path = scores_dir / "base.items.jsonl"
    with claim(scores_dir, wait=True, lock=".base.lock"):  # every piece needs it: wait for whoever scores it
        if not done(base_path, config):
            log(f"scoring the base model on {len(requests)} questions")
            write_items(base_path, evaluate(scorer, config.eval_config(), requests).items)
    eval_config = config.eval_config()
    task = get_task(eval_config.task)
    description = {"task": task.name, "split": eval_config.split or task.default_split, "n": len(requests),
                   "limit": config.limit, "sample": config.sample}  # fmt: skip
    write_json(scores_dir / EVAL_SET, description)
    base = read_items(base_path)
    if _run_pieces(trainer, scorer, config, out, requests, base, log, wait=False):
        log("waiting for the pieces that other processes hold, then finishing what they leave")
        _run_pieces(trainer, scorer, config, out, requests, base, log, wait=True)
    rows = curve_rows(out, config.neg_weight)
    write_csv(out / "curve.csv", rows, CSV_FIELDS)
    summary = {
        "config": asdict(config),
        "model": trainer.name,
        "scoring_dtype": scorer.dtype,
        "scoring": describe(scorer),
        "training": describe(trainer),
        "eval_sets": eval_sets(out),
        "rows": rows,
    }
    write_json(out / "curve.json", summary)
    title = title or f"{config.train.model} · heads trained on the {config.train.task} pool"
    plot_curve(drawn_rows(summary, config), figure or out / "curve.png", title)
    plot_verifier(drawn_rows(summary, config), out / "verifier.png", title)
    return summary


def drawn_rows(summary: dict[str, Any], config: CurveConfig) -> list[dict[str, Any]]:
    """The rows of the methods and seeds ``config`` asks for, and the base model's (``curve.csv`` keeps every
    row scored in the folder)."""
    drawn = {*config.methods, "base", "base_calibrated", *PTRUE_METHODS}  # P(True)'s rows exist where scored
    return [r for r in summary["rows"] if r["method"] in drawn and r["seed"] in config.seeds]


def _run_pieces(
    trainer: LoadedModel,
    scorer: LoadedModel,
    config: CurveConfig,
    out: Path,
    requests: Sequence[ItemRequests],
    base: Sequence[ItemScores],
    log: Callable[[str], None],
    *,
    wait: bool,
) -> bool:
    """Train every missing run and score every missing checkpoint. A piece (a seed's run, a checkpoint's scores)
    that another process holds is skipped, and ``True`` returned; with ``wait``, it is waited for instead and
    then finished if it is still missing, so that the curve written afterwards is whole."""
    skipped, scores_dir = False, scores_dir_of(out, config)
    kinds = ([""] if any(m in LIKRA_METHODS for m in config.methods) else []) + [f"{k}-" for k in config.other_runs()]
    for seed in config.seeds:
        for kind in kinds:  # "" is Likra's run, "dpo-" and "kto-" the baselines', "prefix-" prefix Likra's
            name = f"{kind}seed-{seed}"
            run = out / "runs" / name
            if wait and run.is_dir():
                with claim(run, wait=True):  # until the process training it lets go
                    pass
            total = config.train.n
            done = [k for k, _ in list_checkpoints(run)] if run.is_dir() else []
            if total is None or total not in done:
                log(f"{name}: training {'(resuming) ' if done else ''}to {total} examples in {run}")
                try:
                    _train_run(trainer, config, kind, seed, run, resume=bool(done))
                except FolderInUse as busy:  # another process trains this piece: take the next one
                    log(f"{name}: skipped, trained by {busy.holder}")
                    skipped = True
            for examples, path in list_checkpoints(run):
                folder = scores_dir / name
                skipped |= not score_checkpoint(scorer, config, requests, base, folder, examples, path, log, wait)
    return skipped


def _train_run(trainer: LoadedModel, config: CurveConfig, kind: str, seed: int, run: Path, resume: bool) -> None:
    """One seed's run of one kind ("" Likra's, "prefix-" prefix Likra's, "dpo-" / "kto-" the baselines')."""
    if kind in ("", "prefix-"):
        heads, method = ("both", "prefix") if kind else (config.likra_heads(), "likra")
        train(trainer, replace(config.train, seed=seed, heads=heads, method=method), run, resume=resume)
    else:
        train_baseline(trainer, config.baseline_config(kind[:-1], seed), run, resume=resume)


def score_checkpoint(
    scorer: LoadedModel,
    config: CurveConfig,
    requests: Sequence[ItemRequests],
    base: Sequence[ItemScores],
    folder: Path,
    examples: int,
    checkpoint: Path,
    log: Callable[[str], None],
    wait: bool,
) -> bool:
    """Score one checkpoint into ``folder/step-K.items.jsonl`` unless done; ``False`` when another process is
    scoring it (with ``wait``: once it has finished)."""
    items_path = folder / f"step-{examples}.items.jsonl"
    if done(items_path, config):
        return True
    try:
        with claim(folder, wait=wait, lock=f".step-{examples}.lock"):
            if done(items_path, config):  # finished by another process meanwhile
                return True
            log(f"{folder.name}: scoring step-{examples}")
            result = evaluate(scorer, config.eval_config(str(checkpoint)), requests, base=base)
            write_items(items_path, result.items)
            return True
    except FolderInUse as busy:
        log(f"{folder.name}: step-{examples} skipped, scored by {busy.holder}")
        return False


def done(items_path: Path, config: CurveConfig) -> bool:
    """Whether ``items_path`` holds what the curve asks for (with --p-true: P(True) too)."""
    return items_path.is_file() and (not config.p_true or bool(read_items(items_path)[0].p_true))


def check_held_out(config: CurveConfig, items: Sequence[MCItem]) -> None:
    """Refuse an evaluation set whose questions the heads may train on (another task's test split is in
    the ARC pool, for one): that would be a curve of memorisation."""
    train = config.train
    pool = training_pool(train.task, train.eval_split, train.data_dir, train.train_file, train.hold_out)
    leaked = pool.overlap(items)
    if leaked:
        eval_config = config.eval_config()
        task = get_task(eval_config.task)
        name = f"{task.name}:{eval_config.split or task.default_split}"
        raise LikraError(
            f"--eval-task {task.name}: {leaked} of its {len(items)} questions are in the {pool.eval_task} training "
            f"pool; add --hold-out {name} (to every command on this folder, so all runs share one pool)"
        )


def eval_sets(out: Path) -> list[dict[str, Any]]:
    """The evaluation sets scored under ``out/scores`` (what ``run_curve`` recorded for each)."""
    found = []
    for path in sorted((out / "scores").glob(f"*/{EVAL_SET}")):
        recorded = read_stored(path, EvalSet, "a likra evaluation set")
        found.append({**recorded, "folder": str(path.parent.relative_to(out))})
    return found


def curve_rows(out: Path, neg_weight: float = 1.0) -> list[dict[str, Any]]:
    """One row per evaluation set x method x examples x seed from the stored items (examples 0 is the base
    model); the seeds are those scored on each set."""
    rows: list[dict[str, Any]] = []
    for found in eval_sets(out):
        scores_dir = out / found["folder"]
        base = read_items(scores_dir / "base.items.jsonl")
        likra_hits: dict[tuple[int, int], list[bool]] = {}  # (seed, examples) → Likra's; its folders come first
        for baseline, seed, folder in seed_folders(scores_dir):
            methods = {f"{baseline}{s}": v for s, v in OTHER_RUNS[baseline].items()} if baseline else METHODS
            points = [(0, base)] + [(k, read_items(p)) for k, p in stored_steps(folder)]
            if not baseline and len(points) > 1:  # a run with one head has only the curves its head allows
                modes = available_modes(points[1][1])
                methods = {m: spec for m, spec in methods.items() if spec[0] in modes}
            for examples, items in points:
                scored = {m: [option_scores(s, mode, metric, neg_weight) for s in items]
                          for m, (mode, metric) in methods.items()}  # fmt: skip
                if not baseline:  # P(True), where it was scored
                    present = available_methods(items)
                    scored |= {m: method_scores(items, m) for m in PTRUE_METHODS if m in present}
                hits = {m: [argmax(v) == s.label for v, s in zip(values, items, strict=True)]
                        for m, values in scored.items()}  # fmt: skip
                if not baseline and "likra" in hits:
                    likra_hits[seed, examples] = hits["likra"]
                for method, correct_items in hits.items():
                    row = {
                        "task": found["task"],
                        "split": found["split"],
                        "method": method,
                        "examples": examples,
                        "seed": seed,
                        "accuracy": sum(correct_items) / len(correct_items),
                        "n": len(correct_items),
                        **dict.fromkeys(P_FIELDS),
                        **verifier_metrics(items, scored[method]),
                    }
                    if examples > 0 and method == "likra" and all(o in hits for o in PAIRED):
                        for other in PAIRED:
                            row[f"p_vs_{other}"] = mcnemar_exact(correct_items, hits[other])
                    if examples > 0 and baseline and (seed, examples) in likra_hits:  # same questions, same order
                        row["p_vs_likra"] = mcnemar_exact(correct_items, likra_hits[seed, examples])
                    rows.append(row)
    return rows


def seed_folders(scores_dir: Path) -> list[tuple[str, int, Path]]:
    """(baseline or "" for Likra's heads, seed, folder) of each ``[<baseline>-]seed-<s>`` in ``scores_dir``:
    Likra's first, seeds in numeric order."""
    found = []
    for folder in scores_dir.glob("*seed-*"):
        kind, _, number = folder.name.rpartition("seed-")
        if folder.is_dir() and number.isdigit() and kind.removesuffix("-") in ("", *OTHER_RUNS):
            found.append((kind.removesuffix("-"), int(number), folder))
    return sorted(found, key=lambda f: (f[0] != "", f[0], f[1]))


def stored_steps(folder: Path) -> list[tuple[int, Path]]:
    """The ``step-<k>.items.jsonl`` files in ``folder``, by examples seen."""
    found = [(int(p.name.split(".")[0].removeprefix("step-")), p) for p in folder.glob("step-*.items.jsonl")]
    return sorted(found)


# --- its figure --------------------------------------------------------------------------------------


def plot_curve(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Accuracy against examples seen (log2 axis), mean and 95% band across seeds; base models as flat lines.
    One panel per evaluation set (``task``/``split`` of the rows), ``title`` above them all."""
    sets = list(dict.fromkeys((r["task"], r["split"]) for r in rows))
    fig, axes = plots.axes(len(sets))
    for ax, eval_set in zip([axes] if len(sets) == 1 else axes, sets, strict=True):
        _curve_panel(ax, rows, eval_set, "accuracy", "accuracy (acc_norm; calibrated: acc_calibrated)")
    fig.suptitle(title)
    return plots.save(fig, path)


def plot_verifier(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """The verifier curve: AUROC (each option scored on its own, correct against wrong) and hard AUROC (against
    the base model's most likely wrong option) against examples seen; a panel of each per evaluation set."""
    sets = list(dict.fromkeys((r["task"], r["split"]) for r in rows))
    panels = [(s, v) for s in sets for v in ("auroc", "hard_auroc")]
    fig, axes = plots.axes(len(panels))
    for ax, (eval_set, value) in zip(axes, panels, strict=True):
        name = "AUROC" if value == "auroc" else "hard AUROC (vs the base's most likely wrong option)"
        _curve_panel(ax, rows, eval_set, value, name)
    fig.suptitle(title)
    return plots.save(fig, path)


def _curve_panel(ax: Any, rows: Sequence[dict[str, Any]], eval_set: tuple[str, str], value: str, ylabel: str) -> None:
    """One evaluation set's ``value`` per method against examples, mean and 95% band across seeds."""
    by_method: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    seeds, n = set(), 0
    for row in rows:
        if (row["task"], row["split"]) == eval_set and row.get(value) not in (None, ""):
            by_method[row["method"]][row["examples"]].append(float(row[value]))
            seeds.add(row["seed"])
            n = row["n"]
    # the base model's rows do not move with examples: flat lines at their 0-example value
    levels = {m: plots.mean_band(by_x[0])[0] for m, by_x in by_method.items() if m.startswith("base") and by_x.get(0)}
    for method, (label, colour, line) in plots.STYLE.items():
        if method not in levels and by_method.get(method):
            plots.band(ax, by_method[method], colour, line, label)
    plots.levels(ax, levels)
    panel = f"{eval_set[0]} {eval_set[1]} · {n} questions · {len(seeds)} seed(s)"
    plots.label(ax, panel, plots.EXAMPLES_AXIS, ylabel, True)
