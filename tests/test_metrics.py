"""Metrics from stored log-likelihoods."""

from __future__ import annotations

import json

import pytest

from likra.errors import LikraError
from likra.metrics import (
    ItemScores,
    argmax,
    available_modes,
    combine,
    correct,
    mcnemar_exact,
    summarize,
    summarize_mode,
    wilson_interval,
)


def item(label=0, lls=(-10.0, -12.0), uncond=(-2.0, -9.0), tokens=(5, 2), chars=(20, 4), nbytes=(20, 8)):
    return ItemScores("q", label, list(lls), list(uncond), list(tokens), list(chars), list(nbytes))


def test_each_normalisation_picks_its_own_answer():
    s = item()
    # raw sums: -10 > -12 → choice 0; per char: -0.5 < -3 → 0; per token: -2 > -6 → 0;
    # per byte: -0.5 > -1.5 → 0; calibrated: -8 < -3 → choice 1
    assert [correct([s], m)[0] for m in ("acc", "acc_norm", "acc_per_token", "acc_per_byte")] == [True] * 4
    assert correct([s], "acc_calibrated") == [False]
    long_answer = item(lls=(-30.0, -12.0), chars=(60, 4))  # -0.5 vs -3 per char
    assert correct([long_answer], "acc") == [False]
    assert correct([long_answer], "acc_norm") == [True]


def test_ties_go_to_the_first_choice_as_numpy():
    assert argmax([-1.0, -1.0, -2.0]) == 0
    assert argmax([-3.0, -1.0, -1.0]) == 1


def test_wilson_interval():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_summarize_and_json_round_trip():
    scores = [item(label=0), item(label=1), item(label=0, lls=(-20.0, -1.0))]
    metrics, intervals = summarize(scores)
    assert metrics["acc"] == pytest.approx(1 / 3)
    assert set(metrics) == set(intervals) == {"acc", "acc_norm", "acc_per_byte", "acc_per_token", "acc_calibrated"}
    assert intervals["acc"][0] < metrics["acc"] < intervals["acc"][1]
    assert ItemScores.from_json(scores[0].to_json()) == scores[0]
    assert "acc_calibrated" not in summarize(scores, calibrated=False)[0]


def headed(label=0):
    return ItemScores(
        id="q",
        label=label,
        loglikelihoods=[-4.0, -3.0, -6.0],  # base prefers choice 1
        unconditional=[-1.0, -1.0, -1.0],
        n_tokens=[1, 1, 1],
        n_chars=[2, 2, 4],
        n_bytes=[2, 2, 4],
        heads={"positive": [-2.0, -1.9, -5.0], "negative": [-5.0, -1.0, -4.0]},
        heads_unconditional={"positive": [-1.0, -1.0, -1.0], "negative": [-1.0, -1.0, -1.0]},
    )


def test_modes_combine_heads_as_documented():
    s = headed()
    assert combine(s, "likra", 1.0).loglikelihoods == pytest.approx([3.0, -0.9, -1.0])  # L+ - L-
    assert combine(s, "likra", 0.5).loglikelihoods == pytest.approx([0.5, -1.4, -3.0])
    assert combine(s, "sft").loglikelihoods == pytest.approx([-2.0, -1.9, -5.0])
    assert combine(s, "negbase", 1.0).loglikelihoods == pytest.approx([1.0, -2.0, -2.0])  # Lbase - L-
    assert combine(s, "posbase").loglikelihoods == pytest.approx([2.0, 1.1, 1.0])  # L+ - Lbase
    assert combine(s, "base").loglikelihoods == s.loglikelihoods
    assert combine(s, "likra").unconditional == [0.0, 0.0, 0.0]
    # the negative head turns the base's and SFT's wrong answer (choice 1) into the right one
    assert correct([s], "acc") == [False] and correct([combine(s, "sft")], "acc") == [False]
    assert correct([combine(s, "likra")], "acc") == [True]


def test_modes_need_their_heads_and_roundtrip_through_json():
    plain = ItemScores("q", 0, [-1.0, -2.0], [], [1, 1], [1, 1], [1, 1])
    assert available_modes([plain]) == ["base"]
    with pytest.raises(LikraError, match="--mode likra: needs the positive and negative head"):
        combine(plain, "likra")
    with pytest.raises(LikraError, match="--mode best"):
        combine(plain, "best")
    s = headed()
    assert available_modes([s]) == ["likra", "sft", "negbase", "posbase", "base"]
    assert ItemScores.from_json(json.loads(json.dumps(s.to_json()))) == s
    row = s.to_json()
    del row["heads"], row["heads_unconditional"]  # items.jsonl written before heads existed still loads
    assert ItemScores.from_json(row).heads == {}
    metrics, _ = summarize_mode([s], "likra", 1.0)
    assert metrics["acc"] == 1.0 and "acc_calibrated" in metrics


def test_mcnemar_exact_matches_the_binomial_test():
    from scipy.stats import binomtest

    a = [True] * 30 + [False] * 10 + [True] * 12 + [False] * 48  # 12 right only in a, 10 only in b
    b = [True] * 30 + [True] * 10 + [False] * 12 + [False] * 48
    assert mcnemar_exact(a, b) == pytest.approx(binomtest(12, 22, 0.5).pvalue)
    assert mcnemar_exact(a, a) == 1.0
    lopsided = [True] * 20 + [False] * 80
    assert mcnemar_exact(lopsided, [False] * 100) == pytest.approx(2 * 0.5**20)
