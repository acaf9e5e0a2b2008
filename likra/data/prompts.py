"""Prompts: an ``MCItem`` becomes (context, continuation) pairs, one per choice, as lm-eval builds them."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from likra.data.items import MCItem
from likra.data.tasks import TaskSpec
from likra.errors import LikraError

FEWSHOT_DELIMITER = "\n\n"
TARGET_DELIMITER = " "
# The answer-prior control scores each choice after this bare cue (``qa`` style) or after nothing at all
# (the model's prefix token, as lm-eval's ``acc_mutual_info`` does for every task).
UNCONDITIONAL_CUE = {"qa": "Answer:", "completion": "", "partial": ""}
# Prefix Likra (NAT's idea applied to Likra): one adapter learns correct and wrong answers, each after a line
# saying which kind follows; it is scored after each line in turn. Our wording.
ANSWER_PREFIXES = {"positive": "The following answer is correct.\n", "negative": "The following answer is wrong.\n"}


@dataclass(frozen=True)
class ItemRequests:
    """What the scoring engine needs for one item: per choice a context and a continuation."""

    item: MCItem
    contexts: list[str]
    continuations: list[str]
    unconditional: list[tuple[str, str]]


def _blank(item: MCItem) -> int:
    return item.question.index("_")


def query(item: MCItem, style: str) -> str:
    """The text before the answer (``qa`` and ``completion``)."""
    if style == "qa":
        return f"Question: {item.question}\nAnswer:"
    return item.question


def choice_pairs(item: MCItem, style: str) -> list[tuple[str, str]]:
    """(context, continuation) per choice, without few-shot examples."""
    if style == "partial":  # lm-eval's Winogrande: the option fills the blank, the rest is scored
        cut = _blank(item)
        rest = TARGET_DELIMITER + item.question[cut + 1 :].strip()
        return [(item.question[:cut] + option, rest) for option in item.choices]
    return [(query(item, style), TARGET_DELIMITER + choice) for choice in item.choices]


def example_text(item: MCItem, style: str) -> str:
    """A solved example for a few-shot context."""
    context, continuation = choice_pairs(item, style)[item.label]
    return context + continuation


def sample_shots(item: MCItem, pool: Sequence[MCItem], k: int, seed: int, sampler: str) -> list[MCItem]:
    """``k`` solved examples for ``item`` from ``pool`` (its subject's): seeded per item, so a question gets the
    same shots whatever the ``--limit`` or order; never the item itself."""
    if k == 0:
        return []
    others = [p for p in pool if p.id != item.id]
    if sampler == "first_n":  # lm-eval's MMLU: the first k dev questions (of the subject: see build_requests)
        candidates = others[:k]
    else:
        candidates = random.Random(f"{seed}:{item.id}").sample(others, min(k, len(others)))
    if len(candidates) < k:
        raise LikraError(f"--shots {k}: the few-shot pool has only {len(candidates)} examples for item {item.id}")
    return candidates


def build_requests(
    task: TaskSpec,
    items: Sequence[MCItem],
    shots: int = 0,
    pool: Sequence[MCItem] = (),
    seed: int = 1234,
) -> list[ItemRequests]:
    """Requests for every item: few-shot examples joined by a blank line, then the item (lm-eval's layout)."""
    if shots < 0:
        raise LikraError(f"--shots {shots}: must be 0 or more")
    by_subject: dict[object, list[MCItem]] = defaultdict(list)  # shots come from the question's own subject
    for p in pool:
        by_subject[p.meta.get("subject")].append(p)
    out = []
    for item in items:
        examples = sample_shots(item, by_subject[item.meta.get("subject")], shots, seed, task.fewshot_sampler)
        prefix = task.description(item) if task.description else ""
        prefix += "".join(example_text(e, task.style) + FEWSHOT_DELIMITER for e in examples)
        pairs = choice_pairs(item, task.style)
        cue = UNCONDITIONAL_CUE[task.style]
        out.append(
            ItemRequests(
                item=item,
                contexts=[prefix + c for c, _ in pairs],
                continuations=[c for _, c in pairs],
                unconditional=[(cue, c) for _, c in pairs],
            )
        )
    return out


def with_prefix(requests: Sequence[ItemRequests], kind: str) -> list[ItemRequests]:
    """The same requests after the line that announces ``kind`` of answer (the controls too)."""
    line = ANSWER_PREFIXES[kind]
    return [
        replace(r, contexts=[line + c for c in r.contexts], unconditional=[(line + c, x) for c, x in r.unconditional])
        for r in requests
    ]


def answer_pairs(task: TaskSpec, item: MCItem, answers: Sequence[str]) -> list[tuple[str, str]]:
    """(context, continuation) of ``item`` with each text in ``answers`` in the answer slot, built exactly as a
    0-shot evaluation request is: training on these pairs teaches the tokens that evaluation scores."""
    request = build_requests(task, [replace(item, choices=list(answers), label=0)])[0]
    return list(zip(request.contexts, request.continuations, strict=True))
