"""Accuracy metrics from per-choice log-likelihoods (no model needed: everything here re-runs from items.jsonl)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from likra.errors import LikraError


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
    # a checkpoint's trained heads ("positive", "negative"), scored in the same pass as the base model above
    heads: dict[str, list[float]] = field(default_factory=dict)
    heads_unconditional: dict[str, list[float]] = field(default_factory=dict)
    # P(True) per option (likra.ptrue): log P(" True") - log P(" False"), under "base" and each trained head
    p_true: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        if not self.p_true:  # rows scored without P(True) stay as they were written before it existed
            del row["p_true"]
        return row

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> ItemScores:
        optional = {"heads", "heads_unconditional", "p_true"}
        return cls(**{k: row[k] for k in cls.__dataclass_fields__ if k in row or k not in optional})


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


# --- Likra's scoring modes --------------------------------------------------------------------------

# Each mode is a weighted sum of per-head log-likelihoods; "w" stands for --neg-weight.
MODES: dict[str, dict[str, float | str]] = {
    "likra": {"positive": 1.0, "negative": "-w"},  # L+ - w·L-
    "sft": {"positive": 1.0},  # L+
    "negbase": {"base": 1.0, "negative": "-w"},  # Lbase - w·L- (Base-Likra: negatives only)
    "posbase": {"positive": 1.0, "base": -1.0},  # L+ - Lbase
    "base": {"base": 1.0},  # Lbase
}
# --norm → the metric that is the headline accuracy
NORMS = {"char": "acc_norm", "byte": "acc_per_byte", "token": "acc_per_token", "none": "acc"}


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise LikraError(f"--mode {mode}: expected one of {', '.join(MODES)}")


def check_mode_heads(mode: str, heads: Sequence[str], where: str) -> None:
    """Refuse, before any scoring, a mode that needs a head ``where`` (a checkpoint) does not have."""
    check_mode(mode)
    missing = sorted(set(MODES[mode]) - {"base", *heads})
    if missing:
        has = ", ".join(heads) or "none"
        raise LikraError(f"--mode {mode}: needs the {' and '.join(missing)} head; {where} has {has}")


def check_weight(neg_weight: float) -> None:
    if not math.isfinite(neg_weight):
        raise LikraError(f"--neg-weight {neg_weight}: must be a finite number")


def check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise LikraError(f"--norm {norm}: expected one of {', '.join(NORMS)}")


def mode_coefficients(mode: str, neg_weight: float) -> dict[str, float]:
    """Each head's weight in ``mode`` (e.g. likra: positive 1, negative -w)."""
    check_mode(mode)
    return {head: (-neg_weight if c == "-w" else float(c)) for head, c in MODES[mode].items()}


def available_modes(scores: Sequence[ItemScores]) -> list[str]:
    """The modes whose heads every item has scores for."""
    heads = {"base"} | (set.intersection(*(set(s.heads) for s in scores)) if scores else set())
    return [mode for mode, parts in MODES.items() if set(parts) <= heads]


def combine(score: ItemScores, mode: str, neg_weight: float = 1.0) -> ItemScores:
    """The item's numbers under ``mode``: per choice, the mode's weighted sum of head log-likelihoods.

    Every metric then applies unchanged (sums are linear, so per-character normalisation of the sum is the sum
    of the normalised heads; calibration subtracts the same combination of the unconditional scores)."""
    coefficients = mode_coefficients(mode, neg_weight)
    conditional = {"base": score.loglikelihoods, **score.heads}
    unconditional = {"base": score.unconditional, **score.heads_unconditional}
    missing = [head for head in coefficients if head not in conditional]
    if missing:
        raise LikraError(f"--mode {mode}: needs the {' and '.join(missing)} head, which these scores lack")

    def mix(table: dict[str, list[float]]) -> list[float]:
        if not all(table.get(head) for head in coefficients):
            return []
        return [sum(c * table[head][i] for head, c in coefficients.items()) for i in range(len(score.n_chars))]

    return replace(
        score, loglikelihoods=mix(conditional), unconditional=mix(unconditional), heads={}, heads_unconditional={},
        p_true={},
    )


def summarize_mode(
    scores: Sequence[ItemScores], mode: str = "base", neg_weight: float = 1.0
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """``summarize`` of the items combined under ``mode``."""
    combined = [combine(s, mode, neg_weight) for s in scores]
    return summarize(combined, all(s.unconditional for s in combined))


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value for two methods' per-item correctness on the same items.

    Only the discordant items count: under the null, which method wins each one is a fair coin, so the
    p-value is the binomial tail of the smaller count, doubled (capped at 1)."""
    if len(a) != len(b):
        raise ValueError("McNemar needs the same items for both methods")
    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)
