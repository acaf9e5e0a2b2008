"""``likra nat``: NAT's commands (parse → config → one call of ``likra.nat`` → print), added to ``likra``'s CLI."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from likra.cli_options import DtypeOpt, ResumeOpt, config_options, recorded
from likra.cli_output import (
    console,
    log,
    nat_curve_table,
    print_agent_metrics,
    print_agent_training,
    print_comparison,
    print_loaded,
    progress_bar,
    say,
)
from likra.nat.configs import AgentEvalConfig, CollectConfig, NATConfig, NATCurveConfig

nat_app = typer.Typer(
    help="NAT: fine-tune tool-using agents on successful and failed trajectories.", no_args_is_help=True
)
NAT_TRAIN_HELP = {"batch_size": "Trajectories per optimiser step.",
                  "micro_batch_size": "Trajectories per forward pass.", "epochs": "Passes over the trajectories.",
                  "seed": "Seeds the samples, the order and the LoRA initialisation."}  # fmt: skip
NAT_CURVE_HELP = {"pos_num": "Positives in every run (a seeded sample; default all).",
                  "seed": "Seeds --sample (the problems scored) and sampling."}  # fmt: skip


@nat_app.command("train")
@recorded()
@config_options(NATConfig, help=NAT_TRAIN_HELP)
def nat_train(
    out: Annotated[str, typer.Option(help="Run folder: step-<trajectories>/agent/ (a peft adapter) + likra.json.")],
    config: NATConfig,
    dtype: DtypeOpt = "auto",
    resume: ResumeOpt = False,
) -> None:
    """Fine-tune an agent on successful and failed trajectories, each introduced by the template's prefix."""
    from likra.nat.training import run_nat_training

    result = run_nat_training(config, out, dtype=dtype, resume=resume, progress=progress_bar, log=say,
                              on_load=print_loaded)  # fmt: skip
    print_agent_training(result, out)


@nat_app.command("eval")
@recorded()
@config_options(AgentEvalConfig)
def nat_eval(
    out: Annotated[str, typer.Option(help="Folder: results.json, items.jsonl (every trajectory), parts/.")],
    config: AgentEvalConfig,
) -> None:
    """Run the agent on a task's problems (asking for a successful trajectory) and check its answers."""
    from likra.nat.runs import evaluate_agent

    started = time.perf_counter()
    results = evaluate_agent(config, out, progress=progress_bar)
    print_agent_metrics(f"{results['task']} · {results['split']} · template {results['template']}", results["metrics"])
    console.print(f"written: {out}/results.json, items.jsonl ({time.perf_counter() - started:.0f} s)")


@nat_app.command("collect")
@recorded()
@config_options(CollectConfig)
def nat_collect(
    out: Annotated[str, typer.Option(help="Folder: positive.jsonl, negative.jsonl, collect.json, t-<T>/.")],
    config: CollectConfig,
) -> None:
    """Sample trajectories with the task's tools at several temperatures, check them, and write NAT data."""
    from likra.nat.runs import collect

    summary = collect(config, out, progress=progress_bar)
    for temp, metrics in summary["per_temperature"].items():
        print_agent_metrics(f"temperature {temp}", metrics)
    console.print(
        f"{summary['positives']} positives ({summary['problems_solved']} of {summary['problems']} problems solved), "
        f"{summary['negatives']} negatives: {out}/positive.jsonl, negative.jsonl"
    )


@nat_app.command("compare")
def nat_compare(
    evals: Annotated[
        list[str], typer.Argument(help="likra nat eval folders on the same problems; the first is the reference.")
    ],
    csv_out: Annotated[str | None, typer.Option("--csv", help="Also write the table here.")] = None,
) -> None:
    """Agents side by side, each tested against the first (exact McNemar on per-problem correctness)."""
    from likra.nat.compare import compare_evals

    print_comparison(compare_evals(evals, csv_out))
    if csv_out:
        console.print(f"written: {csv_out}")


@nat_app.command("curve")
@recorded()
@config_options(NATCurveConfig, skip=("train", "eval"), build=False)
@config_options(NATConfig, into="train", help=NAT_CURVE_HELP, only=(
    "task", "model", "pos", "neg", "pos_num", "lr", "epochs", "batch_size", "bf16", "max_length", "eval_split",
    "data_dir", "device", "gradient_checkpointing", "report_to"))  # fmt: skip
@config_options(AgentEvalConfig, into="eval", help=NAT_CURVE_HELP, only=(
    "limit", "sample", "seed", "max_steps", "max_new_tokens", "dtype", "corpus", "search_url"))  # fmt: skip
def nat_curve(
    out: Annotated[str, typer.Option(help="Folder: runs/<run>/ (checkpoints, eval/), curve.csv, .json, .png.")],
    config: dict[str, Any],
    train: NATConfig,
    eval: AgentEvalConfig,
) -> None:
    """Accuracy against negative trajectories added to fixed positives, NAT's prefix against plain mixing: one
    training and one evaluation per template, count and seed (resumable; finished pieces are not redone)."""
    from likra.nat.curve import run_nat_curve

    started = time.perf_counter()
    summary = run_nat_curve(NATCurveConfig(**config, train=train, eval=eval), out, log=log, progress=progress_bar)
    console.print(nat_curve_table(summary["rows"]))
    console.print(f"written: {out}/curve.csv, curve.json, curve.png ({time.perf_counter() - started:.0f} s)")


@nat_app.command("gold")
@config_options(CollectConfig, only=("task", "split", "limit", "sample", "seed", "data_dir"),
                help={"split": "Default: the task's training split.", "seed": "Seeds --sample."})  # fmt: skip
def nat_gold(
    out: Annotated[str, typer.Option(help="JSONL file of successful trajectories.")],
    config: CollectConfig,
) -> None:
    """Write a task's reference solutions as successful trajectories (GSM8K: its calculator annotations)."""
    from likra.nat.demos import write_gold

    written, total = write_gold(out, config.task, config.split, limit=config.limit, sample=config.sample,
                                seed=config.seed, data_dir=config.data_dir)  # fmt: skip
    console.print(f"{written} reference trajectories (of {total} with tool calls): {out}")

