"""Accuracy against the negative head's weight w (the paper's Figure 4), from stored per-item numbers: one
model pass for the checkpoint, none per weight."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from likra import plots
from likra.errors import LikraError
from likra.evaluation import EvalConfig, evaluate, open_checkpoint, read_items, write_items
from likra.files import write_csv, write_json
from likra.metrics import ItemScores, summarize_mode

SWEPT_MODES = ("likra", "negbase")  # the modes that have a weight
SWEPT_METRICS = ("acc", "acc_norm", "acc_calibrated")


def parse_weights(spec: str) -> list[float]:
    """``start:stop:step`` (stop included) or a comma-separated list, e.g. ``0:1.5:0.1`` or ``0.5,1,2``."""
    try:
        if ":" in spec:
            start, stop, step = (float(v) for v in spec.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = round((stop - start) / step) + 1
            return [round(start + i * step, 10) for i in range(count)]
        weights = [float(v) for v in spec.split(",") if v.strip()]
        if not all(math.isfinite(w) for w in weights):
            raise ValueError
        return weights
    except ValueError:
        raise LikraError(f"--weights {spec}: expected start:stop:step (e.g. 0:1.5:0.1) or a list (0.5,1,2)") from None


def sweep_rows(items: Sequence[ItemScores], weights: Sequence[float], run: int = 1) -> list[dict[str, Any]]:
    """One row per mode x weight with its accuracies (calibrated only when the items carry the controls);
    ``run`` numbers the checkpoint when several (seeds) are swept together."""
    rows = []
    for mode in SWEPT_MODES:
        for w in weights:
            metrics, _ = summarize_mode(items, mode, w)
            rows.append({"run": run, "mode": mode, "neg_weight": w, **{m: metrics.get(m) for m in SWEPT_METRICS}})
    return rows


def run_sweep(
    out: str | Path,
    weights: Sequence[float],
    *,
    items: Sequence[str] = (),
    config: EvalConfig | None = None,
    dtype: str = "auto",
) -> dict[str, Any]:
    """Accuracy against w for stored ``items`` files (the mean over them: seeds), or for the checkpoint of
    ``config``, scored once into ``out/items.jsonl`` (kept: a re-run reads it); writes ``sweep.csv``,
    ``sweep.json`` and ``sweep.png``."""
    out = Path(out)
    checkpoint = config.checkpoint if config else None
    if bool(checkpoint) == bool(items):
        raise LikraError("give --checkpoint (scored once here) or --items (stored scores), not both")
    paths = list(items) or [str(out / "items.jsonl")]
    if not items and not Path(paths[0]).is_file():
        _score_once(config, paths[0], dtype)
    runs = [read_items(path) for path in paths]
    rows = [row for run, scores in enumerate(runs, 1) for row in sweep_rows(scores, weights, run)]
    levels = {m: statistics.fmean(summarize_mode(s, m)[0]["acc_norm"] for s in runs) for m in ("sft", "base")}
    write_csv(out / "sweep.csv", rows)
    write_json(out / "sweep.json", {"items": paths, "levels": levels, "rows": rows})
    source = checkpoint or (paths[0] if len(paths) == 1 else f"mean of {len(paths)} checkpoints")
    plot_sweep(rows, out / "sweep.png", f"{len(runs[0])} questions · {source}", levels)
    return {"items": paths, "levels": levels, "rows": rows}


def _score_once(config: EvalConfig, path: str, dtype: str) -> None:
    with open_checkpoint(config, dtype=dtype) as checkpoint:
        write_items(path, evaluate(checkpoint, config).items)


# --- its figure --------------------------------------------------------------------------------------


def plot_sweep(
    rows: Sequence[dict[str, Any]], path: str | Path, title: str, levels: dict[str, float] | None = None
) -> Path:
    """acc_norm against the negative head's weight for each weighted mode (mean and 95% band when the rows hold
    several runs); ``levels`` (e.g. SFT, base) are drawn as flat reference lines."""
    fig, ax = plots.axes()
    for mode in dict.fromkeys(r["mode"] for r in rows):
        label, colour, line = plots.STYLE[mode]
        by_w: dict[float, list[float]] = defaultdict(list)
        for r in rows:
            if r["mode"] == mode:
                by_w[r["neg_weight"]].append(r["acc_norm"])
        plots.band(ax, by_w, colour, line, label, log_x=False)
    plots.levels(ax, levels)
    return plots.finish(fig, ax, path, title, "negative head weight w", "accuracy (acc_norm)", False)
