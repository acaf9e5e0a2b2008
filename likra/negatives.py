"""Negative answers for the negative head, by kind. Seeded per question; none is the correct answer.

Kinds (the paper's ablations):

* ``incorrect``: a random wrong option of the same question (a near miss);
* ``hardest`` / ``easiest``: the wrong option the base model scores highest / lowest (``base_scores``);
* ``irrelevant``: an option of a different question of the same dataset;
* ``unrelated``: an answer text from another dataset (``foreign_texts``).

``contamination`` replaces that fraction of all negatives with the question's correct answer: the label-noise
control.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from likra.data.items import MCItem
from likra.data.pools import normalize_text
from likra.data.prompts import TARGET_DELIMITER, build_requests
from likra.data.tasks import get_task
from likra.errors import LikraError

KINDS = ("incorrect", "hardest", "easiest", "irrelevant", "unrelated")
NEEDS_BASE_SCORES = ("hardest", "easiest")
# Where ``unrelated`` answers come from: a dataset whose answers have nothing to do with the task's questions.
UNRELATED_SOURCE = {"arc_challenge": "hellaswag", "arc_easy": "hellaswag", "hellaswag": "mmlu"}
DEFAULT_UNRELATED_SOURCE = "hellaswag"


@dataclass(frozen=True)
class Negative:
    """One negative answer for a question, and where it came from (for audits and tests)."""

    text: str
    kind: str
    source: str  # "option 2", "question <id> option 0", "<dataset> <n>", "correct answer"


def _wrong_options(item: MCItem) -> list[int]:
    correct = normalize_text(item.choices[item.label])
    return [i for i, c in enumerate(item.choices) if i != item.label and normalize_text(c) != correct]


def _draw(
    rng: random.Random, k: int, texts: Sequence[tuple[str, str, str]], owner: str, forbidden: set[str]
) -> list[tuple[str, str]]:
    """``k`` distinct (text, source) entries of ``texts`` (text, source, owner id), none owned by ``owner`` and
    none whose normalised text is ``forbidden``; fewer if a thousand draws do not find them."""
    chosen: list[tuple[str, str]] = []
    seen = set(forbidden)
    for _ in range(1000):
        if len(chosen) == k:
            break
        text, source, text_owner = texts[rng.randrange(len(texts))]
        key = normalize_text(text)
        if key and key not in seen and text_owner != owner:
            seen.add(key)
            chosen.append((text, source))
    return chosen


def make_negatives(
    items: Sequence[MCItem],
    kind: str,
    *,
    k: int = 1,
    contamination: float = 0.0,
    seed: int = 1234,
    base_scores: Mapping[str, Sequence[float]] | None = None,
    others: Sequence[MCItem] = (),
    foreign_texts: Sequence[str] = (),
) -> list[list[Negative]]:
    """Up to ``k`` negatives per item (fewer only when a question has fewer wrong options).

    ``base_scores[item.id]`` (one score per choice) is needed by ``hardest``/``easiest``; ``others`` are the
    questions ``irrelevant`` draws from (default: ``items``); ``foreign_texts`` feed ``unrelated``.
    """
    if kind not in KINDS:
        raise LikraError(f"--negatives {kind}: unknown kind (known: {', '.join(KINDS)})")
    if k < 1:
        raise LikraError(f"--negatives-per-question {k}: must be 1 or more")
    if not 0.0 <= contamination <= 1.0:
        raise LikraError(f"--contamination {contamination}: must be between 0 and 1")
    if kind in NEEDS_BASE_SCORES and base_scores is None:
        raise LikraError(f"--negatives {kind} needs the base model's scores of every option")
    if kind == "unrelated" and not foreign_texts:
        raise LikraError("--negatives unrelated needs answer texts from another dataset")
    # what irrelevant / unrelated draw from: (text, source, owning question id)
    draw_from: list[tuple[str, str, str]] = []
    if kind == "irrelevant":
        draw_from = [
            (c, f"question {o.id} option {i}", o.id) for o in (others or items) for i, c in enumerate(o.choices)
        ]
    elif kind == "unrelated":
        draw_from = [(t, f"unrelated {i}", "") for i, t in enumerate(foreign_texts)]
    out: list[list[Negative]] = []
    for item in items:
        rng = random.Random(f"{seed}:{kind}:{item.id}")
        wrong = _wrong_options(item)
        if kind == "incorrect":
            picked = [(item.choices[i], f"option {i}") for i in rng.sample(wrong, min(k, len(wrong)))]
        elif kind in NEEDS_BASE_SCORES:
            assert base_scores is not None
            scores = base_scores[item.id]
            ranked = sorted(wrong, key=lambda i: (-scores[i] if kind == "hardest" else scores[i], i))
            picked = [(item.choices[i], f"option {i}") for i in ranked[:k]]
        else:
            own = {normalize_text(c) for c in item.choices}  # none of the question's own options, right or wrong
            picked = _draw(rng, k, draw_from, item.id, own)
        out.append([Negative(text, kind, source) for text, source in picked])
    if contamination:
        flat = [(q, j) for q, negatives in enumerate(out) for j in range(len(negatives))]
        count = round(contamination * len(flat))
        for q, j in random.Random(f"{seed}:contamination").sample(flat, count):
            item = items[q]
            out[q][j] = Negative(item.choices[item.label], "contamination", "correct answer")
    return out


def unrelated_texts(task: str, data_dir: str | None = None) -> list[str]:
    """Every answer option of another dataset's few-shot split (``UNRELATED_SOURCE``), for ``unrelated``."""
    from likra.data.tasks import get_task, load_items

    source = get_task(UNRELATED_SOURCE.get(task, DEFAULT_UNRELATED_SOURCE))
    return [choice for item in load_items(source, source.fewshot_split, data_dir) for choice in item.choices]


def base_option_scores(loaded: Any, task: str, items: Sequence[MCItem]) -> dict[str, list[float]]:
    """The base model's per-character log-likelihood of every option (what ``hardest``/``easiest`` rank), by
    question id; ``loaded`` is a ``likra.models.LoadedModel``."""
    from likra.scoring import Scorer  # torch: imported when scoring, not when a config names a kind

    requests = build_requests(get_task(task), items)
    pairs = [(c, x) for r in requests for c, x in zip(r.contexts, r.continuations, strict=True)]
    values = Scorer(loaded.model, loaded.tokenizer).loglikelihoods(pairs)
    out, at = {}, 0
    for r in requests:
        answers = [c[len(TARGET_DELIMITER) :] for c in r.continuations]
        chosen = values[at : at + len(answers)]
        out[r.item.id] = [v.logprob / max(len(a), 1) for v, a in zip(chosen, answers, strict=True)]
        at += len(answers)
    return out
