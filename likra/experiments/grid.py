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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from likra.errors import LikraError
from likra.evaluation import read_items
from likra.experiments.curve import eval_sets, seed_folders, stored_steps
from likra.files import write_csv, write_json
from likra.metrics import ItemScores, combine, correct
from likra.options import option

GRID_FIELDS = ["task", "split", "seed", "n_pos", "n_neg", "method", "acc_norm", "acc_calibrated", "n"]
METRICS = ("acc_norm", "acc_calibrated")


@dataclass(kw_only=True)  # configs are built with keywords
class GridConfig:
    """A grid over a curve folder; ``likra grid`` options map one to one."""

    eval_task: str | None = option(None, "The evaluation set (its task name; default: the first the curve scored).")
    eval_split: str | None = option(None, "Its split (default: the first scored).")
    neg_weight: float = option(1.0, "w, the negative head's weight.")
    # the value ratio is reported for the steps up to it and for those above it
    threshold: int = option(128, "Report the value of a negative up to and from this count.")
    max_examples: int | None = option(None, "Only the checkpoints up to this count (default: all that every seed has).")
    bootstrap: int = option(2000, "Resamples (seeds and questions) for the 95% intervals.")
    seed: int = option(1234, "Seed of the bootstrap.")

    def check(self) -> None:
        if not np.isfinite(self.neg_weight):
            raise LikraError(f"--neg-weight {self.neg_weight}: must be a finite number")
        if self.threshold < 1:
            raise LikraError(f"--threshold {self.threshold}: must be 1 or more")
        if self.max_examples is not None and self.max_examples < 1:
            raise LikraError(f"--max-examples {self.max_examples}: must be 1 or more")
        if self.bootstrap < 100:
            raise LikraError(f"--bootstrap {self.bootstrap}: use 100 resamples or more")


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
    from likra.report import plot_grid

    config = config or GridConfig()
    config.check()
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
    from likra.report import mean_band

    accuracy = hits.mean(axis=3)  # [seed, n_pos, n_neg]
    gains = []
    for i in range(1, len(counts) - 1):
        per_seed = {
            "negatives": (accuracy[:, i, i] - accuracy[:, i, 0]).tolist(),
            "positives": (accuracy[:, i + 1, 0] - accuracy[:, i, 0]).tolist(),
        }
        entry: dict[str, Any] = {"from": counts[i], "to": counts[i + 1]}
        for kind, values in per_seed.items():
            mean, half = mean_band(values)
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
