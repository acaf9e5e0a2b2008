"""What every figure shares (matplotlib, PNG files): the methods' colours and line styles, a mean with its 95% band
across seeds, log2 example axes, labels, saving. Each experiment draws its own figure beside its data
(``likra.experiments.*``, ``likra.nat.curve``, ``likra.calibration``) with these; matplotlib is imported only when a
figure is drawn."""

from __future__ import annotations

import math
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
    "dpo": ("DPO (TRL)", "tab:purple", "-"),
    "dpo_reward": ("DPO reward  Lpolicy \u2212 Lbase", "tab:purple", "--"),
    "kto": ("KTO (TRL)", "tab:orange", "-"),
    "kto_reward": ("KTO reward  Lpolicy \u2212 Lbase", "tab:orange", "--"),
    "prefix": ("prefix Likra  L(a|correct) \u2212 L(a|wrong)", "tab:brown", "-"),
    "prefix_sft": ("prefix, correct line only", "tab:brown", "--"),
    "posbase": ("L+ \u2212 Lbase", "tab:pink", "-"),
    "sft_ptrue": ("SFT's P(True)", "tab:cyan", "-."),
    "base": ("base model", "black", ":"),
    "base_calibrated": ("base model, calibrated", "gray", ":"),
    "base_ptrue": ("base model's P(True)", "tab:olive", ":"),
}


KIND_COLOURS = {
    "incorrect": "tab:red",
    "hardest": "tab:purple",
    "easiest": "tab:orange",
    "irrelevant": "tab:brown",
    "unrelated": "tab:gray",
}


EXAMPLES_AXIS = "training examples (questions seen by each head)"


def interval_text(interval: list[float | None] | None) -> str:
    """A ratio's interval for people: "[2.10, 8.40]", an open end as inf, none at all as "unbounded"."""
    if interval is None:
        return "unbounded"
    low, high = interval
    return f"[{'-inf' if low is None else f'{low:.2f}'}, {'inf' if high is None else f'{high:.2f}'}]"


def mean_band(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of a 95% t-interval across seeds (0 for a single seed)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, _T975.get(n - 1, 1.96) * sd / math.sqrt(n)


def axes(panels: int = 1) -> tuple[Any, Any]:
    """A figure with ``panels`` axes side by side (one axes object when 1, else a list)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 4.5), dpi=120, squeeze=panels == 1)
    return fig, (axes if panels == 1 else list(axes.flat))


def band(ax: Any, by_x: dict[Any, list[float]], colour: str, line: str, text: str, log_x: bool = True) -> None:
    """Mean across seeds at each x with its 95% band (on a log axis x = 0 is left out: it has no place there)."""
    xs = sorted(x for x in by_x if x > 0 or not log_x)
    stats = [mean_band(by_x[x]) for x in xs]
    ax.plot(xs, [m for m, _ in stats], color=colour, linestyle=line, marker="o", markersize=3, label=text)
    ax.fill_between(xs, [m - h for m, h in stats], [m + h for m, h in stats], color=colour, alpha=0.15)


def levels(ax: Any, values: dict[str, float] | None) -> None:
    """Flat reference lines (a base model's, SFT's) in their method's colour."""
    for name, value in (values or {}).items():
        text, colour, line = STYLE[name]
        ax.axhline(value, color=colour, linestyle=":" if line == "-" else line, label=text)


def finish(fig: Any, ax: Any, path: str | Path, title: str, xlabel: str, ylabel: str, log_x: bool) -> Path:
    label(ax, title, xlabel, ylabel, log_x)
    return save(fig, path)


def label(ax: Any, title: str, xlabel: str, ylabel: str, log_x: bool) -> None:
    if log_x:
        from matplotlib.ticker import ScalarFormatter

        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())  # 8, 16, 32 rather than 2^3, 2^4, 2^5
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def save(fig: Any, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    from likra.files import writing

    fig.tight_layout()
    path = Path(path)
    try:
        with writing(path) as tmp:  # a whole figure or the old one, as every output
            fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path
