"""NAT's main figure: an agent's accuracy as negative trajectories join a fixed set of positives, for NAT's
negative-aware prefix and for plain mixing (the NAT README's figure), one training and one evaluation per
(template, negative count, seed).

Every run trains on the same seeded ``pos_num`` positives; its negatives are the first ``n`` of one seeded order
of the negatives (``likra.nat.training.select_trajectories``), so a larger count extends a smaller one's set. The
0-negative run (positives only, no prefix) is shared by every template. Each piece is a file: a run's checkpoints
resume (``--resume``), its evaluation resumes by chunks, and a finished evaluation with the same options is not
redone, so a re-run after an interruption redoes nothing finished.

Layout of ``out``::

    runs/pos-only-seed-<s>/step-<k>/agent/             likra nat train, no negatives (every template's 0)
    runs/<template>-neg-<n>-seed-<s>/step-<k>/agent/   likra nat train
    runs/<name>/eval/results.json, items.jsonl         likra nat eval of the run's last checkpoint
    curve.csv, curve.json, curve.png
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from likra import plots
from likra.errors import LikraError
from likra.files import read_json, write_csv, write_json
from likra.metrics import mcnemar_exact, wilson_interval
from likra.models import load_model
from likra.nat.configs import AgentEvalConfig, NATCurveConfig
from likra.nat.runs import evaluate_agent
from likra.nat.training import select_trajectories, train_agent
from likra.nat.trajectories import Trajectory, read_trajectories
from likra.progress import ProgressFactory, no_progress
from likra.report import log_command

EXPERIMENT = "nat_curve"  # curve.json's "experiment": how the report tells it from Likra's curve.json
POSITIVES_ONLY = "pos-only"
SAVE_EVERY = 128  # trajectories between a run's checkpoints, so that an interrupted run resumes near where it was
# the evaluation options that do not change a finished evaluation's numbers (where the folder is, not what it holds)
EVAL_FREE = ("checkpoint", "data_dir", "batch_size", "device")
METRICS = ("accuracy", "n", "ci95_low", "ci95_high", "mean_steps", "tool_error_rate", "finished", "top_answer_share",
           "majority_baseline")  # fmt: skip
CSV_FIELDS = ["template", "neg_num", "seed", *METRICS, "p_vs_pos_only", "p_vs_none", "run"]


@dataclass(frozen=True)
class Point:
    """One (template, negative count, seed) of the curve and the run that gives it."""

    template: str
    neg_num: int
    seed: int

    @property
    def run(self) -> str:
        return f"{POSITIVES_ONLY}-seed-{self.seed}" if self.neg_num == 0 else (
            f"{self.template}-neg-{self.neg_num}-seed-{self.seed}")  # fmt: skip


def curve_points(config: NATCurveConfig, negatives: int) -> list[Point]:
    """Every point, ``all`` standing for the ``negatives`` available; a count above that is refused."""
    counts = []
    for raw in config.neg_nums:
        count = negatives if raw == "all" else int(raw)
        if count > negatives:
            raise LikraError(f"--neg-nums {raw}: only {negatives} negative trajectories are available (after the "
                             "leakage guard)")  # fmt: skip
        counts.append(count)
    counts = sorted(set(counts))
    return [Point(t, n, s) for s in config.seeds for t in config.templates for n in counts]


def run_nat_curve(
    config: NATCurveConfig,
    out: str | Path,
    log: Callable[[str], None] = print,
    progress: ProgressFactory = no_progress,
) -> dict[str, Any]:
    """Train and evaluate what is missing, then write ``curve.csv``, ``curve.json`` and ``curve.png``."""
    out = Path(out)
    available = select_trajectories(replace(config.train, neg_num=None)).negatives  # data errors before any work
    points = curve_points(config, available)
    for run in dict.fromkeys(p.run for p in points):
        point = next(p for p in points if p.run == run)
        _run_point(config, point, out / "runs" / run, log, progress)
    rows = curve_rows(out, points)
    write_csv(out / "curve.csv", rows, CSV_FIELDS)
    summary = {"experiment": EXPERIMENT, "config": asdict(config), "negatives_available": available, "rows": rows}
    write_json(out / "curve.json", summary)
    task = config.train.task
    plot_nat_curve(rows, out / "curve.png", f"{task}: {config.train.pos_num or 'all'} positives, NAT against mixing")
    return summary


def _run_point(
    config: NATCurveConfig, point: Point, run: Path, log: Callable[[str], None], progress: ProgressFactory
) -> None:
    """Train the point's run unless it is finished or its evaluation is, then evaluate it unless done."""
    eval_config = config.eval_config(str(run))
    if finished(run / "eval", eval_config):
        return
    train_config = config.run_config(point.seed, point.neg_num, point.template)
    data = select_trajectories(train_config)
    total = len(data.trajectories) * train_config.epochs
    if not train_config.save_at:  # checkpoints on the way, at batch boundaries (they do not change the training)
        every = max(1, SAVE_EVERY // train_config.batch_size) * train_config.batch_size
        train_config = replace(train_config, save_at=list(range(every, total, every)))
    if not (run / f"step-{total}").is_dir():
        log(f"{run.name}: training on {data.positives} positives + {data.negatives} negatives in {run}")
        loaded = load_model(train_config.model, dtype=config.train_dtype, device=train_config.device, training=True)
        with progress(total, f"{run.name} training") as advance:
            result = train_agent(loaded, train_config, run, resume=run.is_dir(), data=data, progress=advance)
        log_command(run, ["nat curve: trained", run.name], result.seconds)  # each piece's time, for the record
    log(f"{run.name}: evaluating in {run / 'eval'}")
    started = time.perf_counter()
    evaluate_agent(eval_config, run / "eval", progress)
    log_command(run, ["nat curve: evaluated", run.name], time.perf_counter() - started)


def finished(folder: Path, config: AgentEvalConfig) -> bool:
    """Whether ``folder`` holds a finished evaluation with these options (where it lives aside)."""
    path = folder / "results.json"
    if not (path.is_file() and (folder / "items.jsonl").is_file()):
        return False
    recorded = read_json(path, keys=("config",), what="a likra nat eval result")["config"]
    wanted = {k: v for k, v in asdict(config).items() if k not in EVAL_FREE}
    changed = sorted(k for k in wanted if recorded.get(k) != wanted[k])
    if changed:
        raise LikraError(f"{folder}: holds an evaluation with other options ({', '.join(changed)}); pick a new --out")
    return True


def curve_rows(out: Path, points: list[Point]) -> list[dict[str, Any]]:
    """One row per point from the runs' ``items.jsonl``: accuracy with its 95% Wilson interval, the agent's
    habits, and exact McNemar against the positives-only run and against template ``none`` at the same count."""
    items: dict[str, list[Trajectory]] = {}
    for run in dict.fromkeys(p.run for p in points):
        items[run] = read_trajectories(out / "runs" / run / "eval" / "items.jsonl")
    rows = []
    for point in points:
        found = items[point.run]
        base, mixing = Point(point.template, 0, point.seed).run, Point("none", point.neg_num, point.seed).run
        rows.append({
            "template": point.template,
            "neg_num": point.neg_num,
            "seed": point.seed,
            **_metrics(found),
            "p_vs_pos_only": _paired(found, items[base]) if point.neg_num and base in items else None,
            "p_vs_none": _paired(found, items[mixing]) if point.neg_num and point.template != "none"
            and mixing in items else None,
            "run": point.run,
        })  # fmt: skip
    return rows


def _metrics(trajectories: list[Trajectory]) -> dict[str, Any]:
    from likra.nat.agent import summarize

    summary = summarize(trajectories)
    low, high = wilson_interval(sum(t.reward for t in trajectories), len(trajectories))
    return {**{k: summary[k] for k in METRICS if k in summary}, "ci95_low": low, "ci95_high": high}


def _paired(these: list[Trajectory], others: list[Trajectory] | None) -> float | None:
    """Exact McNemar on per-problem correctness; refused when the two runs scored other problems."""
    if others is None:
        return None
    if [t.id for t in these] != [t.id for t in others]:
        raise LikraError("the runs of one curve scored different problems; evaluate them with the same options")
    return mcnemar_exact([t.reward for t in these], [t.reward for t in others])


# --- its figure --------------------------------------------------------------------------------------


NAT_TEMPLATES = {"negative-aware": ("NAT (negative-aware prefix)", "tab:red"), "none": ("plain mixing", "tab:blue"),
                 "tags": ("tags", "tab:green"), "graded": ("graded", "tab:purple")}  # fmt: skip


def plot_nat_curve(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Accuracy against the number of negative trajectories, a line per template: the mean across seeds with a 95%
    band (t across seeds; one seed: its Wilson interval over problems); the positives-only run and the
    always-the-most-common-answer baseline as flat lines."""
    fig, ax = plots.axes()
    for template in dict.fromkeys(r["template"] for r in rows):
        part = [r for r in rows if r["template"] == template]
        label, colour = NAT_TEMPLATES.get(template, (template, "tab:gray"))
        xs = sorted({r["neg_num"] for r in part})
        by_x = {x: [r for r in part if r["neg_num"] == x] for x in xs}
        means, lows, highs = [], [], []
        for x in xs:
            mean, half = plots.mean_band([r["accuracy"] for r in by_x[x]])
            single = len(by_x[x]) == 1
            means.append(mean)
            lows.append(by_x[x][0]["ci95_low"] if single else mean - half)
            highs.append(by_x[x][0]["ci95_high"] if single else mean + half)
        ax.plot(xs, means, color=colour, marker="o", label=label)
        ax.fill_between(xs, lows, highs, color=colour, alpha=0.12)
    zero = [r["accuracy"] for r in rows if r["neg_num"] == 0]
    if zero:
        ax.axhline(plots.mean_band(zero)[0], color="black", linestyle="--", label="positives only (0 negatives)")
    ax.axhline(rows[0]["majority_baseline"], color="gray", linestyle=":", label="always the most common answer")
    return plots.finish(fig, ax, path, title, "negative trajectories added to the positives", "accuracy", False)
