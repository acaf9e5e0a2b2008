"""Accuracy against the negative head's weight w (the paper's Figure 4), from stored per-item numbers: one
model pass for the checkpoint, none per weight."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from likra.errors import LikraError
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
