"""The ``likra`` command: parse options, call the Python API, print tables, turn user mistakes into one line."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from likra.baselines import BaselineConfig
from likra.calibration import CalibrationConfig
from likra.cli_options import config_options
from likra.cli_output import (
    console,
    err_console,
    log,
    mean_table,
    nat_curve_table,
    print_agent_metrics,
    print_comparison,
    print_grid,
    print_loaded,
    print_mass,
    print_metrics,
    print_results,
    print_sweep,
    print_training,
    progress_bar,
    sparklines,
)
from likra.errors import LikraError
from likra.evaluation import EvalConfig
from likra.experiments.curve import CurveConfig
from likra.experiments.grid import GridConfig
from likra.models import DEFAULT_MODEL
from likra.nat.curve import NATCurveConfig
from likra.nat.runs import AgentEvalConfig, CollectConfig
from likra.nat.training import NATConfig
from likra.options import DEVICE_HELP, DTYPE_HELP, MODEL_HELP, specs
from likra.parallel import is_main
from likra.report import log_command
from likra.server import ServeConfig
from likra.training import TrainConfig
from likra.verifier import VerifierConfig

app = typer.Typer(
    help="Teach language models from negative examples.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# the groups of `likra --help`, as a user thinks of the commands
EVALUATE, VERIFY, TRAIN, EXPERIMENTS, SETUP = "Evaluate", "Verify and serve", "Train", "Experiments", "Models and tasks"

# options that are not a config's field: how to load and where to write
ModelOpt = Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP)]
DtypeOpt = Annotated[str, typer.Option(help=DTYPE_HELP)]
ScoreDtypeOpt = Annotated[str, typer.Option(help="Scoring dtype (training stays float32 on the CPU).")]
ResumeOpt = Annotated[bool, typer.Option(help="Continue from the newest complete checkpoint in --out.")]
CurveOutOpt = Annotated[str, typer.Option(help="Experiment folder (runs/, scores/, CSV, JSON, PNG).")]
MaxNOpt = Annotated[int, typer.Option(help="Largest number of training questions (checkpoints 8, 16, ...).")]
SeedsOpt = Annotated[int, typer.Option(help="Training runs with seeds 1..S (data order, negatives, init).")]
ModeOpt = Annotated[str, typer.Option(help=specs(EvalConfig)["mode"].help)]
NegWeightOpt = Annotated[float, typer.Option(help=specs(EvalConfig)["neg_weight"].help)]
NormOpt = Annotated[str, typer.Option(help=specs(EvalConfig)["norm"].help)]
ROWS_HELP = "JSONL rows: {id, question, answer} or {id, question, candidates: [...]}."
BaseModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="The base model (default: the checkpoint's).")]
# the training fields a curve (and an ablation) exposes; the others keep TrainConfig's defaults
CURVE_TRAIN = ("model", "task", "negatives", "lr", "hold_out", "data_dir", "device", "batch_size", "grad_accum",
               "gradient_checkpointing")  # fmt: skip
CURVE_HELP = {"task": "The training pool's task (scored on its test split unless --eval-task).",
              "eval_task": "Task to score on (default: --task)."}  # fmt: skip


@app.command("eval", rich_help_panel=EVALUATE)
@config_options(EvalConfig)
def eval_command(
    config: EvalConfig,
    model: ModelOpt = DEFAULT_MODEL,
    dtype: DtypeOpt = "auto",
    base_items: Annotated[
        str | None,
        typer.Option(help="items.jsonl of the base model on the same questions: run only the checkpoint's heads."),
    ] = None,
    out: Annotated[str | None, typer.Option(help="Write results JSON here.")] = None,
    items_out: Annotated[str | None, typer.Option(help="Write one JSON line per question here.")] = None,
) -> None:
    """Score every answer choice by log-likelihood and report accuracies."""
    from likra.checkpoints import check_base_model, load_checkpoint_base, read_manifest
    from likra.evaluation import check_checkpoint, count_requests, evaluate, prepare, read_items, write_items
    from likra.files import check_outputs, write_json
    from likra.models import load_model

    config.check()
    task = config.task
    user_file = task.removeprefix("jsonl:") if task.startswith("jsonl:") else None
    check_outputs({"--out": out, "--items-out": items_out}, {"--task": user_file, "--base-items": base_items})
    requests = prepare(config)  # data errors surface before the model loads
    base = read_items(base_items) if base_items else None
    if base is not None and not config.checkpoint:
        raise LikraError("--base-items: only with --checkpoint (it replaces the base model's pass)")
    if config.checkpoint:
        _, manifest = read_manifest(config.checkpoint)
        check_checkpoint(config, manifest)
        given = None if model == DEFAULT_MODEL else model  # the checkpoint's own base model unless told
        loaded = load_checkpoint_base(config.checkpoint, manifest, given, dtype=dtype, device=config.device)
        check_base_model(loaded, config.checkpoint)  # before the progress bar starts
    else:
        loaded = load_model(model, dtype=dtype, device=config.device)
    print_loaded(loaded)
    total = count_requests(requests, config.calibrate, config.p_true)
    with progress_bar(total, f"scoring {len(requests)} questions") as advance:
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


@app.command(rich_help_panel=VERIFY)
@config_options(VerifierConfig)
def score(
    config: VerifierConfig,
    source: Annotated[str, typer.Option("--input", help=ROWS_HELP)],
    out: Annotated[str, typer.Option(help="JSONL: one line per answer (L+, L-, Lbase, score, rank, p_correct).")],
    model: BaseModelOpt = None,
    dtype: DtypeOpt = "auto",
) -> None:
    """Score your own answers with a checkpoint's heads, each on its own (a verifier); large files stream."""
    from likra.files import check_outputs
    from likra.verifier import Verifier, check_rows, score_file

    config.check()
    check_outputs({"--out": out}, {"--input": source})
    total = check_rows(source)  # every row checked before the model loads
    verifier = Verifier(config, model=model, dtype=dtype)
    print_loaded(verifier.loaded)
    with progress_bar(total, f"scoring {total} rows") as advance:
        written = score_file(verifier, source, out, advance)
    calibrated = "with p_correct" if verifier.calibration else "no p_correct (see likra calibrate)"
    console.print(f"{written} answers scored by {config.mode} (w {config.neg_weight:g}, per {config.norm}), "
                  f"{calibrated}: {out}")  # fmt: skip


@app.command(rich_help_panel=VERIFY)
@config_options(VerifierConfig, skip=("chunk",))
@config_options(CalibrationConfig, into="calibration")
def calibrate(
    config: VerifierConfig,
    calibration: CalibrationConfig,
    out: Annotated[str | None, typer.Option(help="Folder for the report (calibration.json, reliability.png).")] = None,
    model: BaseModelOpt = None,
    dtype: DtypeOpt = "auto",
) -> None:
    """Fit the map from a checkpoint's score to P(correct) on a labelled split, stored beside the checkpoint."""
    from likra.calibration import calibrate as run_calibration
    from likra.verifier import Verifier

    config.check()
    verifier = Verifier(config, model=model, dtype=dtype)
    print_loaded(verifier.loaded)
    report = run_calibration(verifier, calibration, out, progress=progress_bar)
    fitted = report["calibration"]["fitted_on"]
    console.print(f"{calibration.method} on {fitted['questions']} {fitted['task']} {fitted['split']} questions "
                  f"({fitted['dropped_trained_on']} left out: the heads were trained on them); ECE on the held-out "
                  f"half {fitted['ece_before']:.3f} before, {fitted['ece_after']:.3f} after")  # fmt: skip
    console.print(f"written: {verifier.step}/calibration.json" + (f", {out}/reliability.png" if out else ""))


@app.command(rich_help_panel=VERIFY)
@config_options(VerifierConfig, skip=("chunk",))
@config_options(ServeConfig, into="serving")
def serve(config: VerifierConfig, serving: ServeConfig, model: BaseModelOpt = None, dtype: DtypeOpt = "auto") -> None:
    """Serve a checkpoint as a verifier over HTTP: POST /score (vLLM's shape), POST /get_reward, GET /health, /info."""
    from likra.server import serve as run_server
    from likra.verifier import Verifier

    config.check()
    serving.check()
    verifier = Verifier(config, model=model, dtype=dtype)
    print_loaded(verifier.loaded)
    console.print(f"serving {verifier.step} ({config.mode}, w {config.neg_weight:g}) on "
                  f"http://{serving.host}:{serving.port} · POST /score, /get_reward · GET /health, /info")  # fmt: skip
    run_server(verifier, serving)


@app.command(rich_help_panel=TRAIN)
@config_options(TrainConfig)
def train(
    out: Annotated[str, typer.Option(help="Run folder: step-<examples>/{positive,negative}/ + likra.json.")],
    config: TrainConfig,
    dtype: DtypeOpt = "auto",
    resume: ResumeOpt = False,
) -> None:
    """Train a positive head on correct answers and a negative head on wrong ones (LoRA adapters)."""
    from likra.training import train as run_training

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
    loaded = load_model(config.model, dtype=dtype, device=config.device, training=True)
    print_loaded(loaded)
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
    print_training(result)
    loss = "the DPO/KTO loss" if isinstance(config, BaselineConfig) else "answer-token loss"
    console.print(f"trained in {result.seconds:.1f} s; checkpoints in {out}/ (mean {loss} per interval)")


# DPO and KTO train one adapter on the same data as Likra; the options that shape Likra's heads stay out
BASELINE_SKIP = ("method", "negatives_per_question", "contamination", "heads", "lora_dropout", "micro_batch_size",
                 "epochs")  # fmt: skip


@app.command(rich_help_panel=TRAIN)
@config_options(BaselineConfig, skip=BASELINE_SKIP)
def baseline(
    method: Annotated[str, typer.Argument(help="dpo (correct vs negative pairs) or kto (unpaired).")],
    out: Annotated[str, typer.Option(help="Run folder: step-<examples>/positive/ (the policy) + likra.json.")],
    config: BaselineConfig,
    dtype: DtypeOpt = "auto",
    resume: ResumeOpt = False,
) -> None:
    """DPO or KTO with TRL on Likra's data (same questions, negatives, seeds, LoRA), checkpoints at the same counts."""
    from likra.baselines import train_baseline

    _quiet_trl()
    _train_and_report(replace(config, method=method), dtype, out, resume, train_baseline)


def _quiet_trl() -> None:
    """TRL's dataset preparation bars would interleave with ours."""
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()


@app.command(rich_help_panel=TRAIN)
@config_options(BaselineConfig, only=("task", "eval_split", "n", "negatives", "kto_data", "seed", "train_file",
                                      "hold_out", "data_dir", "model", "device"),
                help={"seed": "Seeds question order and negatives.",
                      "model": "Only for --negatives hardest/easiest (ranks the options)."})  # fmt: skip
def export(
    out: Annotated[str, typer.Option(help="JSONL file to write.")],
    fmt: Annotated[
        str, typer.Option("--format", help="dpo (prompt/chosen/rejected) or kto (prompt/completion/label).")
    ],
    config: BaselineConfig,
) -> None:
    """Write Likra's training data as DPO pairs or KTO labels (JSONL, TRL's column names) for training elsewhere."""
    from likra.baselines import export_rows
    from likra.files import write_jsonl

    rows = export_rows(replace(config, method=fmt), out)
    write_jsonl(out, rows, ensure_ascii=False)
    console.print(f"{len(rows)} {fmt.upper()} rows from {config.n or 'all'} questions: {out}")


def _experiment(*, train: TrainConfig, config: CurveConfig, seeds: int, dtype: str) -> tuple[Any, Any, Any]:
    """The shared set-up of curve, ablate and demo: the curve's config with its training runs, the training model
    and the scoring model (the same one unless ``dtype`` asks for another)."""
    from likra.models import load_model, pick_dtype

    if seeds < 1:
        raise LikraError(f"--seeds {seeds}: must be 1 or more")
    config = replace(config, train=train, seeds=list(range(1, seeds + 1)))
    config.check()
    trainer = load_model(train.model, device=train.device, training=True)
    wanted = str(pick_dtype(dtype, trainer.device)).removeprefix("torch.")
    scorer = trainer if wanted == trainer.dtype else load_model(train.model, dtype=dtype, device=trainer.device)
    print_loaded(trainer, "training")
    if scorer is not trainer:
        print_loaded(scorer, "scoring")
    return config, trainer, scorer


@app.command(rich_help_panel=EXPERIMENTS)
@config_options(CurveConfig, skip=("train", "seeds"), help=CURVE_HELP)
@config_options(TrainConfig, into="train", only=CURVE_TRAIN, help=CURVE_HELP)
def curve(
    out: CurveOutOpt,
    train: TrainConfig,
    config: CurveConfig,
    max_n: MaxNOpt = 1024,
    seeds: SeedsOpt = 3,
    dtype: ScoreDtypeOpt = "auto",
    plot: Annotated[str | None, typer.Option(help="Figure file (default: OUT/curve.png).")] = None,
) -> None:
    """Learning curves of SFT, Likra and Base-Likra (DPO, KTO, prefix Likra with --methods) over checkpoints."""
    started = time.perf_counter()
    from likra.experiments.curve import drawn_rows, run_curve

    config, trainer, scorer = _experiment(train=replace(train, n=max_n), config=config, seeds=seeds, dtype=dtype)
    summary = run_curve(trainer, scorer, config, out, log=log, figure=plot)
    rows = drawn_rows(summary, config)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for found in summary["eval_sets"]:
        part = [r for r in rows if (r["task"], r["split"]) == (found["task"], found["split"])]
        seeds_scored = len({r["seed"] for r in part})
        title = f"{found['task']} {found['split']} ({found['n']} questions): mean accuracy over {seeds_scored} seed(s)"
        console.print(mean_table(part, "method", methods, title))
    console.print(f"written: {out}/curve.csv, curve.json, {plot or Path(out) / 'curve.png'}")
    log_command(out, sys.argv[1:], time.perf_counter() - started)


# The demo's size: under 10 minutes on a 2-core CPU (2-core AMD EPYC, float32: see docs/gpu.md)
DEMO_SAVE_AT = [16, 64]


@app.command(rich_help_panel=EXPERIMENTS)
def demo(
    out: Annotated[str, typer.Option(help="Folder for the runs, scores, curve and report.")] = "out/demo",
    model: ModelOpt = DEFAULT_MODEL,
    n: Annotated[int, typer.Option("--n", help="Training questions (checkpoints at 16, 64 and N).")] = 256,
    sample: Annotated[int, typer.Option(help="Seeded sample of ARC-Challenge test questions to score.")] = 200,
    data_dir: Annotated[
        str | None, typer.Option(help=specs(TrainConfig)["data_dir"].help, envvar="LIKRA_DATA_DIR")
    ] = None,
    dtype: ScoreDtypeOpt = "auto",
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
) -> None:
    """The main job: a Likra learning curve on ARC-Challenge (one seed, 256 questions), printed and reported.

    Both heads are trained on ARC; base, SFT, Likra and Base-Likra are scored at checkpoints 16, 64 and 256 on a
    seeded sample of ARC-Challenge test (scoring in the machine's fast dtype: see --dtype)."""
    from likra.evaluation import prepare
    from likra.experiments.curve import run_curve
    from likra.report import write_report

    started = time.perf_counter()
    train = TrainConfig(model=model, task="arc_challenge", n=n, data_dir=data_dir, device=device, save_at=DEMO_SAVE_AT)
    config, trainer, scorer = _experiment(train=train, config=CurveConfig(sample=sample), seeds=1, dtype=dtype)
    title = f"ARC-Challenge test, {len(prepare(config.eval_config()))} questions · {model} · 1 seed"
    rows = run_curve(trainer, scorer, config, out, log=log, title=title)["rows"]
    methods = ["base", "sft", "sft_calibrated", "likra", "negbase"]
    console.print(mean_table([r for r in rows if r["method"] in methods], "method", methods, title))
    console.print(sparklines(rows, methods))
    log_command(out, sys.argv[1:], time.perf_counter() - started)
    html_path, _ = write_report(out)
    console.print(f"done in {time.perf_counter() - started:.0f} s; report: {html_path}")


@app.command(rich_help_panel=EXPERIMENTS)
@config_options(CurveConfig, only=("eval_task", "eval_split", "limit", "sample", "batch_tokens"), help=CURVE_HELP)
@config_options(TrainConfig, into="train", only=CURVE_TRAIN, skip=("negatives",), help=CURVE_HELP)
def ablate(
    out: CurveOutOpt,
    train: TrainConfig,
    config: CurveConfig,
    negatives: Annotated[str, typer.Option(help="Comma-separated kinds; the first is the curve's own.")] = (
        "incorrect,irrelevant,unrelated,hardest,easiest"
    ),
    max_n: MaxNOpt = 1024,
    seeds: SeedsOpt = 3,
    dtype: ScoreDtypeOpt = "auto",
) -> None:
    """One Likra curve per negative kind, all with the same positive head (the paper's Figure 5)."""
    started = time.perf_counter()
    from likra.experiments.ablate import check_kinds, run_ablation

    kinds = check_kinds([k.strip() for k in negatives.split(",") if k.strip()])  # before the models load
    train = replace(train, n=max_n, negatives=kinds[0])
    config, trainer, scorer = _experiment(train=train, config=config, seeds=seeds, dtype=dtype)
    rows = run_ablation(trainer, scorer, config, kinds, out, log=log)["rows"]
    likra_rows = [r for r in rows if r["method"] == "likra"]
    console.print(mean_table(likra_rows, "kind", kinds, f"Likra acc_norm, mean over {seeds} seed(s)"))
    console.print(f"written: {out}/ablate.csv, ablate.json, ablate.png")
    log_command(out, sys.argv[1:], time.perf_counter() - started)


@app.command(rich_help_panel=EXPERIMENTS)
@config_options(
    EvalConfig,
    only=("checkpoint", "task", "split", "limit", "sample", "data_dir", "batch_tokens", "device"),
    help={"checkpoint": "A `likra train` folder or step-K/ (scored once, kept in OUT/items.jsonl)."},
)
def sweep(
    out: Annotated[str, typer.Option(help="Folder for items.jsonl, sweep.csv, sweep.json, sweep.png.")],
    config: EvalConfig,
    items: Annotated[
        str | None,
        typer.Option(help="Stored items.jsonl with heads instead (no model); comma-separated: mean over them."),
    ] = None,
    weights: Annotated[str, typer.Option(help="start:stop:step (stop included) or a list.")] = "0:1.5:0.1",
    dtype: DtypeOpt = "auto",
) -> None:
    """Accuracy against the negative head's weight, from one scoring pass (the paper's Figure 4)."""
    started = time.perf_counter()
    from likra.experiments.sweep import parse_weights, run_sweep

    grid = parse_weights(weights)
    paths = [p.strip() for p in (items or "").split(",") if p.strip()]
    summary = run_sweep(out, grid, items=paths, config=config, dtype=dtype)
    print_sweep(summary, grid)
    console.print(f"written: {out}/sweep.csv, sweep.json, sweep.png")
    log_command(out, sys.argv[1:], time.perf_counter() - started)


@app.command(rich_help_panel=EXPERIMENTS)
@config_options(GridConfig, skip=("seed",))
def grid(
    folder: Annotated[str, typer.Argument(help="A `likra curve` folder (its stored per-head scores).")],
    config: GridConfig,
    out: Annotated[str | None, typer.Option(help="Folder for grid.csv, grid.json, grid.png (default: FOLDER).")] = None,
) -> None:
    """Positives and negatives counted apart, from a curve's stored scores: the value of one negative example."""
    started = time.perf_counter()
    from likra.experiments.grid import run_grid

    print_grid(run_grid(folder, config, out))
    target = out or folder
    console.print(f"written: {target}/grid.csv, grid.json, grid.png")
    log_command(target, sys.argv[1:], time.perf_counter() - started)


@app.command(rich_help_panel=EXPERIMENTS)
@config_options(EvalConfig, only=("split", "limit", "sample", "data_dir", "batch_tokens", "device"),
                help={"split": "Split of the checkpoint's task (default: its test split).",
                      "sample": "A seeded sample of N questions (default 300, unless --limit)."})  # fmt: skip
def mass(
    checkpoint: Annotated[str, typer.Option(help="A `likra train` folder (every checkpoint) or one step-K/.")],
    out: Annotated[str, typer.Option(help="Folder for questions.jsonl, items, mass.csv, mass.json, mass.png.")],
    config: EvalConfig,
    dtype: DtypeOpt = "auto",
) -> None:
    """Where the probability mass goes under each head: correct, likely incorrect, irrelevant, unrelated (Figure 6)."""
    started = time.perf_counter()
    from likra.checkpoints import load_checkpoint_base, read_manifest
    from likra.experiments.mass import MASS_SAMPLE, run_mass

    sample = MASS_SAMPLE if config.sample is None and config.limit is None else config.sample
    _, manifest = read_manifest(checkpoint)
    loaded = load_checkpoint_base(checkpoint, manifest, dtype=dtype, device=config.device)
    print_loaded(loaded)
    summary = run_mass(loaded, checkpoint, out, split=config.split, limit=config.limit, sample=sample,
                       data_dir=config.data_dir, batch_tokens=config.batch_tokens, log=log)  # fmt: skip
    print_mass(summary)
    console.print(f"written: {out}/mass.csv, mass.json, mass.png")
    log_command(out, sys.argv[1:], time.perf_counter() - started)


@app.command(rich_help_panel=EXPERIMENTS)
def report(folder: Annotated[str, typer.Argument(help="An experiment folder (curve, ablate, sweep, mass).")]) -> None:
    """One self-contained HTML page (figures embedded) and a Markdown summary of the experiments in FOLDER."""
    from likra.report import write_report

    html_path, md_path = write_report(folder)
    console.print(f"report: {html_path} (and {md_path})")


@app.command(rich_help_panel=EVALUATE)
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


@app.command(rich_help_panel=SETUP)
def prepare(model: ModelOpt = DEFAULT_MODEL) -> None:
    """Convert an embedded model's GGUF to the safetensors cache (done once; later loads take seconds)."""
    from likra.models import resolve_model_path

    console.print(f"{model}: {resolve_model_path(model)}")


@app.command(rich_help_panel=SETUP)
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
    rich_help_panel=EVALUATE,
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
app.add_typer(nat_app, name="nat", rich_help_panel="NAT")
NAT_TRAIN_HELP = {"batch_size": "Trajectories per optimiser step.",
                  "micro_batch_size": "Trajectories per forward pass.", "epochs": "Passes over the trajectories.",
                  "seed": "Seeds the samples, the order and the LoRA initialisation."}  # fmt: skip


@nat_app.command("train")
@config_options(NATConfig, help=NAT_TRAIN_HELP)
def nat_train(
    out: Annotated[str, typer.Option(help="Run folder: step-<trajectories>/agent/ (a peft adapter) + likra.json.")],
    config: NATConfig,
    dtype: DtypeOpt = "auto",
    resume: ResumeOpt = False,
) -> None:
    """Fine-tune an agent on successful and failed trajectories, each introduced by the template's prefix."""
    from likra.models import load_model
    from likra.nat.training import select_trajectories, train_agent

    started = time.perf_counter()
    config.check()
    data = select_trajectories(config)  # data errors surface before the model loads
    console.print(
        f"{data.positives} positives + {data.negatives} negatives, template {config.template} "
        f"({data.dropped} dropped: their questions are in the evaluation split; {data.empty} empty)"
    )
    loaded = load_model(config.model, dtype=dtype, device=config.device, training=True)
    print_loaded(loaded)
    total = len(data.trajectories) * config.epochs
    with progress_bar(total, "training") as advance:
        result = train_agent(loaded, config, out, resume=resume, data=data, progress=advance)
    for path in result.checkpoints:
        loss = json.loads((path / "likra.json").read_text())["loss"]
        console.print(f"{path}: mean loss per trained token {next(iter(loss.values())):.4f}")
    console.print(f"trained in {result.seconds:.1f} s; checkpoints in {out}/")
    log_command(out, sys.argv[1:], time.perf_counter() - started)


@nat_app.command("eval")
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
    log_command(out, sys.argv[1:], time.perf_counter() - started)


@nat_app.command("collect")
@config_options(CollectConfig)
def nat_collect(
    out: Annotated[str, typer.Option(help="Folder: positive.jsonl, negative.jsonl, collect.json, t-<T>/.")],
    config: CollectConfig,
) -> None:
    """Sample trajectories with the task's tools at several temperatures, check them, and write NAT data."""
    from likra.nat.runs import collect

    started = time.perf_counter()
    summary = collect(config, out, progress=progress_bar)
    for temp, metrics in summary["per_temperature"].items():
        print_agent_metrics(f"temperature {temp}", metrics)
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
    from likra.files import write_csv
    from likra.nat.compare import CSV_COLUMNS, compare_evals

    rows = compare_evals(evals)
    print_comparison(rows)
    if csv_out:
        write_csv(csv_out, rows, CSV_COLUMNS)
        console.print(f"written: {csv_out}")


NAT_CURVE_HELP = {"pos_num": "Positives in every run (a seeded sample; default all).",
                  "seed": "Seeds --sample (the problems scored) and sampling."}  # fmt: skip


@nat_app.command("curve")
@config_options(NATCurveConfig, skip=("train", "eval"))
@config_options(NATConfig, into="train", help=NAT_CURVE_HELP, only=(
    "task", "model", "pos", "neg", "pos_num", "lr", "epochs", "batch_size", "bf16", "max_length", "eval_split",
    "data_dir", "device", "gradient_checkpointing"))  # fmt: skip
@config_options(AgentEvalConfig, into="eval", help=NAT_CURVE_HELP, only=(
    "limit", "sample", "seed", "max_steps", "max_new_tokens", "dtype", "corpus", "search_url"))  # fmt: skip
def nat_curve(
    out: Annotated[str, typer.Option(help="Folder: runs/<run>/ (checkpoints, eval/), curve.csv, .json, .png.")],
    config: NATCurveConfig,
    train: NATConfig,
    eval: AgentEvalConfig,
) -> None:
    """Accuracy against negative trajectories added to fixed positives, NAT's prefix against plain mixing: one
    training and one evaluation per template, count and seed (resumable; finished pieces are not redone)."""
    from likra.nat.curve import run_nat_curve

    started = time.perf_counter()
    config = replace(config, train=train, eval=eval)
    summary = run_nat_curve(config, out, log=log, progress=progress_bar)
    console.print(nat_curve_table(summary["rows"]))
    console.print(f"written: {out}/curve.csv, curve.json, curve.png ({time.perf_counter() - started:.0f} s)")
    log_command(out, sys.argv[1:], time.perf_counter() - started)


@nat_app.command("gold")
@config_options(CollectConfig, only=("task", "split", "limit", "sample", "seed", "data_dir"),
                help={"split": "Default: the task's training split.", "seed": "Seeds --sample."})  # fmt: skip
def nat_gold(
    out: Annotated[str, typer.Option(help="JSONL file of successful trajectories.")],
    config: CollectConfig,
) -> None:
    """Write a task's reference solutions as successful trajectories (GSM8K: its calculator annotations)."""
    from likra.evaluation import select_items
    from likra.nat.demos import gold_episodes
    from likra.nat.tasks import get_agent_task
    from likra.nat.trajectories import write_trajectories

    agent_task = get_agent_task(config.task)
    episodes = gold_episodes(agent_task, config.split or agent_task.train_split, config.data_dir)
    chosen = select_items(episodes, config.limit, config.sample, config.seed)
    write_trajectories(out, chosen)
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
