"""The main job (``likra demo``, run by ``make demo``): a one-seed Likra learning curve on ARC-Challenge, its table
and a report, sized to finish in under 10 minutes on a 2-core CPU (a 2-core AMD EPYC, float32: see docs/gpu.md)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from likra.configs import CurveConfig, TrainConfig
from likra.evaluation import prepare
from likra.experiments.curve import load_models, run_curve
from likra.models import DEFAULT_MODEL
from likra.progress import OnLoad, quiet
from likra.report import log_command, write_report

SAVE_AT = [16, 64]  # and N
METHODS = ["base", "sft", "sft_calibrated", "likra", "negbase"]


@dataclass
class Demo:
    rows: list[dict[str, Any]]  # the curve's rows (``curve.csv``)
    title: str
    report: Path  # report.html
    seconds: float


def run_demo(
    out: str | Path = "out/demo",
    *,
    model: str = DEFAULT_MODEL,
    n: int = 256,
    sample: int = 200,
    data_dir: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    log: Callable[[str], None] = print,
    on_load: OnLoad = quiet,
    command: Sequence[str] = ("demo",),
) -> Demo:
    """Both heads trained on ``n`` ARC questions (checkpoints at 16, 64 and ``n``); the base model, SFT, Likra and
    Base-Likra scored at each on a seeded ``sample`` of ARC-Challenge test; ``command`` (the options as typed)
    recorded in the folder, and its report written."""
    started = time.perf_counter()
    train = TrainConfig(model=model, task="arc_challenge", n=n, data_dir=data_dir, device=device, save_at=SAVE_AT)
    config = CurveConfig(train=train, sample=sample, seeds=[1])
    title = f"ARC-Challenge test, {len(prepare(config.eval_config()))} questions · {model} · 1 seed"
    trainer, scorer = load_models(train, dtype, on_load)
    rows = run_curve(trainer, scorer, config, out, log, title=title)["rows"]
    log_command(out, command, time.perf_counter() - started)
    report, _ = write_report(out)
    return Demo(rows, title, report, time.perf_counter() - started)
