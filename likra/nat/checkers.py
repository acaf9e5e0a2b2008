"""Answer checkers: is an episode's ``finish[...]`` right? Numeric match (math), yes/no (StrategyQA), normalised
exact match and token F1 (HotpotQA, as the SQuAD/HotpotQA evaluation scripts normalise)."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    correct: bool
    score: float  # 1/0, or F1 for HotpotQA


NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE]-?\d+)?|-?\.\d+")


def to_number(text: str | None) -> float | None:
    """The last number in ``text`` (``$1,234.50`` → 1234.5, ``3/4`` → 0.75), or None."""
    if not text:
        return None
    fraction = re.fullmatch(r"\s*(-?\d+)\s*/\s*(\d+)\s*", text)
    if fraction and int(fraction.group(2)) != 0:
        return int(fraction.group(1)) / int(fraction.group(2))
    found = NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def check_numeric(prediction: str | None, gold: str) -> Check:
    value, target = to_number(prediction), to_number(gold)
    correct = value is not None and target is not None and math.isclose(value, target, rel_tol=1e-6, abs_tol=1e-6)
    return Check(correct, float(correct))


def to_yes_no(text: str | None) -> str | None:
    """ "Yes", "yes.", "True", "Yes, because …" → "yes"; anything that is not clearly one of the two → None."""
    if not text:
        return None
    word = re.match(r"\W*(\w+)", text.lower())
    if word is None:
        return None
    return {"yes": "yes", "true": "yes", "no": "no", "false": "no"}.get(word.group(1))


def check_yes_no(prediction: str | None, gold: str) -> Check:
    correct = to_yes_no(prediction) is not None and to_yes_no(prediction) == to_yes_no(gold)
    return Check(correct, float(correct))


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (the SQuAD / HotpotQA normalisation)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1_score(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    # HotpotQA's script: yes/no/noanswer answers count only on an exact match
    if (pred in ("yes", "no", "noanswer") or ref in ("yes", "no", "noanswer")) and pred != ref:
        return 0.0
    pred_tokens, ref_tokens = pred.split(), ref.split()
    common = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def check_f1(prediction: str | None, gold: str) -> Check:
    if prediction is None:
        return Check(False, 0.0)
    return Check(normalize_answer(prediction) == normalize_answer(gold), f1_score(prediction, gold))


CHECKERS = {"numeric": check_numeric, "yesno": check_yes_no, "f1": check_f1}


def check(kind: str, prediction: str | None, gold: str) -> Check:
    return CHECKERS[kind](prediction, gold)
