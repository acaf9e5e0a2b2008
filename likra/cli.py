"""The ``likra`` command: each command parses its options into a config (``likra.configs``), makes one call of the
Python API, and prints; user mistakes become one line. Nothing heavy is imported before a command runs, so
``likra --help`` answers at once. NAT's commands are ``likra.nat.cli``."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from likra.cli_options import DtypeOpt, ModelOpt, ResumeOpt, config_options, recorded
from likra.cli_output import (
    console,
    err_console,
    log,
    mean_table,
    print_curve,
    print_grid,
    print_loaded,
    print_mass,
    print_metrics,
    print_results,
    print_sweep,
    print_training,
    progress_bar,
    say,
    sparklines,
)
from likra.configs import (
    BaselineConfig,
    CalibrationConfig,
    CurveConfig,
    EvalConfig,
    GridConfig,
    ServeConfig,
    TrainConfig,
    VerifierConfig,
)
from likra.errors import LikraError
from likra.models import DEFAULT_MODEL
from likra.nat.cli import nat_app
from likra.options import DEVICE_HELP, specs
from likra.parallel import is_main

app = typer.Typer(
    help="Teach language models from negative examples.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(nat_app, name="nat", rich_help_panel="NAT")

# the groups of `likra --help`, as a user thinks of the commands
EVALUATE, VERIFY, TRAIN, EXPERIMENTS, SETUP = "Evaluate", "Verify and serve", "Train", "Experiments", "Models and tasks"

# options that are not a config's field: how to load and where to write
ScoreDtypeOpt = Annotated[str, typer.Option(help="Scoring dtype (training stays float32 on the CPU).")]
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
               "gradient_checkpointing", "report_to")  # fmt: skip
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
    from likra.evaluation import run_eval

    result = run_eval(config, model=model, dtype=dtype, base_items=base_items, out=out, items_out=items_out,
                      progress=progress_bar, on_load=print_loaded)  # fmt: skip
    print_results(result.results)
    for what, path in (("results", out), ("items", items_out)):
        if path and is_main():  # under `accelerate launch` one process writes (and says so)
            console.print(f"{what}: {path}")


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
    from likra.verifier import run_score

    verifier, written = run_score(config, source, out, model=model, dtype=dtype, progress=progress_bar,
                                  on_load=print_loaded)  # fmt: skip
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
    from likra.verifier import run_calibration

    verifier, report = run_calibration(config, calibration, out, model=model, dtype=dtype, progress=progress_bar,
                                       on_load=print_loaded)  # fmt: skip
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
    from likra.server import run_server

    run_server(config, serving, model=model, dtype=dtype, on_load=print_loaded, log=say)


@app.command(rich_help_panel=TRAIN)
@config_options(TrainConfig)
def train(
    out: Annotated[str, typer.Option(help="Run folder: step-<examples>/{positive,negative}/ + likra.json.")],
    config: TrainConfig,
    dtype: DtypeOpt = "auto",
    resume: ResumeOpt = False,
) -> None:
    """Train a positive head on correct answers and a negative head on wrong ones (LoRA adapters)."""
    from likra.training import run_training

    result = run_training(config, out, dtype=dtype, resume=resume, progress=progress_bar, log=say,
                          on_load=print_loaded)  # fmt: skip
    print_training(result, out)


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
    from likra.baselines import run_baseline

    result = run_baseline(replace(config, method=method), out, dtype=dtype, resume=resume, progress=progress_bar,
                          log=say, on_load=print_loaded)  # fmt: skip
    print_training(result, out, "the DPO/KTO loss")


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
    from likra.baselines import export as export_data

    written = export_data(config, out, fmt)
    console.print(f"{written} {fmt.upper()} rows from {config.n or 'all'} questions: {out}")


def _seeds(count: int) -> list[int]:
    """``--seeds S``: the training runs' seeds 1..S."""
    if count < 1:
        raise LikraError(f"--seeds {count}: must be 1 or more")
    return list(range(1, count + 1))


@app.command(rich_help_panel=EXPERIMENTS)
@recorded()
@config_options(CurveConfig, skip=("train", "seeds"), help=CURVE_HELP, build=False)
@config_options(TrainConfig, into="train", only=CURVE_TRAIN, help=CURVE_HELP)
def curve(
    out: CurveOutOpt,
    train: TrainConfig,
    config: dict[str, Any],
    max_n: MaxNOpt = 1024,
    seeds: SeedsOpt = 3,
    dtype: ScoreDtypeOpt = "auto",
    plot: Annotated[str | None, typer.Option(help="Figure file (default: OUT/curve.png).")] = None,
) -> None:
    """Learning curves of SFT, Likra and Base-Likra (DPO, KTO, prefix Likra with --methods) over checkpoints."""
    from likra.experiments.curve import curve_experiment

    curve_config = CurveConfig(**config, train=replace(train, n=max_n), seeds=_seeds(seeds))
    summary = curve_experiment(curve_config, out, dtype=dtype, figure=plot, log=log, on_load=print_loaded)
    print_curve(summary, curve_config)
    console.print(f"written: {out}/curve.csv, curve.json, {plot or Path(out) / 'curve.png'}")


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
    from likra.experiments.demo import METHODS, run_demo

    done = run_demo(out, model=model, n=n, sample=sample, data_dir=data_dir, dtype=dtype, device=device, log=log,
                    on_load=print_loaded, command=sys.argv[1:])  # fmt: skip
    console.print(mean_table([r for r in done.rows if r["method"] in METHODS], "method", METHODS, done.title))
    console.print(sparklines(done.rows, METHODS))
    console.print(f"done in {done.seconds:.0f} s; report: {done.report}")


@app.command(rich_help_panel=EXPERIMENTS)
@recorded()
@config_options(CurveConfig, only=("eval_task", "eval_split", "limit", "sample", "batch_tokens"), help=CURVE_HELP,
                build=False)  # fmt: skip
@config_options(TrainConfig, into="train", only=CURVE_TRAIN, skip=("negatives",), help=CURVE_HELP)
def ablate(
    out: CurveOutOpt,
    train: TrainConfig,
    config: dict[str, Any],
    negatives: Annotated[str, typer.Option(help="Comma-separated kinds; the first is the curve's own.")] = (
        "incorrect,irrelevant,unrelated,hardest,easiest"
    ),
    max_n: MaxNOpt = 1024,
    seeds: SeedsOpt = 3,
    dtype: ScoreDtypeOpt = "auto",
) -> None:
    """One Likra curve per negative kind, all with the same positive head (the paper's Figure 5)."""
    from likra.experiments.ablate import ablation_experiment, check_kinds

    kinds = check_kinds([k.strip() for k in negatives.split(",") if k.strip()])  # before any config is built
    curve_config = CurveConfig(**config, train=replace(train, n=max_n, negatives=kinds[0]), seeds=_seeds(seeds))
    rows = ablation_experiment(curve_config, kinds, out, dtype=dtype, log=log, on_load=print_loaded)["rows"]
    likra_rows = [r for r in rows if r["method"] == "likra"]
    console.print(mean_table(likra_rows, "kind", kinds, f"Likra acc_norm, mean over {seeds} seed(s)"))
    console.print(f"written: {out}/ablate.csv, ablate.json, ablate.png")


@app.command(rich_help_panel=EXPERIMENTS)
@recorded()
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
    from likra.experiments.sweep import parse_weights, run_sweep

    grid = parse_weights(weights)
    paths = [p.strip() for p in (items or "").split(",") if p.strip()]
    print_sweep(run_sweep(out, grid, items=paths, config=config, dtype=dtype), grid)
    console.print(f"written: {out}/sweep.csv, sweep.json, sweep.png")


@app.command(rich_help_panel=EXPERIMENTS)
@recorded(lambda options: options["out"] or options["folder"])
@config_options(GridConfig, skip=("seed",))
def grid(
    folder: Annotated[str, typer.Argument(help="A `likra curve` folder (its stored per-head scores).")],
    config: GridConfig,
    out: Annotated[str | None, typer.Option(help="Folder for grid.csv, grid.json, grid.png (default: FOLDER).")] = None,
) -> None:
    """Positives and negatives counted apart, from a curve's stored scores: the value of one negative example."""
    from likra.experiments.grid import run_grid

    print_grid(run_grid(folder, config, out))
    console.print(f"written: {out or folder}/grid.csv, grid.json, grid.png")


@app.command(rich_help_panel=EXPERIMENTS)
@recorded()
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
    from likra.experiments.mass import mass_experiment

    print_mass(mass_experiment(checkpoint, out, config, dtype=dtype, log=log, on_load=print_loaded))
    console.print(f"written: {out}/mass.csv, mass.json, mass.png")


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
    from likra.evaluation import rescore as rescore_items

    results = rescore_items(items, mode, neg_weight, norm, out)
    console.print(f"{items} · n={results['n']}")
    print_metrics(results)
    if out:
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
