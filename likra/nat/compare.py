"""Agents side by side: the metrics of several ``likra nat eval`` runs on the same problems, each tested
against the first with the exact McNemar test on per-problem correctness."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from likra.errors import LikraError
from likra.files import write_csv
from likra.metrics import mcnemar_exact
from likra.nat.agent import summarize
from likra.nat.trajectories import read_trajectories

COLUMNS = ("run", "n", "accuracy", "p_vs_first", "mean_steps", "tool_error_rate", "finished", "top_answer_share")


def run_name(folder: Path) -> str:
    """``out/nat/sqa/nat/eval`` → ``nat``: an evaluation folder named ``eval`` or ``eval-<what>`` is its run's."""
    return folder.parent.name if folder.name == "eval" or folder.name.startswith("eval-") else folder.name


def compare_evals(folders: Sequence[str | Path], csv_out: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per evaluation folder (its ``items.jsonl``), in the given order; also written to ``csv_out``."""
    runs = []
    for folder in map(Path, folders):
        items = folder / "items.jsonl"
        if not items.is_file():
            raise LikraError(f"{folder}: no items.jsonl (not a finished likra nat eval folder)")
        runs.append((folder, read_trajectories(items)))
    first_folder, first = runs[0]
    rows = []
    for folder, trajectories in runs:
        if [t.id for t in trajectories] != [t.id for t in first]:
            raise LikraError(f"{folder}: scored other problems than {first_folder}; compare runs on the same ones")
        metrics = summarize(trajectories)
        p = mcnemar_exact([t.reward for t in trajectories], [t.reward for t in first])
        rows.append({"run": run_name(folder), **metrics, "p_vs_first": p, "folder": str(folder)})
    if csv_out:
        write_csv(csv_out, rows, CSV_COLUMNS)
    return rows


CSV_COLUMNS = [*COLUMNS, "majority_baseline", "score", "folder"]
