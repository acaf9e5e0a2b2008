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


def _axes(panels: int = 1) -> tuple[Any, Any]:
    """A figure with ``panels`` axes side by side (one axes object when 1, else a list)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 4.5), dpi=120, squeeze=panels == 1)
    return fig, (axes if panels == 1 else list(axes.flat))


def _band(ax: Any, by_x: dict[Any, list[float]], colour: str, line: str, label: str, log_x: bool = True) -> None:
    """Mean across seeds at each x with its 95% band (on a log axis x = 0 is left out: it has no place there)."""
    xs = sorted(x for x in by_x if x > 0 or not log_x)
    stats = [mean_band(by_x[x]) for x in xs]
    ax.plot(xs, [m for m, _ in stats], color=colour, linestyle=line, marker="o", markersize=3, label=label)
    ax.fill_between(xs, [m - h for m, h in stats], [m + h for m, h in stats], color=colour, alpha=0.15)


def _levels(ax: Any, levels: dict[str, float] | None) -> None:
    for name, value in (levels or {}).items():
        label, colour, line = STYLE[name]
        ax.axhline(value, color=colour, linestyle=":" if line == "-" else line, label=label)


def _finish(fig: Any, ax: Any, path: str | Path, title: str, xlabel: str, ylabel: str, log_x: bool) -> Path:
    _label(ax, title, xlabel, ylabel, log_x)
    return _save(fig, path)


def _label(ax: Any, title: str, xlabel: str, ylabel: str, log_x: bool) -> None:
    if log_x:
        from matplotlib.ticker import ScalarFormatter

        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())  # 8, 16, 32 rather than 2^3, 2^4, 2^5
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _save(fig: Any, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_curve(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Accuracy against examples seen (log2 axis), mean and 95% band across seeds; base models as flat lines.
    One panel per evaluation set (``task``/``split`` of the rows), ``title`` above them all."""
    sets = list(dict.fromkeys((r["task"], r["split"]) for r in rows))
    fig, axes = _axes(len(sets))
    for ax, eval_set in zip([axes] if len(sets) == 1 else axes, sets, strict=True):
        _curve_panel(ax, rows, eval_set, "accuracy", "accuracy (acc_norm; calibrated: acc_calibrated)")
    fig.suptitle(title)
    return _save(fig, path)


def plot_verifier(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """The verifier curve: AUROC (each option scored on its own, correct against wrong) and hard AUROC (against
    the base model's most likely wrong option) against examples seen; a panel of each per evaluation set."""
    sets = list(dict.fromkeys((r["task"], r["split"]) for r in rows))
    panels = [(s, v) for s in sets for v in ("auroc", "hard_auroc")]
    fig, axes = _axes(len(panels))
    for ax, (eval_set, value) in zip(axes, panels, strict=True):
        name = "AUROC" if value == "auroc" else "hard AUROC (vs the base's most likely wrong option)"
        _curve_panel(ax, rows, eval_set, value, name)
    fig.suptitle(title)
    return _save(fig, path)


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
    levels = {m: mean_band(by_x[0])[0] for m, by_x in by_method.items() if m.startswith("base") and by_x.get(0)}
    for method, (label, colour, line) in STYLE.items():
        if method not in levels and by_method.get(method):
            _band(ax, by_method[method], colour, line, label)
    _levels(ax, levels)
    panel = f"{eval_set[0]} {eval_set[1]} · {n} questions · {len(seeds)} seed(s)"
    _label(ax, panel, EXAMPLES_AXIS, ylabel, True)


def plot_sweep(
    rows: Sequence[dict[str, Any]], path: str | Path, title: str, levels: dict[str, float] | None = None
) -> Path:
    """acc_norm against the negative head's weight for each weighted mode (mean and 95% band when the rows hold
    several runs); ``levels`` (e.g. SFT, base) are drawn as flat reference lines."""
    fig, ax = _axes()
    for mode in dict.fromkeys(r["mode"] for r in rows):
        label, colour, line = STYLE[mode]
        by_w: dict[float, list[float]] = defaultdict(list)
        for r in rows:
            if r["mode"] == mode:
                by_w[r["neg_weight"]].append(r["acc_norm"])
        _band(ax, by_w, colour, line, label, log_x=False)
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
    """Left: mean change of per-character log-likelihood from the base model, per answer kind (colour) and
    head (solid: positive, dashed: negative), across checkpoints. Right (when both heads are there): the
    positive head's change minus the negative head's, i.e. how Likra's score ``L+ - L-`` moves each kind."""
    delta = {(r["examples"], r["head"], r["answer"]): r["mean_delta_per_char"] for r in rows}
    heads = list(dict.fromkeys(r["head"] for r in rows))
    both = {"positive", "negative"} <= set(heads)
    fig, axes = _axes(2 if both else 1)
    left = axes[0] if both else axes
    for head, line in (("positive", "-"), ("negative", "--")):
        for answer, colour in ANSWER_COLOURS.items():
            points = sorted((x, y) for (x, h, a), y in delta.items() if h == head and a == answer)
            if points:
                left.plot([x for x, _ in points], [y for _, y in points], color=colour, linestyle=line, marker="o",
                          markersize=3, label=f"{head} head · {answer.replace('_', ' ')}")  # fmt: skip
    left.axhline(0, color="black", linewidth=0.8)
    _label(left, "each head against the base model", EXAMPLES_AXIS, "mean Δ log-likelihood per character", True)
    if both:
        right = axes[1]
        for answer, colour in ANSWER_COLOURS.items():
            xs = sorted(x for (x, h, a) in delta if h == "positive" and a == answer and (x, "negative", a) in delta)
            ys = [delta[(x, "positive", answer)] - delta[(x, "negative", answer)] for x in xs]
            right.plot(xs, ys, color=colour, marker="o", markersize=3, label=answer.replace("_", " "))
        right.axhline(0, color="black", linewidth=0.8)
        _label(right, "positive minus negative: the move of L+ \u2212 L\u2212", EXAMPLES_AXIS,
               "mean Δ+ \u2212 Δ\u2212 per character", True)  # fmt: skip
    fig.suptitle(title)
    return _save(fig, path)


def plot_grid(summary: dict[str, Any], path: str | Path) -> Path:
    """Left: mean acc_norm over (positive examples, negative examples), one cell per pair of checkpoints.
    Right: at each count k, the gain of adding k negatives to k positives against that of raising the positives
    to the next count, mean and 95% interval across seeds."""
    counts, mean = summary["counts"], summary["mean_acc_norm"]
    fig, (left, right) = _axes(2)
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
            interval = interval_text(entry.get("ratio_ci95"))
            parts.append(f"{name}{summary['config']['threshold']}: {entry['ratio']:.2f} {interval}")
    right.set_title("value of one negative / one positive:\n" + "; ".join(parts) if parts else "gains of more examples",
                    fontsize=10)  # fmt: skip
    right.set_xlabel("k \u2192 k' (positive examples before and after)")
    right.set_ylabel("accuracy gain (acc_norm)")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    return _save(fig, path)


NAT_TEMPLATES = {"negative-aware": ("NAT (negative-aware prefix)", "tab:red"), "none": ("plain mixing", "tab:blue"),
                 "tags": ("tags", "tab:green"), "graded": ("graded", "tab:purple")}  # fmt: skip


def plot_nat_curve(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Accuracy against the number of negative trajectories, a line per template: the mean across seeds with a 95%
    band (t across seeds; one seed: its Wilson interval over problems); the positives-only run and the
    always-the-most-common-answer baseline as flat lines."""
    fig, ax = _axes()
    for template in dict.fromkeys(r["template"] for r in rows):
        part = [r for r in rows if r["template"] == template]
        label, colour = NAT_TEMPLATES.get(template, (template, "tab:gray"))
        xs = sorted({r["neg_num"] for r in part})
        by_x = {x: [r for r in part if r["neg_num"] == x] for x in xs}
        means, lows, highs = [], [], []
        for x in xs:
            mean, half = mean_band([r["accuracy"] for r in by_x[x]])
            single = len(by_x[x]) == 1
            means.append(mean)
            lows.append(by_x[x][0]["ci95_low"] if single else mean - half)
            highs.append(by_x[x][0]["ci95_high"] if single else mean + half)
        ax.plot(xs, means, color=colour, marker="o", label=label)
        ax.fill_between(xs, lows, highs, color=colour, alpha=0.12)
    zero = [r["accuracy"] for r in rows if r["neg_num"] == 0]
    if zero:
        ax.axhline(mean_band(zero)[0], color="black", linestyle="--", label="positives only (0 negatives)")
    ax.axhline(rows[0]["majority_baseline"], color="gray", linestyle=":", label="always the most common answer")
    return _finish(fig, ax, path, title, "negative trajectories added to the positives", "accuracy", False)


# --- the report page ----------------------------------------------------------------------------------

# experiment → (JSON summary, figure, what the figure shows)
EXPERIMENTS = {
    "curve": ("curve.json", "curve.png", "Learning curves: accuracy against training examples, mean and 95% band "
              "across seeds; calibrated rows are the answer-prior control."),
    "verifier": ("curve.json", "verifier.png", "The verifier curve: each option scored on its own, AUROC of correct "
                 "against wrong answers and hard AUROC (against the base model's most likely wrong option)."),
    "ablate": ("ablate.json", "ablate.png", "One Likra curve per kind of negative example."),
    "sweep": ("sweep.json", "sweep.png", "Accuracy against the negative head's weight w."),
    "grid": ("grid.json", "grid.png", "Likra with positive and negative examples counted apart (each head from its own "
             "checkpoint); right: the gain of k negatives added to k positives against that of more positives."),
    "mass": ("mass.json", "mass.png", "Mean change of per-character log-likelihood from the base model, by head "
             "and kind of answer."),
    "nat_curve": ("curve.json", "curve.png", "NAT: the agent's accuracy as negative trajectories join the positives, "
                  "NAT's negative-aware prefix against plain mixing; 95% bands."),
}  # fmt: skip
CURVES = ("curve", "verifier", "nat_curve")  # experiments whose summary is a curve.json (Likra's or NAT's)
COMMAND_LOG = "commands.jsonl"


def log_command(folder: str | Path, argv: Sequence[str], seconds: float) -> None:
    """Append the command that wrote into ``folder`` (the report shows every one, with its wall time)."""
    import datetime
    import json

    from likra.version import __version__

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entry = {
        "command": " ".join(["likra", *argv]),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "likra_version": __version__,
    }
    with (folder / COMMAND_LOG).open("a") as handle:
        handle.write(json.dumps(entry) + "\n")


def environment() -> dict[str, str]:
    """Versions and machine, for the record."""
    import os
    import platform
    from importlib.metadata import PackageNotFoundError, version

    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": str(os.cpu_count())}
    for package in ("likra", "torch", "transformers", "peft"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = "not installed"
    try:
        meminfo = Path("/proc/meminfo").read_text().split("\n")[0].split()
        info["memory"] = f"{int(meminfo[1]) / 1024**2:.0f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    try:
        import torch

        info["accelerator"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU)"
    except ImportError:
        pass
    return info


def _rows_table(rows: Sequence[dict[str, Any]], key: str, value: str = "accuracy") -> tuple[list[str], list[list[str]]]:
    """Mean of ``value`` across seeds: one line per ``key``, one column per number of examples."""
    examples = sorted({r["examples"] for r in rows})
    header = [key, *(str(x) for x in examples)]
    lines = []
    for label in dict.fromkeys(r[key] for r in rows):
        cells = []
        for x in examples:
            values = [r[value] for r in rows if r[key] == label and r["examples"] == x]
            cells.append(f"{mean_band(values)[0]:.4f}" if values else "")
        lines.append([str(label), *cells])
    return header, lines


def _p_table(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Paired significance of Likra at each number of examples: one line per seed and comparison."""
    likra = [r for r in rows if r["method"] == "likra" and r["examples"] > 0]
    examples = sorted({r["examples"] for r in likra})
    lines = []
    for seed in sorted({r["seed"] for r in likra}):
        for other in ("sft", "sft_calibrated"):
            by_n = {r["examples"]: r.get(f"p_vs_{other}") for r in likra if r["seed"] == seed}
            cells = [f"{by_n[x]:.2g}" if by_n.get(x) is not None else "" for x in examples]
            lines.append([f"seed {seed} vs {other}", *cells])
    return ["Likra", *(str(x) for x in examples)], lines


def _tables(name: str, summary: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    rows = summary.get("rows", [])
    if not rows:
        return []
    if name == "curve":
        tables = []
        for task, split in dict.fromkeys((r["task"], r["split"]) for r in rows):
            part = [r for r in rows if (r["task"], r["split"]) == (task, split)]
            tables.append((f"{task} {split}: mean accuracy across seeds", *_rows_table(part, "method")))
            tables.append((f"{task} {split}: exact McNemar p of Likra against SFT and calibrated SFT, per seed",
                           *_p_table(part)))  # fmt: skip
        return tables
    if name == "verifier":
        tables = []
        for task, split in dict.fromkeys((r["task"], r["split"]) for r in rows if "auroc" in r):
            part = [r for r in rows if (r["task"], r["split"]) == (task, split)]
            for value, what in (("auroc", "AUROC"), ("hard_auroc", "hard AUROC"), ("acc_at_50", "accuracy at 50%")):
                tables.append((f"{task} {split}: mean {what} across seeds", *_rows_table(part, "method", value)))
        return tables
    if name == "nat_curve":
        return _nat_tables(rows)
    if name == "ablate":
        return [
            ("Likra acc_norm by kind of negative", *_rows_table([r for r in rows if r["method"] == "likra"], "kind"))
        ]
    if name == "mass":
        tables = []
        for head in dict.fromkeys(r["head"] for r in rows):
            part = [r for r in rows if r["head"] == head]
            tables.append((f"{head} head: mean Δ per character", *_rows_table(part, "answer", "mean_delta_per_char")))
        return tables
    if name == "grid":
        counts = [str(c) for c in summary["counts"]]
        cells = [[f"+{counts[i]}", *(f"{v:.4f}" for v in row)] for i, row in enumerate(summary["mean_acc_norm"])]
        gains = []
        for g in summary["gains"]:
            kinds = ("negatives", "positives")
            shown = [f"{g[k]['mean']:+.4f} [{g[k]['ci95'][0]:+.4f}, {g[k]['ci95'][1]:+.4f}]" for k in kinds]
            gains.append([f"{g['from']}→{g['to']}", *shown])
        value = []
        for side, entry in summary["value_of_a_negative"].items():
            ratio = "" if entry.get("ratio") is None else f"{entry['ratio']:.2f}"
            steps = ", ".join(f"{a}→{b}" for a, b in entry["steps"])
            value.append([side, steps, ratio, interval_text(entry.get("ratio_ci95"))])
        return [
            ("mean acc_norm: positive examples (rows) by negative examples (columns)", ["", *counts], cells),
            (
                "gain of k negatives added to k positives, and of k to k' positives (SFT), mean [95% across seeds]",
                ["k→k'", "negatives", "positives"],
                gains,
            ),
            (
                "value of one negative example relative to one positive (bootstrap 95% over seeds and questions)",
                ["steps", "which", "ratio", "95%"],
                [[v[1], v[0], v[2], v[3]] for v in value],
            ),
        ]
    if name == "sweep":
        weights = sorted({r["neg_weight"] for r in rows})
        modes = list(dict.fromkeys(r["mode"] for r in rows))
        lines = [
            [f"{w:g}", *(f"{mean_band([r['acc_norm'] for r in rows if r['mode'] == m and r['neg_weight'] == w])[0]:.4f}"
                         for m in modes)]
            for w in weights
        ]  # fmt: skip
        runs = len({r.get("run", 1) for r in rows})
        return [(f"acc_norm by weight (mean over {runs} checkpoint(s))", ["w", *modes], lines)]
    header = list(rows[0])
    return [("", header, [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in r.values()] for r in rows])]


def _nat_tables(rows: Sequence[dict[str, Any]]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Accuracy by template and negatives (mean across seeds), and each run's exact McNemar p-values."""
    counts = sorted({r["neg_num"] for r in rows})
    lines = []
    for template in dict.fromkeys(r["template"] for r in rows):
        cells = [[r["accuracy"] for r in rows if r["template"] == template and r["neg_num"] == n] for n in counts]
        lines.append([template, *(f"{mean_band(c)[0]:.4f}" if c else "" for c in cells)])
    tests = [[r["template"], str(r["neg_num"]), str(r["seed"]), f"{r['accuracy']:.4f}", _p(r["p_vs_pos_only"]),
              _p(r["p_vs_none"])] for r in rows if r["neg_num"]]  # fmt: skip
    return [
        ("mean accuracy: template (rows) by negative trajectories (columns)", ["template", *map(str, counts)], lines),
        ("exact McNemar p against positives only and against plain mixing at the same count",
         ["template", "negatives", "seed", "accuracy", "p vs positives only", "p vs mixing"], tests),
    ]  # fmt: skip


def _p(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _holds(place: Path, name: str) -> bool:
    """Whether ``place`` holds experiment ``name``'s summary (and, for the verifier, a curve's second figure, its
    own); a curve.json is Likra's unless it names itself NAT's (``"experiment": "nat_curve"``)."""
    import json

    summary, figure, _ = EXPERIMENTS[name]
    if not (place / summary).is_file() or (name == "verifier" and not (place / figure).is_file()):
        return False
    if name not in CURVES:
        return True
    try:
        nat = json.loads((place / summary).read_text()).get("experiment") == "nat_curve"
    except (OSError, ValueError, AttributeError):
        nat = False
    return nat == (name == "nat_curve")


def write_report(folder: str | Path) -> tuple[Path, Path]:
    """``report.html`` (self-contained: figures embedded) and ``report.md`` for the experiments in ``folder``."""
    import base64
    import html

    from likra.data.items import read_jsonl
    from likra.errors import LikraError
    from likra.files import read_json

    folder = Path(folder)
    places = [folder, *sorted(p for p in folder.iterdir() if p.is_dir())] if folder.is_dir() else []
    # every experiment in the folder or one level down (e.g. DIR/mass/, DIR/sweep/ beside DIR/curve.json)
    found = [(name, place, spec) for name, spec in EXPERIMENTS.items() for place in places if _holds(place, name)]
    if not found:
        raise LikraError(f"{folder}: no experiment results here (curve.json, ablate.json, sweep.json, mass.json)")
    env = environment()
    commands = []
    for place in places:
        if (place / COMMAND_LOG).is_file():
            commands += [row for _, row in read_jsonl(place / COMMAND_LOG)]
    commands.sort(key=lambda entry: entry["finished"])
    page = ["<!doctype html><html><head><meta charset='utf-8'><title>Likra report</title><style>",
            "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}",
            "table{border-collapse:collapse;margin:0.5rem 0 1.5rem}td,th{border:1px solid #bbb;padding:3px 8px;"
            "text-align:right}th:first-child,td:first-child{text-align:left}img{max-width:100%}"
            "code{background:#f4f4f4;padding:1px 4px}</style></head><body>",
            f"<h1>Likra report: {html.escape(folder.name)}</h1>"]  # fmt: skip
    markdown = [f"# Likra report: {folder.name}", ""]
    for name, place, (summary_file, figure, caption) in found:
        summary = read_json(place / summary_file, what=f"a likra {name} summary")
        where = "" if place == folder else f" ({place.name}/)"
        page.append(f"<h2 id='{name}'>{name}{html.escape(where)}</h2><p>{html.escape(caption)}</p>")
        markdown += [f"## {name}{where}", "", caption, ""]
        if (place / figure).is_file():
            data = base64.b64encode((place / figure).read_bytes()).decode()
            page.append(
                f"<figure><img alt='{name} figure' onload=\"this.setAttribute('data-width', this.naturalWidth)\" "
                f"src='data:image/png;base64,{data}'></figure>"
            )
            markdown += [f"![{name}]({(place / figure).relative_to(folder)})", ""]
        for title, header, lines in _tables(name, summary):
            if title:
                page.append(f"<h3>{html.escape(title)}</h3>")
                markdown += [f"### {title}", ""]
            page.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
            page += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>" for line in lines]
            page.append("</table>")
            markdown += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            markdown += ["| " + " | ".join(line) + " |" for line in lines] + [""]
    page.append("<h2>Commands</h2><table><tr><th>command</th><th>finished</th><th>wall time</th></tr>")
    markdown += ["## Commands", "", "| command | finished | wall time |", "|---|---|---|"]
    for entry in commands:
        page.append(f"<tr><td><code>{html.escape(entry['command'])}</code></td><td>{entry['finished']}</td>"
                    f"<td>{entry['seconds']:.0f} s</td></tr>")  # fmt: skip
        markdown.append(f"| `{entry['command']}` | {entry['finished']} | {entry['seconds']:.0f} s |")
    page.append("</table><h2>Environment</h2><table>")
    markdown += ["", "## Environment", "", "| | |", "|---|---|"]
    for key, value in env.items():
        page.append(f"<tr><th>{html.escape(key)}</th><td>{html.escape(value)}</td></tr>")
        markdown.append(f"| {key} | {value} |")
    page.append("</table></body></html>")
    html_path, md_path = folder / "report.html", folder / "report.md"
    html_path.write_text("\n".join(page))
    md_path.write_text("\n".join(markdown) + "\n")
    return html_path, md_path


def plot_reliability(before: dict[str, Any], after: dict[str, Any], path: str | Path, title: str) -> Path:
    """Reliability diagram: the frequency of correct answers against the mean probability per bin, before
    (the raw score as log-odds) and after calibration, with the diagonal of perfect calibration."""
    fig, ax = _axes()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for name, data, colour in (("before", before, "tab:grey"), ("after", after, "tab:red")):
        bins = data["bins"]
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], color=colour, marker="o",
                label=f"{name} (ECE {data['ece']:.3f})")  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    return _finish(fig, ax, path, title, "mean predicted probability", "fraction correct", False)
