"""The ``likra`` command: parse options, call the Python API, print tables, turn user mistakes into one line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from likra.errors import LikraError

app = typer.Typer(
    help="Teach language models from negative examples.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Alias (smollm2-135m), model directory, .gguf, Hub id.")]
DtypeOpt = Annotated[str, typer.Option(help="auto (CUDA bfloat16, CPU float32), float32, bfloat16, float16.")]
DataDirOpt = Annotated[
    str | None,
    typer.Option("--data-dir", envvar="LIKRA_DATA_DIR", help="Folder with arc/, hellaswag/, ... (else the Hub)."),
]


@contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)``."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def _check_writable(path: str | None, option: str) -> None:
    """Fail before the work, not after it, when an output path cannot be written."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise LikraError(f"{option} {path}: is a directory, expected a file path")
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise LikraError(f"{option} {path}: cannot write in {parent}")


def print_results(results: dict) -> None:
    console.print(
        f"{results['task']} · {results['split']} · n={results['n']} · {results['shots']}-shot · {results['model']}"
    )
    table = Table()
    table.add_column("metric")
    table.add_column("accuracy", justify="right")
    table.add_column("95% interval", justify="right")
    for name, value in results["metrics"].items():
        low, high = results["ci95"][name]
        table.add_row(name, f"{value:.4f}", f"{low:.3f}-{high:.3f}")
    console.print(table)
    console.print(f"scored in {results['seconds']:.1f} s ({results['dtype']}, {results['device']})")


@app.command("eval")
def eval_command(
    model: ModelOpt = "smollm2-135m",
    task: Annotated[str, typer.Option(help="arc_challenge, arc_easy, hellaswag, winogrande, mmlu, jsonl:PATH.")] = (
        "arc_challenge"
    ),
    split: Annotated[str | None, typer.Option(help="Split as in the data (default: the task's test split).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N items.")] = None,
    sample: Annotated[int | None, typer.Option(help="A seeded random sample of N items.")] = None,
    shots: Annotated[int, typer.Option(help="Few-shot examples from the training split.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of few-shot examples and --sample.")] = 1234,
    data_dir: DataDirOpt = None,
    dtype: DtypeOpt = "auto",
    batch_tokens: Annotated[int, typer.Option(help="Padded tokens per forward pass.")] = 1024,
    calibrate: Annotated[bool, typer.Option(help="Also score answers after a bare 'Answer:' (acc_calibrated).")] = True,
    out: Annotated[str | None, typer.Option(help="Write results JSON here.")] = None,
    items_out: Annotated[str | None, typer.Option(help="Write one JSON line per question here.")] = None,
) -> None:
    """Score every answer choice by log-likelihood and report accuracies."""
    from likra.evaluation import EvalConfig, count_requests, evaluate, prepare, write_items, write_json
    from likra.models import load_model

    _check_writable(out, "--out")
    _check_writable(items_out, "--items-out")
    if batch_tokens <= 0:
        raise LikraError(f"--batch-tokens {batch_tokens}: must be positive")
    config = EvalConfig(task, split, limit, sample, shots, seed, data_dir, batch_tokens, calibrate)
    requests = prepare(config)  # data errors surface before the model loads
    loaded = load_model(model, dtype=dtype)
    with progress_bar(count_requests(requests, calibrate), f"scoring {len(requests)} questions") as advance:
        result = evaluate(loaded, config, requests, advance)
    print_results(result.results)
    if out:
        write_json(out, result.results)
        console.print(f"results: {out}")
    if items_out:
        write_items(items_out, result.items)
        console.print(f"items: {items_out}")


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


def _quiet_libraries() -> None:
    """Our progress bar and tables are the output; transformers' per-load bars and advice are noise here.

    Environment variables, read when transformers is first imported, so commands that never load a model
    do not pay for importing it."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit code 2."""
    _quiet_libraries()
    try:
        app()
    except LikraError as err:
        err_console.print(f"error: {err}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
