"""From a verifier's score to the probability that an answer is correct.

Fitted on a labelled split that is not the test split (every option of every question scored alone, correct
or not), with scikit-learn: Platt scaling (a one-feature logistic regression) or isotonic regression. The fit
uses a seeded half of the questions and the expected calibration error (ECE) is measured on the other half,
before (the raw score read as log-odds, ``sigmoid(score)``) and after. Questions the heads were trained on are
left out. The map is stored beside the checkpoint's manifest (``calibration.json``), so that ``likra score``
and ``likra serve`` report ``p_correct``; it holds for the mode, weight and normalisation it was fitted on.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from likra import plots
from likra.artefacts import read_stored
from likra.configs import CALIBRATION_METHODS, CalibrationConfig
from likra.data import load_items
from likra.data.items import select_items
from likra.errors import LikraError
from likra.files import check_out_folder, write_json


class Scoring(Protocol):
    """What ``calibrate`` uses of a ``likra.Verifier`` (the verifier imports this module, not the other way)."""

    task: Any  # the checkpoint's TaskSpec
    manifest: Any  # its likra.checkpoints.Manifest
    step: Path
    config: Any  # its VerifierConfig: mode, neg_weight, norm

    def score(self, rows: Sequence[dict[str, Any]], progress: Callable[[int], None] | None = None) -> list[dict]: ...

CALIBRATION = "calibration.json"
METHODS = CALIBRATION_METHODS
PARAMS = {"platt": ("coef", "intercept"), "isotonic": ("x", "y")}  # each method's parameters, as ``fit`` gives them


@dataclass
class Calibration:
    """A fitted map from score to probability, and what it was fitted for and on."""

    method: str
    mode: str
    neg_weight: float
    norm: str
    params: dict[str, list[float]]  # platt: coef, intercept; isotonic: x, y (the step function's knots)
    fitted_on: dict[str, Any] = field(default_factory=dict)

    def probability(self, score: float) -> float:
        if self.method == "platt":
            return _sigmoid(self.params["coef"][0] * score + self.params["intercept"][0])
        return float(np.interp(score, self.params["x"], self.params["y"]))  # isotonic, clipped at the ends

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "mode": self.mode, "neg_weight": self.neg_weight, "norm": self.norm,
                "fitted_on": self.fitted_on}  # fmt: skip


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def read_calibration(step: Path, mode: str, neg_weight: float, norm: str) -> Calibration | None:
    """The checkpoint's calibration when it was fitted for this mode, weight and normalisation."""
    path = step / CALIBRATION
    if not path.is_file():
        return None
    found = read_stored(path, Calibration, "a likra calibration")
    if found.method not in PARAMS:
        raise LikraError(f"{path}: method: expected one of {', '.join(PARAMS)}, got {found.method!r}")
    needs = PARAMS[found.method]
    if any(not found.params.get(k) for k in needs):
        raise LikraError(f"{path}: params: {found.method} calibration needs {' and '.join(needs)} (non-empty)")
    if found.method == "isotonic" and len(found.params["x"]) != len(found.params["y"]):
        raise LikraError(f"{path}: params: x and y should be as long as each other (the step function's knots)")
    matches = (found.mode, found.neg_weight, found.norm) == (mode, neg_weight, norm)
    return found if matches else None


def fit(scores: Sequence[float], labels: Sequence[bool], method: str) -> dict[str, list[float]]:
    """The map's parameters (scikit-learn's estimators; an unpenalised logistic regression is Platt's)."""
    if len(set(labels)) < 2:
        raise LikraError("calibration needs both correct and wrong answers among the scored ones")
    x, y = np.asarray(scores, dtype=float).reshape(-1, 1), np.asarray(labels, dtype=int)
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=np.inf).fit(x, y)
        return {"coef": [float(model.coef_[0][0])], "intercept": [float(model.intercept_[0])]}
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(x.ravel(), y)
    return {"x": [float(v) for v in iso.X_thresholds_], "y": [float(v) for v in iso.y_thresholds_]}


def reliability(probabilities: Sequence[float], labels: Sequence[bool], bins: int) -> dict[str, Any]:
    """ECE (the count-weighted gap between mean probability and frequency of correct answers per bin) and the
    bins themselves, for the diagram."""
    p, y = np.asarray(probabilities, dtype=float), np.asarray(labels, dtype=float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        if not inside.any():
            continue
        confidence, accuracy = float(p[inside].mean()), float(y[inside].mean())
        ece += inside.sum() / len(p) * abs(confidence - accuracy)
        rows.append({"bin": b, "n": int(inside.sum()), "confidence": confidence, "accuracy": accuracy})
    return {"ece": float(ece), "bins": rows}


def calibrate(
    verifier: Scoring, config: CalibrationConfig, out: str | Path | None = None,
    progress: Callable[[int, str], AbstractContextManager[Callable[[int], None]]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Score every option of the split's questions alone, fit on half the questions, measure ECE on the other
    half, store ``calibration.json`` beside the checkpoint; ``out`` gets the report and the diagram.
    ``progress(total, description)``, when given, opens a progress bar (the CLI's ``progress_bar``). ``out`` is
    checked first: nothing is fitted, and the stored calibration not replaced, for a report that cannot be written."""
    if out is not None:
        check_out_folder("--out", out)
    task = verifier.task
    config.check_split(task.default_split)
    seen = verifier.manifest.trained_ids()
    items = select_items(load_items(task, config.split, config.data_dir), config.limit, config.sample, config.seed)
    kept = [item for item in items if item.id not in seen]  # the heads' own training questions would flatter it
    if not kept:
        raise LikraError(f"--split {config.split}: the heads were trained on all {len(items)} of its questions")
    if len(kept) < 2:
        raise LikraError(f"--split {config.split}: {len(kept)} question(s) the heads have not seen; need 2 or more")
    rows = [{"id": item.id, "question": item.question, "candidates": item.choices} for item in kept]
    total = sum(len(item.choices) for item in kept)
    with (progress or _no_bar)(total, f"scoring {total} answers") as advance:
        pairs = _pairs(kept, verifier.score(rows, advance))
    labels = [answer["index"] == item.label for item, answer in pairs]
    scores = [answer["score"] for _, answer in pairs]
    fit_ids = _half(kept, config.seed)
    in_fit = [item.id in fit_ids for item, _ in pairs]
    params = fit([s for s, f in zip(scores, in_fit, strict=True) if f],
                 [y for y, f in zip(labels, in_fit, strict=True) if f], config.method)  # fmt: skip
    held = [i for i, f in enumerate(in_fit) if not f]
    v = verifier.config
    fitted_on = {
        "task": task.name,
        "split": config.split,
        "questions": len(kept),
        "dropped_trained_on": len(items) - len(kept),
        "answers": len(pairs),
        "fit_questions": len(fit_ids),
        "seed": config.seed,
    }
    calibration = Calibration(config.method, v.mode, v.neg_weight, v.norm, params, fitted_on)  # fmt: skip
    held_labels = [labels[i] for i in held]
    before = reliability([_sigmoid(scores[i]) for i in held], held_labels, config.bins)
    after = reliability([calibration.probability(scores[i]) for i in held], held_labels, config.bins)
    calibration.fitted_on |= {"ece_before": before["ece"], "ece_after": after["ece"], "held_out_answers": len(held)}
    report = {"calibration": asdict(calibration), "before": before, "after": after}
    if out is not None:
        out = Path(out)
        write_json(out / "calibration.json", report)
        plot_reliability(before, after, out / "reliability.png", f"{task.name} {config.split} · {v.mode}")
    write_json(verifier.step / CALIBRATION, asdict(calibration))  # last: replaced only once the rest has succeeded
    return report


def _no_bar(total: int, description: str) -> AbstractContextManager[None]:
    return nullcontext()


def _pairs(items: Sequence[Any], answers: Sequence[dict[str, Any]]) -> list[tuple[Any, dict[str, Any]]]:
    """Each answer with its question (answers come in question order, a question's candidates together)."""
    by_id = {item.id: item for item in items}
    return [(by_id[a["id"]], a) for a in answers]


def _half(items: Sequence[Any], seed: int) -> set[str]:
    """The ids of a seeded half of the questions: the map is fitted on them and measured on the rest."""
    ids = [item.id for item in items]
    random.Random(f"{seed}:calibration").shuffle(ids)
    return set(ids[: len(ids) // 2])


# --- its figure --------------------------------------------------------------------------------------


def plot_reliability(before: dict[str, Any], after: dict[str, Any], path: str | Path, title: str) -> Path:
    """Reliability diagram: the frequency of correct answers against the mean probability per bin, before
    (the raw score as log-odds) and after calibration, with the diagonal of perfect calibration."""
    fig, ax = plots.axes()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for name, data, colour in (("before", before, "tab:grey"), ("after", after, "tab:red")):
        bins = data["bins"]
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], color=colour, marker="o",
                label=f"{name} (ECE {data['ece']:.3f})")  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    return plots.finish(fig, ax, path, title, "mean predicted probability", "fraction correct", False)
