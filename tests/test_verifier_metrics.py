"""likra.verifier_metrics (AUROC, hard AUROC, accuracy at coverage, from hand-made scores) and likra.ptrue
(P(True) scored by the engine, stored in items, a verifier row in eval and in the curve)."""

from __future__ import annotations

import csv
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from likra.evaluation import EvalConfig, evaluate, read_items, summarize_results, write_items
from likra.experiments.curve import CurveConfig, run_curve
from likra.metrics import ItemScores
from likra.ptrue import PROMPT, VERDICTS, ptrue_requests
from likra.scoring import Scorer
from likra.training import TrainConfig
from likra.verifier_metrics import (
    accuracy_at_coverage,
    auroc,
    available_methods,
    hard_auroc,
    hard_pairs,
    verifier_metrics,
    verifier_table,
)

from .test_experiments import tiny  # noqa: F401  (the fixture)


def item(label: int, base: list[float], **heads: list[float]) -> ItemScores:
    n = len(base)
    return ItemScores(id=str(label), label=label, loglikelihoods=base, unconditional=[], n_tokens=[1] * n,
                      n_chars=[1] * n, n_bytes=[1] * n, heads=heads)  # fmt: skip


def test_auroc_counts_correct_above_wrong_pairs():
    # correct options 3 and 1; wrong 2, 0, 0.5, 4: of the 8 (correct, wrong) pairs, 5 are ordered right
    scores, labels = [[3.0, 2.0, 0.0], [1.0, 0.5, 4.0]], [0, 0]
    assert auroc(scores, labels) == pytest.approx(5 / 8)
    assert auroc([[1.0, 0.0], [1.0, 0.0]], [0, 0]) == 1.0 and auroc([[0.0, 1.0]], [0]) == 0.0
    assert math.isnan(auroc([[1.0]], [0]))  # one kind only: undefined, not a number to trust


def test_hard_auroc_keeps_the_base_models_most_likely_wrong_option():
    # the base model likes option 2 most of the wrong ones; the verifier puts the correct one above it but
    # below option 1: every hard pair is right, the pooled AUROC is not
    items = [item(0, [-3.0, -2.5, -1.0]), item(1, [-2.0, -3.0, -1.0])]
    assert hard_pairs(items) == [(0, 2), (1, 2)]
    scores = [[0.5, 0.9, 0.1], [0.2, 0.6, 0.3]]
    assert hard_auroc(scores, hard_pairs(items)) == 1.0
    assert auroc(scores, [0, 1]) == pytest.approx(6 / 8)


def test_accuracy_at_coverage_answers_the_most_confident_questions():
    # picked scores 0.9 (right), 0.8 (wrong), 0.3 (right), 0.1 (wrong)
    scores = [[0.9, 0.0], [0.1, 0.8], [0.3, 0.2], [0.0, 0.1]]
    labels = [0, 0, 0, 0]
    assert accuracy_at_coverage(scores, labels, 0.5) == 0.5
    assert accuracy_at_coverage(scores, labels, 0.25) == 1.0
    assert accuracy_at_coverage(scores, labels, 1.0) == 0.5


def test_the_table_has_every_method_the_numbers_allow():
    with_heads = [item(0, [-1.0, -2.0], positive=[-0.5, -2.0], negative=[-2.0, -0.5]), item(1, [-1.0, -1.2],
                  positive=[-2.0, -0.5], negative=[-0.5, -2.0])]  # fmt: skip
    assert available_methods(with_heads) == ["base", "sft", "likra", "negbase", "posbase"]
    table = verifier_table(with_heads)
    assert table["likra"] == verifier_metrics(with_heads, [[1.5, -1.5], [-1.5, 1.5]])
    assert table["likra"]["auroc"] == 1.0 and table["likra"]["acc_at_50"] == 1.0
    assert list(verifier_table([item(0, [-1.0, -2.0])])) == ["base"]
    result = summarize_results(with_heads, "likra")
    assert result["verifier"] == table  # eval and rescore report it


def test_ptrue_requests_ask_about_each_option():
    from likra.data import build_requests, get_task
    from likra.data.items import MCItem

    task = get_task("arc_challenge")
    requests = build_requests(task, [MCItem("q1", "Which is a gas? ", ["steam", "ice"], 0)])
    asked = ptrue_requests(requests)
    assert [r.item.id for r in asked] == ["q1#0", "q1#1"]
    assert asked[1].contexts == [PROMPT.format(question="Which is a gas?", answer="ice")] * 2
    assert asked[1].continuations == list(VERDICTS) and asked[1].unconditional == []


def test_eval_with_p_true_scores_the_verdicts_under_base_and_heads(fresh, runs, data_dir, tmp_path):
    loaded = fresh()
    config = EvalConfig(limit=3, data_dir=str(data_dir), checkpoint=str(runs / "both"), calibrate=False, p_true=True)
    result = evaluate(loaded, config)
    first = result.items[0]
    assert set(first.p_true) == {"base", "positive", "negative"} and len(first.p_true["base"]) == len(first.n_chars)
    # the base model's P(True) of option 1, by the engine directly
    from likra.data import get_task, load_items

    question = load_items(get_task("arc_challenge"), "test", data_dir)[0]
    context = PROMPT.format(question=question.question.strip(), answer=question.choices[1].strip())
    true, false = Scorer(loaded.model, loaded.tokenizer).loglikelihoods([(context, v) for v in VERDICTS])
    assert first.p_true["base"][1] == pytest.approx(true.logprob - false.logprob, abs=1e-5)
    assert {"base_ptrue", "sft_ptrue"} <= set(result.results["verifier"])
    write_items(tmp_path / "items.jsonl", result.items)  # stored and read back whole
    assert read_items(tmp_path / "items.jsonl")[0].p_true == first.p_true


def test_the_curve_has_verifier_columns_and_adds_p_true_to_stored_scores(tmp_path, data_dir, tiny):  # noqa: F811
    config = CurveConfig(train=TrainConfig(n=8, data_dir=str(data_dir)), seeds=[1], limit=4)
    run_curve(tiny, tiny, config, tmp_path, log=lambda _: None)
    with (tmp_path / "curve.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert all(0 <= float(r["auroc"]) <= 1 and 0 <= float(r["acc_at_50"]) <= 1 for r in rows)
    assert (tmp_path / "verifier.png").read_bytes()[:4] == b"\x89PNG"
    assert not any(r["method"].endswith("_ptrue") for r in rows)
    from likra.report import write_report

    markdown = write_report(tmp_path)[1].read_text()  # the report shows the verifier curve beside the accuracy one
    assert "![verifier](verifier.png)" in markdown and "arc_challenge test: mean hard AUROC across seeds" in markdown
    logs: list[str] = []
    summary = run_curve(tiny, tiny, CurveConfig(**{**config.__dict__, "p_true": True}), tmp_path, log=logs.append)
    assert logs == ["scoring the base model on 4 questions", "seed-1: scoring step-8"]  # scored again, not trained
    methods = {(r["method"], r["examples"]) for r in summary["rows"]}
    assert {("base_ptrue", 0), ("base_ptrue", 8), ("sft_ptrue", 8)} <= methods
    old = {(r["method"], int(r["examples"])): r["accuracy"] for r in rows}
    new = {(r["method"], r["examples"]): r["accuracy"] for r in summary["rows"]}
    assert all(new[key] == float(value) for key, value in old.items())  # the other numbers are unchanged


# scores with many ties (rounded) and without, one to five options per question
SCORE = st.one_of(st.integers(-3, 3).map(float), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))
QUESTION = st.lists(SCORE, min_size=1, max_size=5).flatmap(lambda v: st.tuples(st.just(v), st.integers(0, len(v) - 1)))


@settings(max_examples=300, deadline=None)
@given(st.lists(QUESTION, min_size=1, max_size=40))
def test_auroc_is_scikit_learns_to_the_bit(questions):
    """likra computes AUROC itself (importing sklearn.metrics cost a second of every eval's start); the numbers in
    results and curve.csv must stay scikit-learn's exactly."""
    import warnings

    from sklearn.metrics import roc_auc_score

    from likra.verifier_metrics import auroc

    scores, labels = [q[0] for q in questions], [q[1] for q in questions]
    truth = [int(i == label) for values, label in questions for i in range(len(values))]
    pooled = [v for values in scores for v in values]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = float(roc_auc_score(truth, pooled)) if 0 < sum(truth) < len(truth) else math.nan
    got = auroc(scores, labels)
    assert got == expected or (math.isnan(got) and math.isnan(expected))


def test_a_question_with_one_choice_is_left_out_of_hard_auroc_only():
    """Issue 38, root cause 7: a one-choice question (no wrong option) made every evaluation with it fail after
    scoring (ValueError in hard_pairs)."""
    items = [item(0, [-1.0, -2.0]), item(1, [-3.0, -1.0]), item(0, [-0.5])]
    scores = [s.loglikelihoods for s in items]
    assert verifier_metrics(items, scores)["hard_auroc"] == verifier_metrics(items[:2], scores[:2])["hard_auroc"]
    assert verifier_metrics(items, scores)["auroc"] == auroc(scores, [s.label for s in items])
    assert math.isnan(verifier_metrics(items[2:], scores[2:])["hard_auroc"])
