"""The report of an experiment folder: the figures and tables of what it holds (each experiment drew its own figure
beside its data), the commands that made it and the environment, as one HTML page and a Markdown summary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from likra import artefacts, plots

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
# experiment → the schema of its summary
SCHEMAS = {"curve": artefacts.CurveSummary, "verifier": artefacts.CurveSummary, "ablate": artefacts.AblateSummary,
           "sweep": artefacts.SweepSummary, "grid": artefacts.GridSummary, "mass": artefacts.MassSummary,
           "nat_curve": artefacts.NATCurveSummary}  # fmt: skip
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
            cells.append(f"{plots.mean_band(values)[0]:.4f}" if values else "")
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


Table = tuple[str, list[str], list[list[str]]]  # title, header, rows


def _tables(name: str, summary: dict[str, Any]) -> list[Table]:
    """The tables of one experiment's summary (its own kind of table, or its rows as they are)."""
    rows = summary.get("rows", [])
    if not rows:
        return []
    if name == "grid":
        return _grid_tables(summary)
    if name in TABLES:
        return TABLES[name](rows)
    header = list(rows[0])
    return [("", header, [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in r.values()] for r in rows])]


def _eval_sets(rows: Sequence[dict[str, Any]], needs: str = "task") -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The rows of each evaluation set (task, split), in order; only rows that have ``needs``."""
    sets = dict.fromkeys((r["task"], r["split"]) for r in rows if needs in r)
    return {s: [r for r in rows if (r["task"], r["split"]) == s] for s in sets}


def _curve_tables(rows: Sequence[dict[str, Any]]) -> list[Table]:
    tables = []
    for (task, split), part in _eval_sets(rows).items():
        tables.append((f"{task} {split}: mean accuracy across seeds", *_rows_table(part, "method")))
        tables.append((f"{task} {split}: exact McNemar p of Likra against SFT and calibrated SFT, per seed",
                       *_p_table(part)))  # fmt: skip
    return tables


def _verifier_tables(rows: Sequence[dict[str, Any]]) -> list[Table]:
    tables = []
    for (task, split), part in _eval_sets(rows, "auroc").items():
        for value, what in (("auroc", "AUROC"), ("hard_auroc", "hard AUROC"), ("acc_at_50", "accuracy at 50%")):
            tables.append((f"{task} {split}: mean {what} across seeds", *_rows_table(part, "method", value)))
    return tables


def _ablate_tables(rows: Sequence[dict[str, Any]]) -> list[Table]:
    return [("Likra acc_norm by kind of negative", *_rows_table([r for r in rows if r["method"] == "likra"], "kind"))]


def _mass_tables(rows: Sequence[dict[str, Any]]) -> list[Table]:
    tables = []
    for head in dict.fromkeys(r["head"] for r in rows):
        part = [r for r in rows if r["head"] == head]
        tables.append((f"{head} head: mean Δ per character", *_rows_table(part, "answer", "mean_delta_per_char")))
    return tables


def _grid_tables(summary: dict[str, Any]) -> list[Table]:
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
        value.append([steps, side, ratio, plots.interval_text(entry.get("ratio_ci95"))])
    return [
        ("mean acc_norm: positive examples (rows) by negative examples (columns)", ["", *counts], cells),
        ("gain of k negatives added to k positives, and of k to k' positives (SFT), mean [95% across seeds]",
         ["k→k'", "negatives", "positives"], gains),
        ("value of one negative example relative to one positive (bootstrap 95% over seeds and questions)",
         ["steps", "which", "ratio", "95%"], value),
    ]  # fmt: skip


def _sweep_tables(rows: Sequence[dict[str, Any]]) -> list[Table]:
    weights = sorted({r["neg_weight"] for r in rows})
    modes = list(dict.fromkeys(r["mode"] for r in rows))

    def mean(mode: str, weight: float) -> float:
        return plots.mean_band([r["acc_norm"] for r in rows if r["mode"] == mode and r["neg_weight"] == weight])[0]

    lines = [[f"{w:g}", *(f"{mean(m, w):.4f}" for m in modes)] for w in weights]
    runs = len({r.get("run", 1) for r in rows})
    return [(f"acc_norm by weight (mean over {runs} checkpoint(s))", ["w", *modes], lines)]


def _nat_tables(rows: Sequence[dict[str, Any]]) -> list[Table]:
    """Accuracy by template and negatives (mean across seeds), and each run's exact McNemar p-values."""
    counts = sorted({r["neg_num"] for r in rows})
    lines = []
    for template in dict.fromkeys(r["template"] for r in rows):
        cells = [[r["accuracy"] for r in rows if r["template"] == template and r["neg_num"] == n] for n in counts]
        lines.append([template, *(f"{plots.mean_band(c)[0]:.4f}" if c else "" for c in cells)])
    tests = [[r["template"], str(r["neg_num"]), str(r["seed"]), f"{r['accuracy']:.4f}", _p(r["p_vs_pos_only"]),
              _p(r["p_vs_none"])] for r in rows if r["neg_num"]]  # fmt: skip
    return [
        ("mean accuracy: template (rows) by negative trajectories (columns)", ["template", *map(str, counts)], lines),
        ("exact McNemar p against positives only and against plain mixing at the same count",
         ["template", "negatives", "seed", "accuracy", "p vs positives only", "p vs mixing"], tests),
    ]  # fmt: skip


TABLES = {"curve": _curve_tables, "verifier": _verifier_tables, "nat_curve": _nat_tables, "ablate": _ablate_tables,
          "mass": _mass_tables, "sweep": _sweep_tables}  # fmt: skip


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


def _section(name: str, place: Path, spec: tuple[str, str, str], folder: Path) -> tuple[list[str], list[str]]:
    """One experiment's part of the page and of the Markdown: its caption, figure and tables."""
    import base64
    import html

    summary_file, figure, caption = spec
    summary = artefacts.read_stored(place / summary_file, SCHEMAS[name], what=f"a likra {name} summary")
    where = "" if place == folder else f" ({place.name}/)"
    page = [f"<h2 id='{name}'>{name}{html.escape(where)}</h2><p>{html.escape(caption)}</p>"]
    markdown = [f"## {name}{where}", "", caption, ""]
    if (place / figure).is_file():
        data = base64.b64encode((place / figure).read_bytes()).decode()
        page.append(
            f"<figure><img alt='{name} figure' onload=\"this.setAttribute('data-width', this.naturalWidth)\" "
            f"src='data:image/png;base64,{data}'></figure>"
        )
        markdown += [f"![{name}]({(place / figure).relative_to(folder)})", ""]
    tables = _tables(name, summary)
    if not tables:  # a run that stopped before its first row
        page.append(f"<p>{html.escape(summary_file)} holds no results yet.</p>")
        markdown += [f"{summary_file} holds no results yet.", ""]
    for title, header, lines in tables:
        if title:
            page.append(f"<h3>{html.escape(title)}</h3>")
            markdown += [f"### {title}", ""]
        page.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
        page += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>" for line in lines]
        page.append("</table>")
        markdown += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        markdown += ["| " + " | ".join(line) + " |" for line in lines] + [""]
    return page, markdown


def write_report(folder: str | Path) -> tuple[Path, Path]:
    """``report.html`` (self-contained: figures embedded) and ``report.md`` for the experiments in ``folder``."""
    import html

    from likra.errors import LikraError
    from likra.files import write_text

    folder = Path(folder)
    html_path, md_path = folder / "report.html", folder / "report.md"
    for path in (html_path, md_path):  # refused before any work (a folder by that name, say)
        if path.is_dir():
            raise LikraError(f"{path}: is a folder; likra report writes its page there (move the folder away)")
    places = [folder, *sorted(p for p in folder.iterdir() if p.is_dir())] if folder.is_dir() else []
    # every experiment in the folder or one level down (e.g. DIR/mass/, DIR/sweep/ beside DIR/curve.json)
    found = [(name, place, spec) for name, spec in EXPERIMENTS.items() for place in places if _holds(place, name)]
    if not found:
        raise LikraError(f"{folder}: no experiment results here (curve.json, ablate.json, sweep.json, mass.json)")
    env = environment()
    commands = []
    for place in places:
        if (place / COMMAND_LOG).is_file():
            commands += artefacts.read_stored_rows(place / COMMAND_LOG, artefacts.Command)
    commands.sort(key=lambda entry: entry["finished"])
    page = ["<!doctype html><html><head><meta charset='utf-8'><title>Likra report</title><style>",
            "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}",
            "table{border-collapse:collapse;margin:0.5rem 0 1.5rem}td,th{border:1px solid #bbb;padding:3px 8px;"
            "text-align:right}th:first-child,td:first-child{text-align:left}img{max-width:100%}"
            "code{background:#f4f4f4;padding:1px 4px}</style></head><body>",
            f"<h1>Likra report: {html.escape(folder.name)}</h1>"]  # fmt: skip
    markdown = [f"# Likra report: {folder.name}", ""]
    for name, place, spec in found:
        html_part, md_part = _section(name, place, spec, folder)
        page += html_part
        markdown += md_part
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
    write_text(html_path, "\n".join(page))
    write_text(md_path, "\n".join(markdown) + "\n")
    return html_path, md_path
