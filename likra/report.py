"""Figures (matplotlib, PNG) for the experiments."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Student's t at 97.5% for a 95% band across a handful of seeds (df = seeds - 1)
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}

STYLE = {
    "likra": ("Likra  L+ \u2212 L\u2212", "tab:red", "-"),
    "sft": ("SFT  L+", "tab:blue", "-"),
    "sft_calibrated": ("SFT, calibrated", "tab:blue", "--"),
    "negbase": ("Base-Likra  Lbase \u2212 L\u2212", "tab:green", "-"),
    "base": ("base model", "black", ":"),
    "base_calibrated": ("base model, calibrated", "gray", ":"),
}
KIND_COLOURS = {
    "incorrect": "tab:red",
    "hardest": "tab:purple",
    "easiest": "tab:orange",
    "irrelevant": "tab:brown",
    "unrelated": "tab:gray",
}
EXAMPLES_AXIS = "training examples (questions seen by each head)"


def mean_band(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of a 95% t-interval across seeds (0 for a single seed)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, _T975.get(n - 1, 1.96) * sd / math.sqrt(n)


def _axes() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(7, 4.5), dpi=120)


def _band(ax: Any, by_x: dict[int, list[float]], colour: str, line: str, label: str) -> None:
    """Mean across seeds at each x with its 95% band (x = 0 is left out: it has no place on a log axis)."""
    xs = sorted(x for x in by_x if x > 0)
    stats = [mean_band(by_x[x]) for x in xs]
    ax.plot(xs, [m for m, _ in stats], color=colour, linestyle=line, marker="o", markersize=3, label=label)
    ax.fill_between(xs, [m - h for m, h in stats], [m + h for m, h in stats], color=colour, alpha=0.15)


def _levels(ax: Any, levels: dict[str, float] | None) -> None:
    for name, value in (levels or {}).items():
        label, colour, line = STYLE[name]
        ax.axhline(value, color=colour, linestyle=":" if line == "-" else line, label=label)


def _finish(fig: Any, ax: Any, path: str | Path, title: str, xlabel: str, ylabel: str, log_x: bool) -> Path:
    import matplotlib.pyplot as plt

    if log_x:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_curve(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Accuracy against examples seen (log2 axis), mean and 95% band across seeds; base models as flat lines."""
    by_method: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_method[row["method"]][row["examples"]].append(row["accuracy"])
    fig, ax = _axes()
    levels = {m: mean_band(by_method[m][0])[0] for m in ("base", "base_calibrated") if by_method[m].get(0)}
    for method, (label, colour, line) in STYLE.items():
        if method not in levels and by_method.get(method):
            _band(ax, by_method[method], colour, line, label)
    _levels(ax, levels)
    return _finish(fig, ax, path, title, EXAMPLES_AXIS, "accuracy (acc_norm; calibrated: acc_calibrated)", True)


def plot_sweep(
    rows: Sequence[dict[str, Any]], path: str | Path, title: str, levels: dict[str, float] | None = None
) -> Path:
    """acc_norm against the negative head's weight for each weighted mode; ``levels`` (e.g. SFT, base) are
    drawn as flat reference lines."""
    fig, ax = _axes()
    for mode in dict.fromkeys(r["mode"] for r in rows):
        label, colour, line = STYLE[mode]
        points = sorted((r["neg_weight"], r["acc_norm"]) for r in rows if r["mode"] == mode)
        ax.plot([w for w, _ in points], [a for _, a in points], color=colour, linestyle=line, marker="o",
                markersize=3, label=label)  # fmt: skip
    _levels(ax, levels)
    return _finish(fig, ax, path, title, "negative head weight w", "accuracy (acc_norm)", False)


def plot_ablation(
    rows: Sequence[dict[str, Any]], path: str | Path, title: str, levels: dict[str, float] | None = None
) -> Path:
    """One Likra curve per negative kind (mean and 95% band across seeds, log2 axis); ``levels`` flat."""
    fig, ax = _axes()
    for kind in dict.fromkeys(r["kind"] for r in rows):
        by_x: dict[int, list[float]] = defaultdict(list)
        for r in rows:
            if r["kind"] == kind and r["method"] == "likra":
                by_x[r["examples"]].append(r["accuracy"])
        _band(ax, by_x, KIND_COLOURS.get(kind, "black"), "-", f"Likra, {kind} negatives")
    _levels(ax, levels)
    return _finish(fig, ax, path, title, EXAMPLES_AXIS, "accuracy (acc_norm)", True)


ANSWER_COLOURS = {"correct": "tab:green", "likely_incorrect": "tab:red", "irrelevant": "tab:brown", "unrelated": "gray"}


def plot_mass(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Mean change of per-character log-likelihood from the base model, per answer kind (colour) and head
    (solid: positive, dashed: negative), across checkpoints."""
    fig, ax = _axes()
    for head, line in (("positive", "-"), ("negative", "--")):
        for answer, colour in ANSWER_COLOURS.items():
            points = sorted((r["examples"], r["mean_delta_per_char"]) for r in rows
                            if r["head"] == head and r["answer"] == answer)  # fmt: skip
            if points:
                ax.plot([x for x, _ in points], [y for _, y in points], color=colour, linestyle=line, marker="o",
                        markersize=3, label=f"{head} head · {answer.replace('_', ' ')}")  # fmt: skip
    ax.axhline(0, color="black", linewidth=0.8)
    return _finish(fig, ax, path, title, EXAMPLES_AXIS, "mean Δ log-likelihood per character vs base", True)
