"""What the ``likra`` command prints: progress bars on stderr, result tables on stdout (rich)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Column, Table

console = Console()
err_console = Console(stderr=True)


@contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    quiet = err_console.quiet
    try:
        with Progress(*columns, console=err_console, transient=False) as progress:
            task = progress.add_task(description, total=total)
            try:
                yield lambda n: progress.advance(task, n)
            except BaseException:
                # an error ends the run as one line, without a half-drawn bar above it: a terminal erases the
                # bar; elsewhere (a log file) rich would end it with an empty line, so it says nothing
                progress.live.transient = True
                err_console.quiet = quiet or not err_console.is_terminal
                raise
    finally:
        err_console.quiet = quiet


def print_loaded(loaded: Any, role: str = "") -> None:
    """The run's header: which model runs where, in which dtype (on stdout, with the results: errors stay one line)."""
    from likra.models import device_name

    what = f"{role} model" if role else "model"
    console.print(f"{what} {loaded.name} on {loaded.device} ({device_name(loaded.device)}), {loaded.dtype}",
                  markup=False, highlight=False)  # fmt: skip


def print_results(results: dict) -> None:
    console.print(
        f"{results['task']} · {results['split']} · n={results['n']} · {results['shots']}-shot · {results['model']}"
    )
    if "checkpoint" in results:
        ckpt = results["checkpoint"]
        console.print(
            f"checkpoint {ckpt['path']} · {ckpt['examples_seen']} examples · heads {', '.join(ckpt['heads'])}"
        )
        if ckpt.get("trained_on_eval_questions"):
            err_console.print(
                f"[yellow]warning: the heads were trained on {ckpt['trained_on_eval_questions']} of these "
                f"{results['n']} questions (train with --hold-out {results['task']}:{results['split']})[/yellow]"
            )
    print_metrics(results)
    console.print(f"scored in {results['seconds']:.1f} s ({results['dtype']}, {results['device']})")


def print_metrics(results: dict) -> None:
    """The headline mode's metrics, then (when heads were scored) every mode side by side."""
    console.print(f"mode {results['mode']} (neg-weight {results['neg_weight']:g}) · headline: {results['norm']} norm")
    table = Table()
    table.add_column("metric")
    table.add_column("accuracy", justify="right")
    table.add_column("95% interval", justify="right")
    for name, value in results["metrics"].items():
        low, high = results["ci95"][name]
        table.add_row(name, f"{value:.4f}", f"{low:.3f}-{high:.3f}")
    console.print(table)
    modes = results.get("modes", {})
    if len(modes) > 1:
        names = list(results["metrics"])
        table = Table("mode", *names)
        for mode, metrics in modes.items():
            table.add_row(mode, *(f"{metrics[n]:.4f}" if n in metrics else "-" for n in names))
        console.print(table)
    print_verifier(results.get("verifier", {}))


def print_verifier(verifier: dict[str, dict[str, float]]) -> None:
    """Each method as a verifier: options scored on their own, correct against wrong."""
    if not verifier:
        return
    caption = "each option scored on its own; hard: against the base model's most likely wrong option"
    table = Table("verifier", "AUROC", "hard AUROC", "acc@50%", "acc@80%", caption=caption)
    for method, m in verifier.items():
        table.add_row(method, *(f"{m[k]:.4f}" for k in ("auroc", "hard_auroc", "acc_at_50", "acc_at_80")))
    console.print(table)


def mean_table(rows: list[dict], key: str, labels: list[str], title: str) -> Table:
    """Mean accuracy across seeds: one line per label of ``key``, one column per number of examples."""
    from likra.plots import mean_band

    examples = sorted({r["examples"] for r in rows})
    table = Table(title=title)
    table.add_column(key, no_wrap=True)
    for x in examples:
        table.add_column(str(x), justify="right")
    for label in labels:
        cells = []
        for x in examples:
            values = [r["accuracy"] for r in rows if r[key] == label and r["examples"] == x]
            cells.append(f"{mean_band(values)[0]:.3f}" if values else "-")
        table.add_row(label, *cells)
    return table


def log(text: str) -> None:
    """A progress line of an experiment, on stderr."""
    err_console.print(text, highlight=False)


def print_grid(summary: dict) -> None:
    """The grid's mean accuracy over (positives, negatives) and the value of one negative example."""
    from likra.plots import interval_text

    counts = summary["counts"]
    table = Table("positives / negatives", *(str(c) for c in counts), title="mean acc_norm")
    for n_pos, row in zip(counts, summary["mean_acc_norm"], strict=True):
        table.add_row(str(n_pos), *(f"{v:.3f}" for v in row))
    console.print(table)
    for entry in summary["value_of_a_negative"].values():
        if entry.get("ratio") is None:
            continue
        steps = "k = " + ", ".join(str(a) for a, _ in entry["steps"])
        per = f"per example {entry['gain_per_negative']:+.5f} vs {entry['gain_per_positive']:+.5f}"
        console.print(f"one negative example is worth {entry['ratio']:.2f} positive ones over {steps} "
                      f"(95% {interval_text(entry['ratio_ci95'])}; {per})")  # fmt: skip


def print_sweep(summary: dict, weights: list[float]) -> None:
    """Mean acc_norm per weight for the two weighted modes, and the flat levels."""
    rows = summary["rows"]
    table = Table("w", *(f"{m} acc_norm" for m in ("likra", "negbase")))
    for w in weights:
        cells = [statistics.fmean(r["acc_norm"] for r in rows if r["mode"] == m and r["neg_weight"] == w)
                 for m in ("likra", "negbase")]  # fmt: skip
        table.add_row(f"{w:g}", *(f"{c:.4f}" for c in cells))
    console.print(table)
    levels = summary["levels"]
    console.print(f"sft {levels['sft']:.4f} · base {levels['base']:.4f}")


def print_mass(summary: dict) -> None:
    """Each head's mean change per answer kind at the last checkpoint."""
    rows = summary["rows"]
    last = max(r["examples"] for r in rows)
    table = Table("answer", "positive head", "negative head", title=f"mean Δ log-likelihood per character, step-{last}")
    for answer in summary["answers"]:
        cells = [next((r for r in rows if r["examples"] == last and r["head"] == h and r["answer"] == answer), None)
                 for h in ("positive", "negative")]  # fmt: skip
        table.add_row(answer, *(f"{c['mean_delta_per_char']:+.4f}" if c else "-" for c in cells))
    console.print(table)


def print_comparison(rows: list[dict]) -> None:
    """NAT agents side by side."""
    table = Table(Column("run", no_wrap=True), "n", "accuracy", "p vs first", "steps", "tool errors", "finished",
                  "top answer")  # fmt: skip
    for row in rows:
        table.add_row(
            row["run"], str(row["n"]), f"{row['accuracy']:.4f}", f"{row['p_vs_first']:.3g}", f"{row['mean_steps']:.2f}",
            f"{row['tool_error_rate']:.3f}", f"{row['finished']:.3f}", f"{row['top_answer_share']:.3f}",
        )  # fmt: skip
    console.print(table)
    console.print(f"always the most common gold answer: {rows[0]['majority_baseline']:.4f}")


def nat_curve_table(rows: list[dict]) -> Table:
    """A NAT curve's points: accuracy with its 95% interval and the paired tests."""
    table = Table("template", "negatives", "seed", "accuracy", "95%", "p vs positives only", "p vs mixing",
                  title=f"always the most common gold answer: {rows[0]['majority_baseline']:.4f}")  # fmt: skip
    for r in rows:
        shown = [f"{r[k]:.3g}" if r[k] is not None else "" for k in ("p_vs_pos_only", "p_vs_none")]
        table.add_row(r["template"], str(r["neg_num"]), str(r["seed"]), f"{r['accuracy']:.4f}",
                      f"[{r['ci95_low']:.3f}, {r['ci95_high']:.3f}]", *shown)  # fmt: skip
    return table


def print_training(result: Any, out: str, loss: str = "answer-token loss") -> None:
    """Where the run resumed, each checkpoint's mean ``loss`` per head since the one before, and the time."""
    from likra.checkpoints import manifest_of

    if result.resumed_from:
        console.print(f"resumed from step-{result.resumed_from}")
    manifests = [(path, manifest_of(path)) for path in result.checkpoints]
    heads = manifests[-1][1].heads if manifests else []
    table = Table("checkpoint", *heads)
    for path, manifest in manifests:
        means = manifest.loss or {}
        table.add_row(path.name, *(f"{means[h]:.4f}" if means.get(h) is not None else "-" for h in heads))
    console.print(table)
    console.print(f"trained in {result.seconds:.1f} s; checkpoints in {out}/ (mean {loss} per interval)")


def print_curve(summary: dict, config: Any) -> None:
    """A curve's mean accuracy per method at each checkpoint, one table per evaluation set."""
    from likra.experiments.curve import drawn_rows

    rows = drawn_rows(summary, config)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for found in summary["eval_sets"]:
        part = [r for r in rows if (r["task"], r["split"]) == (found["task"], found["split"])]
        seeds_scored = len({r["seed"] for r in part})
        title = f"{found['task']} {found['split']} ({found['n']} questions): mean accuracy over {seeds_scored} seed(s)"
        console.print(mean_table(part, "method", methods, title))


def print_agent_training(result: Any, out: str) -> None:
    """Each checkpoint of an agent's run with its mean loss per trained token, and the time."""
    from likra.checkpoints import manifest_of

    for path in result.checkpoints:
        loss = manifest_of(path).loss or {}
        console.print(f"{path}: mean loss per trained token {next(iter(loss.values())):.4f}")
    console.print(f"trained in {result.seconds:.1f} s; checkpoints in {out}/")


def say(text: str) -> None:
    """A line of a command's output, on stdout."""
    console.print(text, markup=False, highlight=False)


def sparklines(rows: list[dict], methods: list[str]) -> str:
    """The learning curve as text: one bar per checkpoint, scaled between the lowest and highest accuracy."""
    bars = "▁▂▃▄▅▆▇█"
    values = [r["accuracy"] for r in rows if r["method"] in methods]
    low, high = min(values), max(values)
    examples = sorted({r["examples"] for r in rows})
    lines = [f"learning curve (accuracy {low:.3f} to {high:.3f}; examples {', '.join(map(str, examples))})"]
    for method in methods:
        points = {r["examples"]: r["accuracy"] for r in rows if r["method"] == method}
        line = "".join(bars[round((points[x] - low) / (high - low or 1) * (len(bars) - 1))] for x in examples)
        lines.append(f"  {method:<15} {line}  {points[examples[-1]]:.3f}")
    return "\n".join(lines)


def print_agent_metrics(title: str, metrics: dict) -> None:
    table = Table("n", "accuracy", "score", "mean steps", "tool-error rate", "finished", title=title)
    table.add_row(
        str(metrics["n"]),
        f"{metrics['accuracy']:.4f}",
        f"{metrics['score']:.4f}",
        f"{metrics['mean_steps']:.2f}",
        f"{metrics['tool_error_rate']:.3f}",
        f"{metrics['finished']:.3f}",
    )
    console.print(table)
