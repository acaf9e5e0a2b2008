"""P(True), a verifier that needs no wrong answers (Kadavath et al. 2022, "Language Models (Mostly) Know What They
Know"): the model is shown a question and a proposed answer, asked whether it is true, and the answer's score is
``log P(" True") - log P(" False")`` after that prompt. Scored by the same engine and heads as everything else, so
a checkpoint gives P(True) under the base model and under each head (SFT's is the positive head's)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from likra.data.prompts import ItemRequests
from likra.metrics import ItemScores

# Kadavath et al.'s layout ("Question: ... Proposed Answer: ... Is the proposed answer: (A) True (B) False"), with
# the words themselves as the two continuations: a 135M model has no habit of answering with letters.
PROMPT = (
    "Question: {question}\nProposed answer: {answer}\nIs the proposed answer true or false?\nThe proposed answer is"
)
VERDICTS = (" True", " False")


def ptrue_requests(requests: Sequence[ItemRequests]) -> list[ItemRequests]:
    """One request per option of every item: its P(True) prompt, continued by " True" and " False"."""
    out = []
    for r in requests:
        for j, answer in enumerate(r.item.choices):
            context = PROMPT.format(question=r.item.question.strip(), answer=answer.strip())
            item = replace(r.item, id=f"{r.item.id}#{j}", choices=[v.strip() for v in VERDICTS], label=0)
            out.append(ItemRequests(item, [context, context], list(VERDICTS), []))
    return out


def add_ptrue(
    items: Sequence[ItemScores],
    requests: Sequence[ItemRequests],
    score: Callable[[Sequence[ItemRequests], Callable[[int], None] | None], list[ItemScores]],
    progress: Callable[[int], None] | None = None,
) -> list[ItemScores]:
    """``items`` with ``p_true`` filled in: ``score`` (the engine under the base model and the heads, without
    calibration controls) runs the P(True) requests of ``requests`` (the same items, in order)."""
    scored = iter(score(ptrue_requests(requests), progress))
    out = []
    for item, r in zip(items, requests, strict=True):
        verdicts = [next(scored) for _ in r.item.choices]
        tables: dict[str, Any] = {"base": [v.loglikelihoods for v in verdicts]}
        tables |= {head: [v.heads[head] for v in verdicts] for head in verdicts[0].heads}
        out.append(replace(item, p_true={head: [t - f for t, f in pairs] for head, pairs in tables.items()}))
    return out
