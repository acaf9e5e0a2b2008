"""Accuracy metrics from per-choice log-likelihoods (no model needed: everything here re-runs from items.jsonl)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class ItemScores:
    """Everything scoring produced for one question, enough to recompute every metric."""

    id: str
    label: int
    loglikelihoods: list[float]  # summed over the continuation's tokens, in choice order
    unconditional: list[float]  # same continuation after the bare answer cue (answer-prior control)
    n_tokens: list[int]
    n_chars: list[int]  # of the scored answer text, without the leading space (lm-eval's acc_norm length)
    n_bytes: list[int]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> ItemScores:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


def _per(values: Sequence[float], lengths: Sequence[int]) -> list[float]:
    return [v / max(n, 1) for v, n in zip(values, lengths, strict=True)]


# Each metric turns an item's numbers into one score per choice; the prediction is the first argmax
# (numpy's, as lm-eval uses).
SCORES: dict[str, Callable[[ItemScores], list[float]]] = {
    "acc": lambda s: list(s.loglikelihoods),
    "acc_norm": lambda s: _per(s.loglikelihoods, s.n_chars),
    "acc_per_byte": lambda s: _per(s.loglikelihoods, s.n_bytes),
    "acc_per_token": lambda s: _per(s.loglikelihoods, s.n_tokens),
    "acc_calibrated": lambda s: [c - u for c, u in zip(s.loglikelihoods, s.unconditional, strict=True)],
}


def argmax(values: Sequence[float]) -> int:
    best = 0
    for i, value in enumerate(values):
        if value > values[best]:
            best = i
    return best


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (sound near 0 and 1, unlike the normal approximation)."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def correct(scores: Sequence[ItemScores], metric: str) -> list[bool]:
    """Per item, whether the metric's prediction is the labelled answer."""
    fn = SCORES[metric]
    return [argmax(fn(s)) == s.label for s in scores]


def metric_names(calibrated: bool = True) -> list[str]:
    """The metrics the stored numbers support: ``acc_calibrated`` needs the unconditional controls."""
    return [name for name in SCORES if calibrated or name != "acc_calibrated"]


def summarize(scores: Sequence[ItemScores], calibrated: bool = True) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Accuracy of every metric (``acc_calibrated`` only when the controls were scored) and its 95% interval."""
    metrics: dict[str, float] = {}
    intervals: dict[str, list[float]] = {}
    for name in metric_names(calibrated):
        hits = correct(scores, name)
        metrics[name] = sum(hits) / len(hits) if hits else 0.0
        intervals[name] = list(wilson_interval(sum(hits), len(hits)))
    return metrics, intervals
