"""The per-step training log: one JSON line per optimiser step in ``train_log.jsonl``, and the same numbers where
researchers look for them, TensorBoard and Weights & Biases (``--report-to``, the ``Trainer``'s option name and
values), through accelerate's trackers.

Names follow the ``Trainer``'s (``rewrite_logs``: ``train/`` and the log's key): ``train/loss/<head>`` (one loss per
adapter; the ``Trainer`` has one), ``train/examples``, ``train/examples_per_s``, and for the TRL baselines
``train/rewards/...`` and ``train/kl``. The step is the log's step, so a resumed run goes on counting.

- TensorBoard writes ``<out>/runs/`` (the ``Trainer``'s default lies under its output folder too), one folder per run,
  so ``tensorboard --logdir`` on an experiment's folder shows all its runs. A resumed run writes there again with
  ``purge_step``: TensorBoard drops the steps the run redoes, as ``train_log.jsonl`` loses their lines.
- W&B: project ``WANDB_PROJECT`` (default ``likra``; the ``Trainer``'s is ``huggingface``), the run named by its
  folder, the run's options as its config, its files in ``WANDB_DIR`` or the run folder, marked failed (exit code 1)
  when training fails or is interrupted. ``WANDB_MODE=offline`` logs without an account (``wandb sync`` uploads
  later).

Only the main process writes (``likra.parallel.is_main``); the caller opens the log there alone.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from likra.checkpoints import TRAIN_LOG, truncate_log
from likra.errors import LikraError

REPORT_TO = ("none", "all", "tensorboard", "wandb")
TRACKERS = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}  # tracker → packages, any one
EXTRA = {"tensorboard": "tensorboard", "wandb": "wandb"}  # likra's extra that installs it

Record = dict[str, Any]


def _installed(tracker: str) -> bool:
    return any(importlib.util.find_spec(package) is not None for package in TRACKERS[tracker])


def trackers_for(report_to: Sequence[str]) -> list[str]:
    """The trackers ``--report-to`` names (``all``: every installed one, as the ``Trainer`` reads it), checked before
    anything loads: a name we do not know, ``none`` beside another, or a tracker not installed is a one-line error."""
    for name in report_to:
        if name not in REPORT_TO:
            raise LikraError(f"--report-to {name}: expected one of {', '.join(REPORT_TO)}")
    if len(report_to) > 1 and ("none" in report_to or "all" in report_to):
        raise LikraError(f"--report-to {','.join(report_to)}: none and all stand alone")
    if list(report_to) == ["all"]:
        return [tracker for tracker in TRACKERS if _installed(tracker)]
    chosen = [name for name in dict.fromkeys(report_to) if name != "none"]
    for tracker in chosen:
        if not _installed(tracker):
            raise LikraError(f"--report-to {tracker}: not installed (pip install 'likra[{EXTRA[tracker]}]')")
    return chosen


def scalars(record: Record) -> dict[str, float]:
    """A log record as the trackers' scalars: ``train/<key>``, a record's ``{head: loss}`` as ``train/loss/<head>``."""
    flat: dict[str, float] = {}
    for key, value in record.items():
        if key == "step" or value is None:
            continue
        if isinstance(value, dict):
            flat.update({f"train/{key}/{k}": v for k, v in value.items() if v is not None})
        else:
            flat[f"train/{key}"] = value
    return flat


def _start(tracker: str, out: Path, first_step: int, config: dict[str, Any]) -> Any:
    """One of accelerate's trackers, started (W&B's refusals, a missing login the most common, are one line)."""
    from accelerate import PartialState
    from accelerate.tracking import TensorBoardTracker, WandBTracker

    # accelerate's trackers log through its logging, which needs its state; a plain likra run has none (under
    # `accelerate launch` likra.parallel made it, and this returns that one)
    PartialState()
    if tracker == "tensorboard":
        started = TensorBoardTracker("runs", out, purge_step=first_step)
    else:
        options = {"name": str(out), "config": config}
        if "WANDB_DIR" not in os.environ:
            options["dir"] = str(out)
        started = WandBTracker(os.environ.get("WANDB_PROJECT", "likra"), **options)
    try:
        started.start()
    except Exception as err:  # wandb.errors.UsageError and kin; wandb is not imported unless asked for
        with suppress(Exception):  # whatever it had started (a W&B run), marked failed
            _finish(started, failed=True)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        hint = " (WANDB_MODE=offline logs without an account)" if tracker == "wandb" else ""
        raise LikraError(f"--report-to {tracker}: could not start: {first}{hint}") from None
    return started


def _finish(tracker: Any, failed: bool) -> None:
    """Close a tracker; a W&B run of a run that failed or was interrupted is marked so (exit code 1)."""
    if tracker.name == "wandb":
        tracker.run.finish(exit_code=int(failed))
    else:
        tracker.finish()


@contextmanager
def training_log(
    out: Path, report_to: Sequence[str], *, resumed_from: int, first_step: int, config: dict[str, Any]
) -> Iterator[Callable[[Record], None]]:
    """``write(record)`` for a run that starts after ``resumed_from`` examples at optimiser step ``first_step``:
    appends the record to ``out/train_log.jsonl`` (lines after ``resumed_from``, from a run cut off or started
    over, go first) and logs it to the trackers ``report_to`` names, closed on leaving."""
    started: list[Any] = []
    failed = True
    try:
        for tracker in trackers_for(report_to):  # first: a tracker that cannot start leaves the log as it was
            started.append(_start(tracker, out, first_step, config))
        truncate_log(out / TRAIN_LOG, resumed_from)
        with (out / TRAIN_LOG).open("a") as log:

            def write(record: Record) -> None:
                log.write(json.dumps(record) + "\n")
                log.flush()
                for tracker in started:
                    tracker.log(scalars(record), step=record["step"])

            yield write
        failed = False
    finally:
        for tracker in started:
            _finish(tracker, failed)
