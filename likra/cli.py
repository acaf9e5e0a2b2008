"""The ``likra`` command: parse options, call the Python API, print tables, turn user mistakes into one line."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table

from likra.errors import LikraError
from likra.parallel import is_main
from likra.report import log_command

DEFAULT_MODEL_NAME = "smollm2-135m"  # likra.models.DEFAULT_MODEL, without importing it at start-up

app = typer.Typer(
    help="Teach language models from negative examples.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Alias (smollm2-135m), model directory, .gguf, Hub id.")]
TaskOpt = Annotated[str, typer.Option(help="arc_challenge, arc_easy, hellaswag, winogrande, mmlu, jsonl:PATH.")]
DtypeOpt = Annotated[str, typer.Option(help="auto (CUDA bfloat16, CPU float32), float32, bfloat16, float16.")]
ModeOpt = Annotated[
    str | None,
    typer.Option(help="likra (L+ - w·L-), sft (L+), negbase (Lbase - w·L-), posbase (L+ - Lbase), base."),
]
NegWeightOpt = Annotated[float, typer.Option(help="w, the negative head's weight.")]
NormOpt = Annotated[str, typer.Option(help="Headline normalisation: char (acc_norm), byte, token, none (acc).")]
LrOpt = Annotated[float, typer.Option(help="Constant AdamW learning rate.")]
NegativesOpt = Annotated[str, typer.Option(help="incorrect, hardest, easiest, irrelevant, unrelated.")]
HoldOutOpt = Annotated[
    str | None,
    typer.Option(help="More evaluation sets to keep out of the training pool: task[:split], comma-separated."),
]
BetaOpt = Annotated[float, typer.Option(help="DPO/KTO beta (TRL's default 0.1).")]
KtoDataOpt = Annotated[str, typer.Option(help="KTO's examples: both (positives and negatives) or negatives.")]
DataDirOpt = Annotated[
    str | None,
    typer.Option("--data-dir", envvar="LIKRA_DATA_DIR", help="Folder with arc/, hellaswag/, ... (else the Hub)."),
]


@contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)``."""
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


@app.command("eval")
def eval_command(
    model: ModelOpt = "smollm2-135m",
    task: TaskOpt = "arc_challenge",
    split: Annotated[str | None, typer.Option(help="Split as in the data (default: the task's test split).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N items.")] = None,
    sample: Annotated[int | None, typer.Option(help="A seeded random sample of N items.")] = None,
    shots: Annotated[int, typer.Option(help="Few-shot examples from the training split.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of few-shot examples and --sample.")] = 1234,
    data_dir: DataDirOpt = None,
    dtype: DtypeOpt = "auto",
    batch_tokens: Annotated[int, typer.Option(help="Padded tokens per forward pass.")] = 1024,
    calibrate: Annotated[bool, typer.Option(help="Also score answers after a bare 'Answer:' (acc_calibrated).")] = True,
    checkpoint: Annotated[
        str | None, typer.Option(help="A `likra train` folder or its step-K/: score its heads beside the base model.")
    ] = None,
    mode: ModeOpt = None,
    neg_weight: NegWeightOpt = 1.0,
    norm: NormOpt = "char",
    base_items: Annotated[
        str | None,
        typer.Option(help="items.jsonl of the base model on the same questions: run only the checkpoint's heads."),
    ] = None,
    out: Annotated[str | None, typer.Option(help="Write results JSON here.")] = None,
    items_out: Annotated[str | None, typer.Option(help="Write one JSON line per question here.")] = None,
) -> None:
    """Score every answer choice by log-likelihood and report accuracies."""
    from likra.checkpoints import check_base_model, load_checkpoint_base, read_manifest
    from likra.evaluation import (
        EvalConfig,
        check_checkpoint,
        count_requests,
        evaluate,
        prepare,
        read_items,
        write_items,
    )
    from likra.files import check_outputs, write_json
    from likra.models import load_model

    config = EvalConfig(
        task=task, split=split, limit=limit, sample=sample, shots=shots, seed=seed, data_dir=data_dir,
        batch_tokens=batch_tokens, calibrate=calibrate, checkpoint=checkpoint, mode=mode, neg_weight=neg_weight,
        norm=norm,
    )  # fmt: skip
    config.check()
    user_file = task.removeprefix("jsonl:") if task.startswith("jsonl:") else None
    check_outputs({"--out": out, "--items-out": items_out}, {"--task": user_file, "--base-items": base_items})
    requests = prepare(config)  # data errors surface before the model loads
    base = read_items(base_items) if base_items else None
    if base is not None and not checkpoint:
        raise LikraError("--base-items: only with --checkpoint (it replaces the base model's pass)")
    if checkpoint:
        _, manifest = read_manifest(checkpoint)
        check_checkpoint(config, manifest)
        given = None if model == DEFAULT_MODEL_NAME else model  # the checkpoint's own base model unless told
        loaded = load_checkpoint_base(checkpoint, manifest, given, dtype=dtype)
        check_base_model(loaded, checkpoint)  # before the progress bar starts
    else:
        loaded = load_model(model, dtype=dtype)
    with progress_bar(count_requests(requests, calibrate), f"scoring {len(requests)} questions") as advance:
        result = evaluate(loaded, config, requests, advance, base)
    print_results(result.results)
    if not is_main():  # under `accelerate launch`, every process holds the gathered results; one writes them
        return
    if out:
        write_json(out, result.results)
        console.print(f"results: {out}")
    if items_out:
        write_items(items_out, result.items)
        console.print(f"items: {items_out}")


SplitOpt = Annotated[str | None, typer.Option(help="The evaluation split kept out of the pool.")]
NOpt = Annotated[int | None, typer.Option("--n", help="Questions to train on (default: the whole pool).")]
LoraROpt = Annotated[int, typer.Option(help="LoRA rank.")]
LoraAlphaOpt = Annotated[int, typer.Option(help="LoRA alpha.")]
TargetModulesOpt = Annotated[str, typer.Option(help="Comma-separated module names.")]
BatchSizeOpt = Annotated[int, typer.Option(help="Questions per optimiser step.")]
Bf16Opt = Annotated[bool, typer.Option(help="bfloat16 autocast (weights and optimiser stay in --dtype).")]
TrainSeedOpt = Annotated[int, typer.Option(help="Seeds question order, negatives and LoRA initialisation.")]
SaveAtOpt = Annotated[str | None, typer.Option(help="Comma-separated example counts (default 8,16,32,...).")]
TrainFileOpt = Annotated[str | None, typer.Option(help="A JSONL pool in the task's format (needed for jsonl:).")]
ResumeOpt = Annotated[bool, typer.Option(help="Continue from the newest complete checkpoint in --out.")]


@app.command()
def train(
    out: Annotated[str, typer.Option(help="Run folder: step-<examples>/{positive,negative}/ + likra.json.")],
    model: ModelOpt = "smollm2-135m",
    task: TaskOpt = "arc_challenge",
    split: SplitOpt = None,
    n: NOpt = None,
    negatives: NegativesOpt = "incorrect",
    negatives_per_question: Annotated[int, typer.Option(help="Negative answers per question.")] = 1,
    contamination: Annotated[float, typer.Option(help="Fraction of negatives replaced by the correct answer.")] = 0.0,
    heads: Annotated[str, typer.Option(help="both, positive, negative.")] = "both",
    method: Annotated[
        str, typer.Option(help="likra (two heads) or prefix (one adapter, each answer after a line naming its kind).")
    ] = "likra",
    lr: LrOpt = 1e-3,
    lora_r: LoraROpt = 8,
    lora_alpha: LoraAlphaOpt = 8,
    lora_dropout: Annotated[float, typer.Option(help="LoRA dropout.")] = 0.0,
    target_modules: TargetModulesOpt = "gate_proj,up_proj,down_proj",
    batch_size: BatchSizeOpt = 8,
    micro_batch_size: Annotated[int | None, typer.Option(help="Questions per forward pass (accumulation).")] = None,
    bf16: Bf16Opt = False,
    epochs: Annotated[int, typer.Option(help="Passes over the questions.")] = 1,
    seed: TrainSeedOpt = 1234,
    save_at: SaveAtOpt = None,
    max_length: Annotated[int, typer.Option(help="Longest example in tokens (the context is cut on the left).")] = 1024,
    train_file: TrainFileOpt = None,
    hold_out: HoldOutOpt = None,
    data_dir: DataDirOpt = None,
    dtype: DtypeOpt = "auto",
    resume: ResumeOpt = False,
) -> None:
    """Train a positive head on correct answers and a negative head on wrong ones (LoRA adapters)."""
    from likra.training import TrainConfig
    from likra.training import train as run_training

    config = TrainConfig(
        model=model,
        task=task,
        eval_split=split,
        n=n,
        negatives=negatives,
        negatives_per_question=negatives_per_question,
        contamination=contamination,
        heads=heads,
        method=method,
        lr=lr,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=_str_list(target_modules),
        batch_size=batch_size,
        micro_batch_size=micro_batch_size,
        bf16=bf16,
        epochs=epochs,
        seed=seed,
        save_at=_int_list(save_at, "--save-at"),
        max_length=max_length,
        data_dir=data_dir,
        train_file=train_file,
        hold_out=_str_list(hold_out),
    )
    _train_and_report(config, dtype, out, resume, run_training)


def _train_and_report(config: Any, dtype: str, out: str, resume: bool, run: Callable[..., Any]) -> None:
    """The body of ``likra train`` and ``likra baseline``: check, load, build the data, train with a progress bar,
    print the checkpoints' losses. ``run`` is ``likra.training.train`` or ``likra.baselines.train_baseline``."""
    from likra.data.pools import training_pool
    from likra.models import load_model
    from likra.training import build_training_set, save_points

    config.check()
    # data errors surface before the model loads
    pool = training_pool(config.task, config.eval_split, config.data_dir, config.train_file, config.hold_out)
    console.print(
        f"training pool: {len(pool.items)} questions from {', '.join(pool.sources)} "
        f"({len(pool.dropped)} dropped: they occur in {', '.join(pool.held_out)})"
    )
    loaded = load_model(config.model, dtype=dtype)
    data = build_training_set(config, loaded, pool)
    total = len(data.questions) * config.epochs
    what = {"likra": f"heads: {config.heads}", "prefix": "prefix Likra (one adapter)"}.get(
        config.method, f"{config.method.upper()} (TRL)"
    )
    console.print(
        f"{len(data.questions)} questions x {config.epochs} epoch(s), {config.negatives} negatives, {what}; "
        f"checkpoints at {', '.join(map(str, save_points(total, config.save_at)))} examples"
    )
    with progress_bar(total, "training") as advance:
        result = run(loaded, config, out, resume=resume, data=data, progress=advance)
    if result.resumed_from:
        console.print(f"resumed from step-{result.resumed_from}")
    heads = list(json.loads((result.checkpoints[-1] / "likra.json").read_text())["heads"]) if result.checkpoints else []
    table = Table("checkpoint", *heads)
    for path in result.checkpoints:
        loss = json.loads((path / "likra.json").read_text())["loss"]
        table.add_row(path.name, *(f"{loss[h]:.4f}" if loss.get(h) is not None else "-" for h in heads))
    console.print(table)
    loss = "the DPO/KTO loss" if hasattr(config, "method") else "answer-token loss"
    console.print(f"trained in {result.seconds:.1f} s; checkpoints in {out}/ (mean {loss} per interval)")


@app.command()
def baseline(
    method: Annotated[str, typer.Argument(help="dpo (correct vs negative pairs) or kto (unpaired).")],
    out: Annotated[str, typer.Option(help="Run folder: step-<examples>/positive/ (the policy) + likra.json.")],
    model: ModelOpt = "smollm2-135m",
    task: TaskOpt = "arc_challenge",
    split: SplitOpt = None,
    n: NOpt = None,
    negatives: NegativesOpt = "incorrect",
    beta: BetaOpt = 0.1,
    kto_data: KtoDataOpt = "both",
    lr: LrOpt = 1e-3,
    lora_r: LoraROpt = 8,
    lora_alpha: LoraAlphaOpt = 8,
    target_modules: TargetModulesOpt = "gate_proj,up_proj,down_proj",
    batch_size: BatchSizeOpt = 8,
    bf16: Bf16Opt = False,
    seed: TrainSeedOpt = 1234,
    save_at: SaveAtOpt = None,
    max_length: Annotated[int, typer.Option(help="Longest example in tokens.")] = 1024,
    train_file: TrainFileOpt = None,
    hold_out: HoldOutOpt = None,
    data_dir: DataDirOpt = None,
    dtype: DtypeOpt = "auto",
    resume: ResumeOpt = False,
) -> None:
    """DPO or KTO with TRL on Likra's data (same questions, negatives, seeds, LoRA), checkpoints at the same counts."""
    from likra.baselines import BaselineConfig, train_baseline

    _quiet_trl()
    config = BaselineConfig(
        model=model,
        task=task,
        eval_split=split,
        n=n,
        negatives=negatives,
        lr=lr,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        target_modules=_str_list(target_modules),
        batch_size=batch_size,
        bf16=bf16,
        seed=seed,
        save_at=_int_list(save_at, "--save-at"),
        max_length=max_length,
        data_dir=data_dir,
        train_file=train_file,
        hold_out=_str_list(hold_out),
        method=method,
        beta=beta,
        kto_data=kto_data,
    )
    _train_and_report(config, dtype, out, resume, train_baseline)


def _quiet_trl() -> None:
    """TRL's dataset preparation bars would interleave with ours."""
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()


@app.command()
def export(
    out: Annotated[str, typer.Option(help="JSONL file to write.")],
    fmt: Annotated[
        str, typer.Option("--format", help="dpo (prompt/chosen/rejected) or kto (prompt/completion/label).")
    ],
    task: TaskOpt = "arc_challenge",
    split: Annotated[str | None, typer.Option(help="The evaluation split kept out of the pool.")] = None,
    n: Annotated[int | None, typer.Option("--n", help="Questions (default: the whole pool).")] = None,
    negatives: NegativesOpt = "incorrect",
    kto_data: KtoDataOpt = "both",
    seed: Annotated[int, typer.Option(help="Seeds question order and negatives.")] = 1234,
    train_file: Annotated[str | None, typer.Option(help="A JSONL pool in the task's format.")] = None,
    hold_out: HoldOutOpt = None,
    data_dir: DataDirOpt = None,
    model: Annotated[
        str, typer.Option("--model", "-m", help="Only for --negatives hardest/easiest (ranks the options).")
    ] = "smollm2-135m",
) -> None:
    """Write Likra's training data as DPO pairs or KTO labels (JSONL, TRL's column names) for training elsewhere."""
    from likra.baselines import BaselineConfig, preference_rows
    from likra.files import check_outputs, write_text
    from likra.negatives import NEEDS_BASE_SCORES
    from likra.training import build_training_set

    check_outputs({"--out": out}, {"--train-file": train_file})
    config = BaselineConfig(
        model=model, task=task, eval_split=split, n=n, negatives=negatives, seed=seed, train_file=train_file,
        hold_out=_str_list(hold_out), data_dir=data_dir, method=fmt, kto_data=kto_data,
    )  # fmt: skip
    if fmt not in ("dpo", "kto"):
        raise LikraError(f"--format {fmt}: expected dpo or kto")
    config.check()
    loaded = None
    if negatives in NEEDS_BASE_SCORES:
        from likra.models import load_model

        loaded = load_model(model)
    rows = [row for rows in preference_rows(build_training_set(config, loaded), fmt, kto_data) for row in rows]
    write_text(out, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    console.print(f"{len(rows)} {fmt.upper()} rows from {config.n or 'all'} questions: {out}")


CurveOutOpt = Annotated[str, typer.Option(help="Experiment folder (runs/, scores/, CSV, JSON, PNG).")]
MaxNOpt = Annotated[int, typer.Option(help="Largest number of training questions (checkpoints 8, 16, ...).")]
SeedsOpt = Annotated[int, typer.Option(help="Training runs with seeds 1..S (data order, negatives, init).")]
EvalTaskOpt = Annotated[str | None, typer.Option(help="Task to score on (default: --task).")]
EvalSplitOpt = Annotated[str | None, typer.Option(help="Split to score on (default: the test split).")]
LimitOpt = Annotated[int | None, typer.Option(help="Only the first N questions.")]
SampleOpt = Annotated[int | None, typer.Option(help="A seeded sample of N questions.")]
ScoreDtypeOpt = Annotated[str, typer.Option(help="Scoring dtype (training stays float32 on the CPU).")]


def _experiment(
    model: str,
    task: str,
    max_n: int,
    seeds: int,
    negatives: str,
    lr: float,
    eval_task: str | None,
    eval_split: str | None,
    limit: int | None,
    sample: int | None,
    data_dir: str | None,
    dtype: str,
    hold_out: str | None = None,
) -> tuple[Any, Any, Any]:
    """The shared set-up of curve and ablate: a CurveConfig, the training model and the scoring model."""
    from likra.experiments.curve import CurveConfig
    from likra.models import load_model
    from likra.training import TrainConfig

    if seeds < 1:
        raise LikraError(f"--seeds {seeds}: must be 1 or more")
    train_config = TrainConfig(
        model=model, task=task, n=max_n, negatives=negatives, lr=lr, data_dir=data_dir, hold_out=_str_list(hold_out)
    )
    train_config.check()
    config = CurveConfig(train_config, list(range(1, seeds + 1)), eval_task, eval_split, limit, sample)
    trainer = load_model(model)
    scorer = trainer if dtype in ("auto", trainer.dtype) else load_model(model, dtype=dtype)
    return config, trainer, scorer


def _mean_table(rows: list[dict], key: str, labels: list[str], title: str) -> Table:
    """Mean accuracy across seeds: one line per label of ``key``, one column per number of examples."""
    from likra.report import mean_band

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


def _log(text: str) -> None:
    err_console.print(text, highlight=False)


@app.command()
def curve(
    out: CurveOutOpt,
    model: ModelOpt = "smollm2-135m",
    task: TaskOpt = "arc_challenge",
    max_n: MaxNOpt = 1024,
    seeds: SeedsOpt = 3,
    negatives: NegativesOpt = "incorrect",
    lr: LrOpt = 1e-3,
    eval_task: EvalTaskOpt = None,
    eval_split: EvalSplitOpt = None,
    limit: LimitOpt = None,
    sample: SampleOpt = None,
    hold_out: HoldOutOpt = None,
    data_dir: DataDirOpt = None,
    dtype: ScoreDtypeOpt = "auto",
    methods: Annotated[
        str,
        typer.Option(
            help="Curves to draw (and the runs they need): sft, sft_calibrated, likra, negbase, dpo, kto, "
            "dpo_reward, kto_reward (the baselines' implicit reward), prefix, prefix_sft (prefix Likra)."
        ),
    ] = "sft,sft_calibrated,likra,negbase",
    baseline_lr: Annotated[float | None, typer.Option(help="DPO/KTO learning rate (default: --lr).")] = None,
    beta: BetaOpt = 0.1,
    kto_data: KtoDataOpt = "both",
    plot: Annotated[str | None, typer.Option(help="Figure file (default: OUT/curve.png).")] = None,
) -> None:
    """Learning curves of SFT, Likra and Base-Likra (and calibrated controls; DPO and KTO with --methods)
    across checkpoints and seeds."""
    started = time.perf_counter()
    from likra.experiments.curve import run_curve
    from likra.report import plot_curve

    config, trainer, scorer = _experiment(
        model, task, max_n, seeds, negatives, lr, eval_task, eval_split, limit, sample, data_dir, dtype, hold_out
    )
    config = replace(config, methods=_str_list(methods), baseline_lr=baseline_lr, beta=beta, kto_data=kto_data)
    config.check()
    summary = run_curve(trainer, scorer, config, out, log=_log)
    # the figure and tables: the methods and seeds asked for (curve.csv keeps every row scored in the folder)
    drawn = {*config.methods, "base", "base_calibrated"}
    rows = [r for r in summary["rows"] if r["method"] in drawn and r["seed"] in config.seeds]
    figure = plot or str(Path(out) / "curve.png")
    plot_curve(rows, figure, f"{model} · heads trained on the {task} pool")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for found in summary["eval_sets"]:
        part = [r for r in rows if (r["task"], r["split"]) == (found["task"], found["split"])]
        seeds_scored = len({r["seed"] for r in part})
        title = f"{found['task']} {found['split']} ({found['n']} questions): mean accuracy over {seeds_scored} seed(s)"
        console.print(_mean_table(part, "method", methods, title))
    console.print(f"written: {out}/curve.csv, curve.json, {figure}")
    log_command(out, sys.argv[1:], time.perf_counter() - started)


@app.command()
def demo(
    out: Annotated[str, typer.Option(help="Folder for the runs, scores, curve and report.")] = "out/demo",
    model: ModelOpt = "smollm2-135m",
    n: Annotated[int, typer.Option("--n", help="Training questions (checkpoints 8, 16, ... on the way).")] = 256,
    sample: Annotated[int, typer.Option(help="Seeded sample of ARC-Challenge test questions to score.")] = 500,
    data_dir: DataDirOpt = None,
    dtype: ScoreDtypeOpt = "bfloat16",
) -> None:
    """The main job: train both heads on ARC, score base, SFT, Likra and Base-Likra at every checkpoint on a
    seeded sample of ARC-Challenge test, print the curve, write the report."""
    from likra.experiments.curve import run_curve
    from likra.report import plot_curve, write_report

    started = time.perf_counter()
    config, trainer, scorer = _experiment(
        model, "arc_challenge", n, 1, "incorrect", 1e-3, None, None, None, sample, data_dir, dtype
    )
    summary = run_curve(trainer, scorer, config, out, log=_log)
    rows = summary["rows"]
    title = f"ARC-Challenge test, {rows[0]['n']} questions · {model} · 1 seed"
    plot_curve(rows, Path(out) / "curve.png", title)
    methods = ["base", "sft", "sft_calibrated", "likra", "negbase"]
    console.print(_mean_table([r for r in rows if r["method"] in methods], "method", methods, title))
    console.print(_sparklines(rows, methods))
    log_command(out, sys.argv[1:], time.perf_counter() - started)
    html_path, _ = write_report(out)
    console.print(f"done in {time.perf_counter() - started:.0f} s; report: {html_path}")


def _sparklines(rows: list[dict], methods: list[str]) -> str:
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


@app.command()
def ablate(
    out: CurveOutOpt,
    negatives: Annotated[str, typer.Option(help="Comma-separated kinds; the first is the curve's own.")] = (
        "incorrect,irrelevant,unrelated,hardest,easiest"
    ),
    model: ModelOpt = "smollm2-135m",
    task: TaskOpt = "arc_challenge",
    max_n: MaxNOpt = 1024,
    seeds: SeedsOpt = 3,
    lr: LrOpt = 1e-3,
    eval_task: EvalTaskOpt = None,
    eval_split: EvalSplitOpt = None,
    limit: LimitOpt = None,
    sample: SampleOpt = None,
    hold_out: HoldOutOpt = None,
    data_dir: DataDirOpt = None,
    dtype: ScoreDtypeOpt = "auto",
) -> None:
    """One Likra curve per negative kind, all with the same positive head (the paper's Figure 5)."""
    started = time.perf_counter()
    from likra.evaluation import read_items
    from likra.experiments.ablate import run_ablation
    from likra.experiments.curve import scores_dir_of
    from likra.metrics import summarize_mode
    from likra.report import plot_ablation

    kinds = _str_list(negatives)
    if not kinds:
        raise LikraError("--negatives: name at least one kind")
    config, trainer, scorer = _experiment(
        model, task, max_n, seeds, kinds[0], lr, eval_task, eval_split, limit, sample, data_dir, dtype, hold_out
    )
    summary = run_ablation(trainer, scorer, config, kinds, out, log=_log)
    rows = summary["rows"]
    base = read_items(scores_dir_of(Path(out), config) / "base.items.jsonl")
    plot_ablation(
        rows, Path(out) / "ablate.png", f"negative kinds · {model}", {"base": summarize_mode(base)[0]["acc_norm"]}
    )
    likra_rows = [r for r in rows if r["method"] == "likra"]
    console.print(_mean_table(likra_rows, "kind", kinds, f"Likra acc_norm, mean over {seeds} seed(s)"))
    console.print(f"written: {out}/ablate.csv, ablate.json, ablate.png")
    log_command(out, sys.argv[1:], time.perf_counter() - started)


@app.command()
def sweep(
    out: Annotated[str, typer.Option(help="Folder for items.jsonl, sweep.csv, sweep.json, sweep.png.")],
    checkpoint: Annotated[str | None, typer.Option(help="A `likra train` folder or step-K/ (scored once).")] = None,
    items: Annotated[
        str | None,
        typer.Option(help="Stored items.jsonl with heads instead (no model); comma-separated: mean over them."),
    ] = None,
    weights: Annotated[str, typer.Option(help="start:stop:step (stop included) or a list.")] = "0:1.5:0.1",
    task: TaskOpt = "arc_challenge",
    split: Annotated[str | None, typer.Option(help="Split to score on (default: the test split).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N questions.")] = None,
    sample: Annotated[int | None, typer.Option(help="A seeded sample of N questions.")] = None,
    data_dir: DataDirOpt = None,
    dtype: DtypeOpt = "auto",
) -> None:
    """Accuracy against the negative head's weight, from one scoring pass (the paper's Figure 4)."""
    started = time.perf_counter()
    from likra.checkpoints import load_checkpoint_base, read_manifest
    from likra.evaluation import EvalConfig, evaluate, read_items, write_items
    from likra.experiments.curve import write_csv
    from likra.experiments.sweep import parse_weights, sweep_rows
    from likra.files import write_json
    from likra.metrics import summarize_mode
    from likra.report import plot_sweep

    mean = statistics.fmean
    grid = parse_weights(weights)
    if (checkpoint is None) == (items is None):
        raise LikraError("give --checkpoint (scored once here) or --items (stored scores), not both")
    stored = Path(out) / "items.jsonl"
    if items is None and not stored.is_file():
        _, manifest = read_manifest(checkpoint)
        loaded = load_checkpoint_base(checkpoint, manifest, dtype=dtype)
        config = EvalConfig(task, split, limit, sample, data_dir=data_dir, checkpoint=checkpoint)
        write_items(stored, evaluate(loaded, config).items)
    paths = _str_list(items) if items is not None else [str(stored)]
    runs = [read_items(path) for path in paths]
    rows = [row for run, scores in enumerate(runs, 1) for row in sweep_rows(scores, grid, run)]
    levels = {m: mean([summarize_mode(scores, m)[0]["acc_norm"] for scores in runs]) for m in ("sft", "base")}
    write_csv(Path(out) / "sweep.csv", rows, list(rows[0]))
    write_json(Path(out) / "sweep.json", {"items": paths, "levels": levels, "rows": rows})
    source = checkpoint or (paths[0] if len(paths) == 1 else f"mean of {len(paths)} checkpoints")
    plot_sweep(rows, Path(out) / "sweep.png", f"{len(runs[0])} questions · {source}", levels)
    table = Table("w", *(f"{m} acc_norm" for m in ("likra", "negbase")))
    for w in grid:
        cells = [
            mean([r["acc_norm"] for r in rows if r["mode"] == m and r["neg_weight"] == w]) for m in ("likra", "negbase")
        ]
        table.add_row(f"{w:g}", *(f"{c:.4f}" for c in cells))
    console.print(table)
    console.print(
        f"sft {levels['sft']:.4f} · base {levels['base']:.4f} · written: {out}/sweep.csv, sweep.json, sweep.png"
    )
    log_command(out, sys.argv[1:], time.perf_counter() - started)


@app.command()
def grid(
    folder: Annotated[str, typer.Argument(help="A `likra curve` folder (its stored per-head scores).")],
    out: Annotated[str | None, typer.Option(help="Folder for grid.csv, grid.json, grid.png (default: FOLDER).")] = None,
    eval_task: Annotated[str | None, typer.Option(help="Evaluation set (default: the first scored).")] = None,
    eval_split: EvalSplitOpt = None,
    neg_weight: NegWeightOpt = 1.0,
    threshold: Annotated[int, typer.Option(help="Report the value of a negative up to and from this count.")] = 128,
    bootstrap: Annotated[int, typer.Option(help="Resamples (seeds and questions) for the 95% intervals.")] = 2000,
) -> None:
    """Positive and negative examples counted apart: Likra with n_pos positives and n_neg negatives from the
    curve's stored scores (no model), and the value of one negative example relative to one positive."""
    started = time.perf_counter()
    from likra.experiments.grid import GridConfig, run_grid
    from likra.report import interval_text

    config = GridConfig(
        eval_task=eval_task, eval_split=eval_split, neg_weight=neg_weight, threshold=threshold, bootstrap=bootstrap
    )
    summary = run_grid(folder, config, out)
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
    target = out or folder
    console.print(f"written: {target}/grid.csv, grid.json, grid.png")
    log_command(target, sys.argv[1:], time.perf_counter() - started)


@app.command()
def mass(
    checkpoint: Annotated[str, typer.Option(help="A `likra train` folder (every checkpoint) or one step-K/.")],
    out: Annotated[str, typer.Option(help="Folder for questions.jsonl, items, mass.csv, mass.json, mass.png.")],
    split: Annotated[str | None, typer.Option(help="Split of the checkpoint's task (default: test).")] = None,
    limit: LimitOpt = None,
    sample: SampleOpt = 300,
    data_dir: DataDirOpt = None,
    dtype: DtypeOpt = "auto",
) -> None:
    """Where the probability mass goes: correct, likely incorrect, irrelevant and unrelated answers under
    each head, as change from the base model (the paper's Figure 6)."""
    started = time.perf_counter()
    from likra.checkpoints import load_checkpoint_base, read_manifest
    from likra.experiments.mass import run_mass
    from likra.report import plot_mass

    if limit is not None:
        sample = None
    _, manifest = read_manifest(checkpoint)
    loaded = load_checkpoint_base(checkpoint, manifest, dtype=dtype)
    summary = run_mass(loaded, checkpoint, out, split=split, limit=limit, sample=sample, data_dir=data_dir, log=_log)
    rows = summary["rows"]
    plot_mass(rows, Path(out) / "mass.png", f"{summary['task']} · {summary['n_questions']} questions")
    last = max(r["examples"] for r in rows)
    table = Table("answer", "positive head", "negative head", title=f"mean Δ log-likelihood per character, step-{last}")
    for answer in summary["answers"]:
        cells = [next((r for r in rows if r["examples"] == last and r["head"] == h and r["answer"] == answer), None)
                 for h in ("positive", "negative")]  # fmt: skip
        table.add_row(answer, *(f"{c['mean_delta_per_char']:+.4f}" if c else "-" for c in cells))
    console.print(table)
    console.print(f"written: {out}/mass.csv, mass.json, mass.png")
    log_command(out, sys.argv[1:], time.perf_counter() - started)


@app.command()
def report(folder: Annotated[str, typer.Argument(help="An experiment folder (curve, ablate, sweep, mass).")]) -> None:
    """One self-contained HTML page (figures embedded) and a Markdown summary of the experiments in FOLDER."""
    from likra.report import write_report

    html_path, md_path = write_report(folder)
    console.print(f"report: {html_path} (and {md_path})")


@app.command()
def rescore(
    items: Annotated[str, typer.Argument(help="items.jsonl written by `likra eval --items-out`.")],
    mode: ModeOpt = "likra",
    neg_weight: NegWeightOpt = 1.0,
    norm: NormOpt = "char",
    out: Annotated[str | None, typer.Option(help="Write results JSON here.")] = None,
) -> None:
    """Recompute accuracies for any mode and weight from stored per-head log-likelihoods (no model)."""
    from likra.evaluation import read_items, summarize_results
    from likra.files import check_outputs, write_json

    check_outputs({"--out": out}, {"ITEMS": items})
    scores = read_items(items)
    results = {"items": items, "n": len(scores), **summarize_results(scores, mode, neg_weight, norm)}
    console.print(f"{items} · n={len(scores)}")
    print_metrics(results)
    if out:
        write_json(out, results)
        console.print(f"results: {out}")


def _int_list(value: str | None, option: str) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise LikraError(f"{option} {value}: expected comma-separated whole numbers") from None


def _str_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@app.command()
def prepare(model: ModelOpt = "smollm2-135m") -> None:
    """Convert an embedded model's GGUF to the safetensors cache (done once; later loads take seconds)."""
    from likra.models import resolve_model_path

    console.print(f"{model}: {resolve_model_path(model)}")


@app.command()
def tasks() -> None:
    """List the built-in tasks and their splits."""
    from likra.data import TASKS

    table = Table("task", "splits", "default", "few-shot from")
    for spec in TASKS.values():
        table.add_row(spec.name, ", ".join(spec.files), spec.default_split, spec.fewshot_split)
    table.add_row("jsonl:PATH", "test", "test", "the same file")
    console.print(table)


# --- NAT: negative-aware training of tool-using agents ------------------------------------------------


@app.command(
    "lm-eval",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def lm_eval_command(ctx: typer.Context) -> None:
    """lm-evaluation-harness's own command line (every option is lm_eval's) with `--model likra` registered.

    `likra lm-eval --model likra --model_args checkpoint=DIR,mode=likra,neg_weight=1 --tasks arc_challenge`.
    With --data-dir/LIKRA_DATA_DIR set and no --include_path, the tasks arc_challenge_local and arc_easy_local
    (lm-eval's ARC prompt over the local files) are added, for offline use."""
    try:
        import likra.harness  # registers --model likra
    except ImportError as err:
        raise LikraError(f"likra lm-eval needs lm-evaluation-harness ({err}): pip install 'likra[lm-eval]'") from None
    from likra.models import cache_dir

    args = list(ctx.args)
    data_dir = os.environ.get("LIKRA_DATA_DIR")
    if data_dir and not any(a.startswith("--include_path") for a in args):
        args += ["--include_path", str(likra.harness.write_local_tasks(data_dir, cache_dir() / "lm_eval_tasks"))]
    from lm_eval.__main__ import cli_evaluate

    sys.argv = ["lm_eval", *args]
    cli_evaluate()


nat_app = typer.Typer(
    help="NAT: fine-tune tool-using agents on successful and failed trajectories.", no_args_is_help=True
)
app.add_typer(nat_app, name="nat")

AgentTaskOpt = Annotated[str, typer.Option(help="gsm8k, strategyqa, hotpotqa, asdiv, multiarith, svamp.")]
TemplateOpt = Annotated[str, typer.Option(help="negative-aware, none (plain mixing), tags, graded.")]
MaxStepsOpt = Annotated[int, typer.Option(help="Most agent turns per episode.")]
CorpusOpt = Annotated[str | None, typer.Option(help="Offline search passages: text or JSONL files, comma-separated.")]
SearchUrlOpt = Annotated[str | None, typer.Option(help="An HTTP search service (GET ?q=&k= → JSON list).")]
BatchOpt = Annotated[int, typer.Option(help="Episodes generated together.")]
ShotsOpt = Annotated[int, typer.Option(help="Solved examples in the prompt (GSM8K: from its annotations).")]
DemosOpt = Annotated[str | None, typer.Option(help="Trajectory file to draw the solved examples from.")]
CheckpointOpt = Annotated[str | None, typer.Option(help="A NAT run or step-K (default: the base model).")]


def _print_agent_metrics(title: str, metrics: dict) -> None:
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


@nat_app.command("train")
def nat_train(
    out: Annotated[str, typer.Option(help="Run folder: step-<trajectories>/agent/ (a peft adapter) + likra.json.")],
    pos: Annotated[str, typer.Option(help="Successful trajectories: NAT .json or likra .jsonl, comma-separated.")],
    neg: Annotated[str | None, typer.Option(help="Failed trajectories, the same formats.")] = None,
    pos_num: Annotated[int | None, typer.Option(help="Positives to train on (seeded sample; default all).")] = None,
    neg_num: Annotated[int | None, typer.Option(help="Negatives to train on (default all; 0: none).")] = None,
    template: TemplateOpt = "negative-aware",
    model: ModelOpt = "smollm2-135m",
    task: AgentTaskOpt = "strategyqa",
    split: Annotated[str | None, typer.Option(help="Evaluation split whose questions are kept out.")] = None,
    full: Annotated[bool, typer.Option(help="Full fine-tuning instead of a LoRA adapter.")] = False,
    lr: LrOpt = 5e-4,
    lora_r: Annotated[int, typer.Option(help="LoRA rank.")] = 16,
    lora_alpha: Annotated[int, typer.Option(help="LoRA alpha.")] = 32,
    target_modules: Annotated[
        str, typer.Option(help="Comma-separated module names.")
    ] = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
    batch_size: Annotated[int, typer.Option(help="Trajectories per optimiser step.")] = 8,
    micro_batch_size: Annotated[int, typer.Option(help="Trajectories per forward pass.")] = 1,
    bf16: Bf16Opt = False,
    epochs: Annotated[int, typer.Option(help="Passes over the trajectories.")] = 1,
    seed: Annotated[int, typer.Option(help="Seeds the samples, the order and the LoRA initialisation.")] = 1234,
    save_at: Annotated[str | None, typer.Option(help="Comma-separated trajectory counts (default: the end).")] = None,
    max_length: Annotated[int, typer.Option(help="Longest trajectory in tokens (cut at the end).")] = 2048,
    data_dir: DataDirOpt = None,
    dtype: DtypeOpt = "auto",
    resume: ResumeOpt = False,
) -> None:
    """Fine-tune an agent on successful and failed trajectories, each introduced by the template's prefix."""
    from likra.models import load_model
    from likra.nat.training import NATConfig, select_trajectories, train_agent

    started = time.perf_counter()
    config = NATConfig(
        model=model,
        task=task,
        pos=_str_list(pos),
        neg=_str_list(neg),
        pos_num=pos_num,
        neg_num=neg_num,
        template=template,
        full=full,
        eval_split=split,
        data_dir=data_dir,
        lr=lr,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        target_modules=_str_list(target_modules),
        batch_size=batch_size,
        micro_batch_size=micro_batch_size,
        bf16=bf16,
        epochs=epochs,
        seed=seed,
        save_at=_int_list(save_at, "--save-at") or [],
        max_length=max_length,
    )
    config.check()
    data = select_trajectories(config)  # data errors surface before the model loads
    console.print(
        f"{data.positives} positives + {data.negatives} negatives, template {template} "
        f"({data.dropped} dropped: their questions are in the evaluation split; {data.empty} empty)"
    )
    loaded = load_model(model, dtype=dtype)
    total = len(data.trajectories) * epochs
    with progress_bar(total, "training") as advance:
        result = train_agent(loaded, config, out, resume=resume, data=data, progress=advance)
    for path in result.checkpoints:
        loss = json.loads((path / "likra.json").read_text())["loss"]
        console.print(f"{path}: mean loss per trained token {next(iter(loss.values())):.4f}")
    console.print(f"trained in {result.seconds:.1f} s; checkpoints in {out}/")
    log_command(out, sys.argv[1:], time.perf_counter() - started)


@nat_app.command("eval")
def nat_eval(
    out: Annotated[str, typer.Option(help="Folder: results.json, items.jsonl (every trajectory), parts/.")],
    task: AgentTaskOpt = "strategyqa",
    checkpoint: CheckpointOpt = None,
    model: ModelOpt = "smollm2-135m",
    split: Annotated[str | None, typer.Option(help="Default: the task's test split.")] = None,
    limit: LimitOpt = None,
    sample: SampleOpt = None,
    template: Annotated[
        str | None, typer.Option(help="Prompt template (default: the checkpoint's, else negative-aware).")
    ] = None,
    max_steps: MaxStepsOpt = 8,
    max_new_tokens: Annotated[int, typer.Option(help="Longest agent turn in tokens.")] = 160,
    batch_size: BatchOpt = 16,
    temperature: Annotated[float, typer.Option(help="0: greedy.")] = 0.0,
    shots: ShotsOpt = 0,
    demos: DemosOpt = None,
    seed: Annotated[int, typer.Option(help="Seeds --sample and sampling.")] = 1234,
    corpus: CorpusOpt = None,
    search_url: SearchUrlOpt = None,
    data_dir: DataDirOpt = None,
    dtype: DtypeOpt = "auto",
) -> None:
    """Run the agent on a task's problems (asking for a successful trajectory) and check its answers."""
    from likra.nat.runs import AgentEvalConfig, evaluate_agent

    started = time.perf_counter()
    config = AgentEvalConfig(
        task=task,
        model=model,
        checkpoint=checkpoint,
        split=split,
        limit=limit,
        sample=sample,
        template=template,
        max_steps=max_steps,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        temperature=temperature,
        shots=shots,
        demos=demos,
        seed=seed,
        dtype=dtype,
        data_dir=data_dir,
        corpus=_str_list(corpus),
        search_url=search_url,
    )
    results = evaluate_agent(config, out, progress=progress_bar)
    _print_agent_metrics(f"{results['task']} · {results['split']} · template {results['template']}", results["metrics"])
    console.print(f"written: {out}/results.json, items.jsonl ({time.perf_counter() - started:.0f} s)")
    log_command(out, sys.argv[1:], time.perf_counter() - started)


@nat_app.command("collect")
def nat_collect(
    out: Annotated[str, typer.Option(help="Folder: positive.jsonl, negative.jsonl, collect.json, t-<T>/.")],
    task: AgentTaskOpt = "gsm8k",
    model: ModelOpt = "smollm2-135m",
    checkpoint: CheckpointOpt = None,
    template: Annotated[
        str | None, typer.Option(help="Prompt template (default: the checkpoint's, else none).")
    ] = None,
    skip: Annotated[
        str | None, typer.Option(help="Trajectory files (comma-separated) whose questions are not collected on.")
    ] = None,
    split: Annotated[str | None, typer.Option(help="Default: the task's training split.")] = None,
    limit: LimitOpt = None,
    sample: SampleOpt = None,
    temperatures: Annotated[str, typer.Option(help="Comma-separated sampling temperatures (0: greedy).")] = "0,0.7,1",
    shots: ShotsOpt = 0,
    demos: DemosOpt = None,
    max_steps: MaxStepsOpt = 8,
    max_new_tokens: Annotated[int, typer.Option(help="Longest agent turn in tokens.")] = 160,
    batch_size: BatchOpt = 16,
    seed: Annotated[int, typer.Option(help="Seeds --sample and sampling.")] = 1234,
    corpus: CorpusOpt = None,
    search_url: SearchUrlOpt = None,
    data_dir: DataDirOpt = None,
    dtype: DtypeOpt = "auto",
) -> None:
    """Sample trajectories with the task's tools at several temperatures, check them, and write NAT data."""
    from likra.nat.runs import CollectConfig, collect

    started = time.perf_counter()
    try:
        temps = [float(t) for t in _str_list(temperatures)]
    except ValueError:
        raise LikraError(f"--temperatures {temperatures}: expected comma-separated numbers") from None
    if not temps or any(t < 0 for t in temps):
        raise LikraError(f"--temperatures {temperatures}: give one or more numbers, 0 or more")
    config = CollectConfig(
        task=task,
        model=model,
        checkpoint=checkpoint,
        template=template,
        skip=_str_list(skip),
        split=split,
        limit=limit,
        sample=sample,
        temperatures=temps,
        shots=shots,
        demos=demos,
        max_steps=max_steps,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
        dtype=dtype,
        data_dir=data_dir,
        corpus=_str_list(corpus),
        search_url=search_url,
    )
    summary = collect(config, out, progress=progress_bar)
    for temp, metrics in summary["per_temperature"].items():
        _print_agent_metrics(f"temperature {temp}", metrics)
    console.print(
        f"{summary['positives']} positives ({summary['problems_solved']} of {summary['problems']} problems solved), "
        f"{summary['negatives']} negatives: {out}/positive.jsonl, negative.jsonl"
    )
    log_command(out, sys.argv[1:], time.perf_counter() - started)


@nat_app.command("compare")
def nat_compare(
    evals: Annotated[
        list[str], typer.Argument(help="likra nat eval folders on the same problems; the first is the reference.")
    ],
    csv_out: Annotated[str | None, typer.Option("--csv", help="Also write the table here.")] = None,
) -> None:
    """Agents side by side, each tested against the first (exact McNemar on per-problem correctness)."""
    from likra.nat.compare import compare_evals, write_csv

    rows = compare_evals(evals)
    table = Table(Column("run", no_wrap=True), "n", "accuracy", "p vs first", "steps", "tool errors", "finished",
                  "top answer")  # fmt: skip
    for row in rows:
        table.add_row(
            row["run"], str(row["n"]), f"{row['accuracy']:.4f}", f"{row['p_vs_first']:.3g}", f"{row['mean_steps']:.2f}",
            f"{row['tool_error_rate']:.3f}", f"{row['finished']:.3f}", f"{row['top_answer_share']:.3f}",
        )  # fmt: skip
    console.print(table)
    console.print(f"always the most common gold answer: {rows[0]['majority_baseline']:.4f}")
    if csv_out:
        write_csv(rows, csv_out)
        console.print(f"written: {csv_out}")


@nat_app.command("gold")
def nat_gold(
    out: Annotated[str, typer.Option(help="JSONL file of successful trajectories.")],
    task: AgentTaskOpt = "gsm8k",
    split: Annotated[str | None, typer.Option(help="Default: the task's training split.")] = None,
    limit: LimitOpt = None,
    sample: SampleOpt = None,
    seed: Annotated[int, typer.Option(help="Seeds --sample.")] = 1234,
    data_dir: DataDirOpt = None,
) -> None:
    """Write a task's reference solutions as successful trajectories (GSM8K: its calculator annotations)."""
    from likra.evaluation import select_items
    from likra.nat.demos import gold_episodes
    from likra.nat.tasks import get_agent_task
    from likra.nat.trajectories import write_jsonl

    agent_task = get_agent_task(task)
    episodes = gold_episodes(agent_task, split or agent_task.train_split, data_dir)
    chosen = select_items(episodes, limit, sample, seed)
    write_jsonl(Path(out), chosen)
    console.print(f"{len(chosen)} reference trajectories (of {len(episodes)} with tool calls): {out}")


def _quiet_libraries() -> None:
    """Our progress bar and tables are the output; transformers' per-load bars and advice are noise here.

    Environment variables, read when transformers is first imported, so commands that never load a model
    do not pay for importing it."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit code 2."""
    _quiet_libraries()
    if not is_main():  # one process speaks under `accelerate launch` (all of them hit the same errors)
        console.quiet = err_console.quiet = True
    try:
        app()
    except LikraError as err:
        err_console.print(f"error: {err}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
