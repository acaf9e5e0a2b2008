"""Verifier metrics from stored scores: how well a score tells correct answers from wrong ones when each answer is
scored on its own (a benchmark's options are, in this engine: no option sees another). No model is needed.

- ``auroc``: every option of every question pooled, correct against wrong (sklearn's ``roc_auc_score``);
- ``hard_auroc``: the same on each question's correct option and the base model's most likely wrong one (the
  paper's "plausible but incorrect" answers);
- ``acc_at_50``, ``acc_at_80``: accuracy of the picked option on the 50% / 80% of questions where the picked
  option's score is highest (a verifier that may abstain; selective prediction).

A method is a score per option: a scoring mode under a metric (``likra`` per character, ``sft_calibrated``...,
as in ``likra.experiments.curve``), or P(True) (``base_ptrue``, ``sft_ptrue``: ``likra.ptrue``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from likra.metrics import SCORES, ItemScores, argmax, available_modes, combine

COVERAGES = {"acc_at_50": 0.5, "acc_at_80": 0.8}
VERIFIER_FIELDS = ["auroc", "hard_auroc", *COVERAGES]
# method → (mode, metric); P(True)'s methods → the head whose P(True) it is
MODE_METHODS: dict[str, tuple[str, str]] = {
    "base": ("base", "acc_norm"),
    "base_calibrated": ("base", "acc_calibrated"),
    "sft": ("sft", "acc_norm"),
    "sft_calibrated": ("sft", "acc_calibrated"),
    "likra": ("likra", "acc_norm"),
    "negbase": ("negbase", "acc_norm"),
    "posbase": ("posbase", "acc_norm"),
}
PTRUE_METHODS = {"base_ptrue": "base", "sft_ptrue": "positive"}


def option_scores(item: ItemScores, mode: str, metric: str, neg_weight: float = 1.0) -> list[float]:
    """One score per option: ``mode``'s combination of the heads under ``metric`` (at 0 examples, the base's)."""
    return SCORES[metric](combine(item, mode if item.heads else "base", neg_weight))


def method_scores(items: Sequence[ItemScores], method: str, neg_weight: float = 1.0) -> list[list[float]]:
    """Every item's option scores under ``method`` (a key of MODE_METHODS or PTRUE_METHODS)."""
    if method in PTRUE_METHODS:  # P(True)'s log-odds under the method's head
        return [s.p_true[PTRUE_METHODS[method]] for s in items]
    mode, metric = MODE_METHODS[method]
    return [option_scores(s, mode, metric, neg_weight) for s in items]


def auroc(scores: Sequence[Sequence[float]], labels: Sequence[int]) -> float:
    """Correct against wrong options, all questions pooled (nan when only one kind is present).

    scikit-learn's ``roc_auc_score`` step for step (the ROC curve at each distinct score, its collinear points
    dropped, the trapezoidal area), bit for bit (``tests/test_verifier_metrics.py`` checks it on arbitrary scores):
    importing ``sklearn.metrics`` took a second of every ``likra eval``'s start."""
    import numpy as np

    pairs = zip(scores, labels, strict=True)
    truth = np.array([float(i == label) for values, label in pairs for i in range(len(values))])
    pooled = np.array([v for values in scores for v in values], dtype=np.float64)
    if not 0 < truth.sum() < truth.size:
        return math.nan
    order = np.argsort(pooled, kind="stable")[::-1]  # descending; the order within ties changes no count below
    ordered, truth = pooled[order], truth[order]
    ends = np.r_[np.where(np.diff(ordered))[0], truth.size - 1]  # the last position of each distinct score
    tps = np.cumsum(truth)[ends]
    fps = 1 + ends.astype(np.float64) - tps
    if fps.size > 2:  # drop the points on a straight line between their neighbours, as roc_curve does
        keep = np.where(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        fps, tps = fps[keep], tps[keep]
    fpr, tpr = np.r_[0.0, fps] / fps[-1], np.r_[0.0, tps] / tps[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def hard_pairs(items: Sequence[ItemScores]) -> list[tuple[int, int] | None]:
    """Per item, (correct option, the base model's most likely wrong option by per-character likelihood); None for
    a question with no wrong option (one choice), which hard AUROC leaves out."""
    out: list[tuple[int, int] | None] = []
    for s in items:
        base = SCORES["acc_norm"](s)
        wrong = [i for i in range(len(base)) if i != s.label]
        out.append((s.label, max(wrong, key=lambda i: base[i])) if wrong else None)
    return out


def hard_auroc(scores: Sequence[Sequence[float]], pairs: Sequence[tuple[int, int] | None]) -> float:
    """``auroc`` on each question's correct option and its plausible wrong one only."""
    pairs_of = zip(scores, pairs, strict=True)
    kept = [[values[pair[0]], values[pair[1]]] for values, pair in pairs_of if pair is not None]
    return auroc(kept, [0] * len(kept)) if kept else math.nan


def accuracy_at_coverage(scores: Sequence[Sequence[float]], labels: Sequence[int], coverage: float) -> float:
    """Accuracy on the ``coverage`` share of questions whose picked option scores highest (ties: file order)."""
    picked = [(values[argmax(values)], argmax(values) == label) for values, label in zip(scores, labels, strict=True)]
    keep = max(1, math.ceil(coverage * len(picked)))
    order = sorted(range(len(picked)), key=lambda i: -picked[i][0])[:keep]
    return sum(picked[i][1] for i in order) / keep


def verifier_metrics(items: Sequence[ItemScores], scores: Sequence[Sequence[float]]) -> dict[str, float]:
    """AUROC, hard AUROC and accuracy at each coverage of ``scores`` (one list per item of ``items``)."""
    labels = [s.label for s in items]
    out = {"auroc": auroc(scores, labels), "hard_auroc": hard_auroc(scores, hard_pairs(items))}
    return out | {name: accuracy_at_coverage(scores, labels, c) for name, c in COVERAGES.items()}


def available_methods(items: Sequence[ItemScores]) -> list[str]:
    """The methods the stored numbers allow: the modes their heads allow (calibrated where the controls were
    scored), and P(True) where it was scored."""
    modes = set(available_modes(items))
    calibrated = all(s.unconditional for s in items)
    out = [m for m, (mode, metric) in MODE_METHODS.items() if mode in modes and (calibrated or metric == "acc_norm")]
    return out + [m for m, head in PTRUE_METHODS.items() if items and all(head in s.p_true for s in items)]


def verifier_table(items: Sequence[ItemScores], neg_weight: float = 1.0) -> dict[str, dict[str, float]]:
    """``verifier_metrics`` of every available method."""
    return {m: verifier_metrics(items, method_scores(items, m, neg_weight)) for m in available_methods(items)}
