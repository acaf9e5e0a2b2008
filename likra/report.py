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


def mean_band(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of a 95% t-interval across seeds (0 for a single seed)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, _T975.get(n - 1, 1.96) * sd / math.sqrt(n)


def plot_curve(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Accuracy against examples seen (log2 axis), mean and 95% band across seeds; base models as flat lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_method: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_method[row["method"]][row["examples"]].append(row["accuracy"])
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for method, (label, colour, line) in STYLE.items():
        points = by_method.get(method)
        if not points:
            continue
        if method.startswith("base"):
            ax.axhline(mean_band(points[0])[0], color=colour, linestyle=line, label=label)
            continue
        xs = sorted(x for x in points if x > 0)
        stats = [mean_band(points[x]) for x in xs]
        ax.plot(xs, [m for m, _ in stats], color=colour, linestyle=line, marker="o", markersize=3, label=label)
        ax.fill_between(xs, [m - h for m, h in stats], [m + h for m, h in stats], color=colour, alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training examples (questions seen by each head)")
    ax.set_ylabel("accuracy (acc_norm; calibrated: acc_calibrated)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_sweep(
    rows: Sequence[dict[str, Any]], path: str | Path, title: str, levels: dict[str, float] | None = None
) -> Path:
    """acc_norm against the negative head's weight for each weighted mode; ``levels`` (e.g. SFT, base) are
    drawn as flat reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for mode in dict.fromkeys(r["mode"] for r in rows):
        label, colour, line = STYLE[mode]
        points = sorted((r["neg_weight"], r["acc_norm"]) for r in rows if r["mode"] == mode)
        ax.plot(
            [w for w, _ in points],
            [a for _, a in points],
            color=colour,
            linestyle=line,
            marker="o",
            markersize=3,
            label=label,
        )
    for name, value in (levels or {}).items():
        label, colour, line = STYLE[name]
        ax.axhline(value, color=colour, linestyle=":" if line == "-" else line, label=label)
    ax.set_xlabel("negative head weight w")
    ax.set_ylabel("accuracy (acc_norm)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
