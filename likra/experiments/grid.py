"""Positives and negatives counted apart: Likra with ``n_pos`` positive and ``n_neg`` negative examples, from a
learning curve's stored numbers.

A head does not depend on the other being trained (same seed, same questions, same bytes), so the positive
head of checkpoint ``step-<n_pos>`` and the negative head of ``step-<n_neg>`` of the same run are what two
runs trained on ``n_pos`` and ``n_neg`` questions would give. The curve scored every checkpoint's heads once;
each cell here joins two stored items files, with no model pass:

    n_pos > 0, n_neg > 0   Likra       L+(n_pos) - w·L-(n_neg)
    n_pos > 0, n_neg = 0   SFT         L+(n_pos)          (no negatives: no negative head to subtract)
    n_pos = 0, n_neg > 0   Base-Likra  Lbase - w·L-(n_neg) (no positives: the base model in the positive head's place)
    n_pos = 0, n_neg = 0   the base model

From the cells, the value of one negative example relative to one positive: at each count k, the gain of adding
k negatives to k positives (SFT(k) to Likra(k, k)) against the gain of raising the positives from k to the next
count k' (SFT(k) to SFT(k')), each per example added; pooled over the counts below (and from) a threshold, the
ratio of the two is the accuracy a negative example bought per accuracy a positive one bought. Its 95% interval
is a bootstrap over seeds and questions (the same resample for every cell, so the cells stay paired).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from likra import plots
from likra.configs import GridConfig
from likra.errors import LikraError
from likra.evaluation import read_items
from likra.experiments.curve import eval_sets, seed_folders, stored_steps
from likra.files import write_csv, write_json
from likra.metrics import ItemScores, combine, correct

GRID_FIELDS = ["task", "split", "seed", "n_pos", "n_neg", "method", "acc_norm", "acc_calibrated", "n"]
METRICS = ("acc_norm", "acc_calibrated")


def cell_method(n_pos: int, n_neg: int) -> str:
    """The scoring mode a cell stands for (see the module doc)."""
    if n_pos and n_neg:
        return "likra"
    return "sft" if n_pos else ("negbase" if n_neg else "base")


def join_heads(base: ItemScores, positive: ItemScores | None, negative: ItemScores | None) -> ItemScores:
    """One item with the positive head of one checkpoint and the negative head of another (None: not there)."""
    heads, unconditional = {}, {}
    for head, source in (("positive", positive), ("negative", negative)):
        if source is not None:
            heads[head] = source.heads[head]
            if source.heads_unconditional:
                unconditional[head] = source.heads_unconditional[head]
    if len(unconditional) != len(heads):
        unconditional = {}
    return replace(base, heads=heads, heads_unconditional=unconditional)


def seed_hits(
    base: list[ItemScores], steps: dict[int, list[ItemScores]], counts: Sequence[int], neg_weight: float
) -> dict[str, np.ndarray]:
    """Per metric, a boolean array [n_pos, n_neg, item]: whether the cell's method picks the right answer."""
    metrics = [m for m in METRICS if m != "acc_calibrated" or all(b.unconditional for b in base)]
    hits = {m: np.zeros((len(counts), len(counts), len(base)), dtype=bool) for m in metrics}
    for i, n_pos in enumerate(counts):
        for j, n_neg in enumerate(counts):
            positives = steps[n_pos] if n_pos else [None] * len(base)
            negatives = steps[n_neg] if n_neg else [None] * len(base)
            joined = [join_heads(b, p, n) for b, p, n in zip(base, positives, negatives, strict=True)]
            combined = [combine(s, cell_method(n_pos, n_neg), neg_weight) for s in joined]
            for metric in metrics:
                hits[metric][i, j] = correct(combined, metric)
    return hits


def load_seeds(scores_dir: Path) -> tuple[list[ItemScores], dict[int, dict[int, list[ItemScores]]]]:
    """The base model's items and, per Likra seed, its items per checkpoint (checked to be the same questions)."""
    base = read_items(scores_dir / "base.items.jsonl")
    ids = [b.id for b in base]
    seeds: dict[int, dict[int, list[ItemScores]]] = {}
    for run, seed, folder in seed_folders(scores_dir):
        if run:  # DPO, KTO and prefix Likra runs have no two heads to join
            continue
        steps = {}
        for examples, path in stored_steps(folder):
            items = read_items(path)
            if [s.id for s in items] != ids:
                raise LikraError(f"{path}: scores other questions than {scores_dir / 'base.items.jsonl'}")
            if not {"positive", "negative"} <= set(items[0].heads):
                raise LikraError(f"{path}: needs both heads' scores (a run trained with --heads both)")
            steps[examples] = items
        if steps:
            seeds[seed] = steps
    if not seeds:
        raise LikraError(f"{scores_dir}: no seed-<s>/step-<k>.items.jsonl scores (run likra curve first)")
    return base, seeds


def find_scores(folder: Path, config: GridConfig) -> dict[str, Any]:
    """The evaluation set of the curve folder the grid is for."""
    found = eval_sets(folder)
    if not found:
        raise LikraError(f"{folder}: not a likra curve folder (no scores/*/eval.json)")
    if config.eval_task is None:
        return found[0]
    matches = [f for f in found if f["task"] == config.eval_task and config.eval_split in (None, f["split"])]
    if not matches:
        names = ", ".join(f"{f['task']}:{f['split']}" for f in found)
        raise LikraError(f"--eval-task {config.eval_task}: not scored in {folder} (scored: {names})")
    return matches[0]


def run_grid(folder: str | Path, config: GridConfig | None = None, out: str | Path | None = None) -> dict[str, Any]:
    """Write ``grid.csv``, ``grid.json`` and ``grid.png`` (into ``out``, default the curve folder)."""
    config = config or GridConfig()
    folder = Path(folder)
    out = Path(out) if out is not None else folder
    found = find_scores(folder, config)
    base, seeds = load_seeds(folder / found["folder"])
    shared = set.intersection(*(set(steps) for steps in seeds.values()))
    counts = [0, *sorted(k for k in shared if config.max_examples is None or k <= config.max_examples)]
    if len(counts) < 3:
        raise LikraError(f"{folder}: the seeds share fewer than two checkpoints; a grid needs two or more")
    per_seed = [seed_hits(base, steps, counts, config.neg_weight) for steps in seeds.values()]
    stacked = {m: np.stack([h[m] for h in per_seed]) for m in per_seed[0]}  # [seed, n_pos, n_neg, item]
    rows = grid_rows(found, list(seeds), counts, stacked)
    gains = marginal_gains(stacked["acc_norm"], counts)
    value = {
        "below": value_ratio(stacked["acc_norm"], counts, config, below=True),
        "above": value_ratio(stacked["acc_norm"], counts, config, below=False),
    }
    summary = {
        "config": asdict(config),
        "folder": str(folder),
        "eval_set": found,
        "seeds": list(seeds),
        "counts": counts,
        "mean_acc_norm": stacked["acc_norm"].mean(axis=(0, 3)).round(6).tolist(),  # [n_pos][n_neg]
        "gains": gains,
        "value_of_a_negative": value,
        "rows": rows,
    }
    write_csv(out / "grid.csv", rows, GRID_FIELDS)
    write_json(out / "grid.json", summary)
    plot_grid(summary, out / "grid.png")
    return summary


def grid_rows(found: dict[str, Any], seeds: list[int], counts: list[int], hits: dict[str, np.ndarray]) -> list[dict]:
    rows = []
    for s, seed in enumerate(seeds):
        for i, n_pos in enumerate(counts):
            for j, n_neg in enumerate(counts):
                row = {"task": found["task"], "split": found["split"], "seed": seed, "n_pos": n_pos, "n_neg": n_neg,
                       "method": cell_method(n_pos, n_neg), "n": hits["acc_norm"].shape[-1]}  # fmt: skip
                for metric in METRICS:  # acc_calibrated is missing where the curve was scored without controls
                    row[metric] = float(hits[metric][s, i, j].mean()) if metric in hits else None
                rows.append(row)
    return rows


def marginal_gains(hits: np.ndarray, counts: list[int]) -> list[dict[str, Any]]:
    """At each count k > 0 with a next count k': the gain of adding k negatives to k positives (SFT(k) to
    Likra(k, k)) and that of raising the positives to k' (SFT(k) to SFT(k')), per seed, with their mean and
    95% t-interval across seeds. (Cells off the diagonal are not used: a negative head that saw other questions
    than the positive head does not cancel its drift, see the README.)"""
    accuracy = hits.mean(axis=3)  # [seed, n_pos, n_neg]
    gains = []
    for i in range(1, len(counts) - 1):
        per_seed = {
            "negatives": (accuracy[:, i, i] - accuracy[:, i, 0]).tolist(),
            "positives": (accuracy[:, i + 1, 0] - accuracy[:, i, 0]).tolist(),
        }
        entry: dict[str, Any] = {"from": counts[i], "to": counts[i + 1]}
        for kind, values in per_seed.items():
            mean, half = plots.mean_band(values)
            entry[kind] = {"per_seed": [round(v, 6) for v in values], "mean": round(mean, 6),
                           "ci95": [round(mean - half, 6), round(mean + half, 6)]}  # fmt: skip
        gains.append(entry)
    return gains


def value_ratio(hits: np.ndarray, counts: list[int], config: GridConfig, below: bool) -> dict[str, Any]:
    """Accuracy per negative example over accuracy per positive example, from the gains of ``marginal_gains``
    at the counts below the threshold (``below``) or from it on, with a bootstrap interval over seeds and
    questions."""
    pairs = range(1, len(counts) - 1)
    steps = [i for i in pairs if (counts[i] < config.threshold) == below]
    if not steps:
        return {"steps": [], "ratio": None, "note": "no grid steps on this side of the threshold"}
    added_negatives = sum(counts[i] for i in steps)
    added_positives = sum(counts[i + 1] - counts[i] for i in steps)

    def sums(acc: np.ndarray) -> tuple[float, float]:  # acc: [seed, n_pos, n_neg] → gain per example of each kind
        negatives = sum(acc[:, i, i] - acc[:, i, 0] for i in steps).mean() / added_negatives
        positives = sum(acc[:, i + 1, 0] - acc[:, i, 0] for i in steps).mean() / added_positives
        return float(negatives), float(positives)

    negatives, positives = sums(hits.mean(axis=3))
    rng = np.random.default_rng(config.seed)
    n_seeds, n_items = hits.shape[0], hits.shape[3]
    flat = hits.reshape(n_seeds, -1, n_items).astype(np.float32)
    boot = np.empty((config.bootstrap, 2))
    for b in range(config.bootstrap):
        seed_pick = rng.integers(0, n_seeds, n_seeds)
        weights = np.bincount(rng.integers(0, n_items, n_items), minlength=n_items).astype(np.float32) / n_items
        acc = (flat[seed_pick] @ weights).reshape(n_seeds, *hits.shape[1:3])
        boot[b] = sums(acc)
    low_neg, high_neg = np.percentile(boot[:, 0], [2.5, 97.5])
    low_pos, high_pos = np.percentile(boot[:, 1], [2.5, 97.5])
    result: dict[str, Any] = {
        "steps": [[counts[i], counts[i + 1]] for i in steps],
        "gain_per_negative": round(negatives, 8),
        "gain_per_negative_ci95": [round(float(low_neg), 8), round(float(high_neg), 8)],
        "gain_per_positive": round(positives, 8),
        "gain_per_positive_ci95": [round(float(low_pos), 8), round(float(high_pos), 8)],
        "ratio": round(negatives / positives, 4) if positives else None,
        "ratio_ci95": None,
    }
    if low_pos > 0:  # the positives' gain is surely positive: the ratio's interval is finite
        with np.errstate(divide="ignore", invalid="ignore"):  # a resample may miss every positive gain
            bounds = np.percentile(boot[:, 0] / boot[:, 1], [2.5, 97.5])
        result["ratio_ci95"] = [round(float(v), 4) if np.isfinite(v) else None for v in bounds]  # None: unbounded
    else:
        result["note"] = (
            "the positives' summed gain is not surely above 0 (its interval reaches 0 or below), so the ratio's "
            "interval is unbounded; compare the two gains"
        )
    return result


# --- its figure --------------------------------------------------------------------------------------


def plot_grid(summary: dict[str, Any], path: str | Path) -> Path:
    """Left: mean acc_norm over (positive examples, negative examples), one cell per pair of checkpoints.
    Right: at each count k, the gain of adding k negatives to k positives against that of raising the positives
    to the next count, mean and 95% interval across seeds."""
    counts, mean = summary["counts"], summary["mean_acc_norm"]
    fig, (left, right) = plots.axes(2)
    image = left.imshow(mean, origin="lower", cmap="viridis", aspect="auto")
    for i, row in enumerate(mean):
        for j, value in enumerate(row):
            left.text(j, i, f"{value:.3f}"[1:], ha="center", va="center", fontsize=6, color="white")
    ticks = range(len(counts))
    left.set_xticks(ticks, [str(c) for c in counts], fontsize=7)
    left.set_yticks(ticks, [str(c) for c in counts], fontsize=7)
    left.set_xlabel("negative examples (0: none, i.e. SFT)")
    left.set_ylabel("positive examples (0: base model, i.e. Base-Likra)")
    found = summary["eval_set"]
    left.set_title(f"acc_norm, mean of {len(summary['seeds'])} seed(s): {found['task']} {found['split']}")
    fig.colorbar(image, ax=left, fraction=0.046)
    gains = summary["gains"]
    xs = list(range(len(gains)))
    for kind, colour, shift in (("negatives", "tab:red", -0.08), ("positives", "tab:blue", 0.08)):
        means = [g[kind]["mean"] for g in gains]
        errors = [[m - g[kind]["ci95"][0] for m, g in zip(means, gains, strict=True)],
                  [g[kind]["ci95"][1] - m for m, g in zip(means, gains, strict=True)]]  # fmt: skip
        label = (
            "k negatives added to k positives: SFT(k) \u2192 Likra(k, k)"
            if kind == "negatives"
            else ("more positives: SFT(k) \u2192 SFT(k')")
        )
        right.errorbar([x + shift for x in xs], means, yerr=errors, color=colour, marker="o", markersize=3,
                       capsize=2, label=label)  # fmt: skip
    right.axhline(0, color="black", linewidth=0.8)
    right.set_xticks(xs, [f"{g['from']}\u2192{g['to']}" for g in gains], fontsize=7, rotation=45)
    value = summary["value_of_a_negative"]
    parts = []
    for side, name in (("below", "\u2264"), ("above", "\u2265")):
        entry = value[side]
        if entry.get("ratio") is not None:
            interval = plots.interval_text(entry.get("ratio_ci95"))
            parts.append(f"{name}{summary['config']['threshold']}: {entry['ratio']:.2f} {interval}")
    right.set_title("value of one negative / one positive:\n" + "; ".join(parts) if parts else "gains of more examples",
                    fontsize=10)  # fmt: skip
    right.set_xlabel("k \u2192 k' (positive examples before and after)")
    right.set_ylabel("accuracy gain (acc_norm)")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    return plots.save(fig, path)
