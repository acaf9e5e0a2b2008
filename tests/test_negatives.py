"""Each negative kind, on real ARC rows, is what its name says; none is ever the correct answer."""

from __future__ import annotations

import pytest

from likra.data import load_items
from likra.data.pools import normalize_text, training_pool
from likra.errors import LikraError
from likra.negatives import KINDS, make_negatives, unrelated_texts


@pytest.fixture(scope="module")
def pool(data_dir):
    return training_pool("arc_challenge", "test", data_dir)


@pytest.fixture(scope="module")
def questions(pool):
    return pool.items[:300]


@pytest.fixture(scope="module")
def hellaswag_endings(data_dir):
    return unrelated_texts("arc_challenge", str(data_dir))


def fake_base_scores(questions):
    """Deterministic scores that rank the correct answer first, so hardest must skip it."""
    return {
        q.id: [10.0 if i == q.label else float((i * 7 + len(q.id)) % 5) for i in range(len(q.choices))]
        for q in questions
    }


def negatives_of(kind, questions, pool, foreign, **kw):
    return make_negatives(
        questions,
        kind,
        seed=kw.pop("seed", 7),
        base_scores=fake_base_scores(questions),
        others=pool.items,
        foreign_texts=foreign,
        **kw,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_no_kind_ever_yields_the_correct_answer(kind, questions, pool, hellaswag_endings):
    out = negatives_of(kind, questions, pool, hellaswag_endings, k=3)
    assert sum(len(n) for n in out) >= len(questions)
    for q, negs in zip(questions, out, strict=True):
        for neg in negs:
            assert normalize_text(neg.text) != normalize_text(q.choices[q.label])
            assert neg.kind == kind


@pytest.mark.parametrize("kind", KINDS)
def test_kinds_are_seeded(kind, questions, pool, hellaswag_endings):
    first = negatives_of(kind, questions, pool, hellaswag_endings, seed=1)
    assert first == negatives_of(kind, questions, pool, hellaswag_endings, seed=1)
    if kind not in ("hardest", "easiest"):  # a ranking has nothing random in it
        assert first != negatives_of(kind, questions, pool, hellaswag_endings, seed=2)


def test_incorrect_is_a_wrong_option_of_the_same_question(questions, pool, hellaswag_endings):
    out = negatives_of("incorrect", questions, pool, hellaswag_endings)
    picked = set()
    for q, (neg,) in zip(questions, out, strict=True):
        index = int(neg.source.removeprefix("option "))
        assert q.choices[index] == neg.text and index != q.label
        picked.add(index)
    assert len(picked) >= 3  # random among the wrong options, not always the same slot


def test_hardest_and_easiest_rank_wrong_options_by_base_score(questions, pool, hellaswag_endings):
    scores = fake_base_scores(questions)
    hardest = negatives_of("hardest", questions, pool, hellaswag_endings)
    easiest = negatives_of("easiest", questions, pool, hellaswag_endings)
    for q, (hard,), (easy,) in zip(questions, hardest, easiest, strict=True):
        wrong = [scores[q.id][i] for i in range(len(q.choices)) if i != q.label]
        assert scores[q.id][int(hard.source.removeprefix("option "))] == max(wrong)
        assert scores[q.id][int(easy.source.removeprefix("option "))] == min(wrong)


def test_irrelevant_is_an_answer_of_another_question(questions, pool, hellaswag_endings):
    options = {(q.id, i): c for q in pool.items for i, c in enumerate(q.choices)}
    out = negatives_of("irrelevant", questions, pool, hellaswag_endings)
    for q, (neg,) in zip(questions, out, strict=True):
        _, other_id, _, index = neg.source.split(" ")
        assert other_id != q.id and options[(other_id, int(index))] == neg.text
        assert normalize_text(neg.text) not in {normalize_text(c) for c in q.choices}


def test_unrelated_comes_from_another_dataset(data_dir, questions, pool, hellaswag_endings):
    endings = {c for item in load_items("hellaswag", "train", data_dir) for c in item.choices}
    assert set(hellaswag_endings) == endings
    arc_options = {c for q in pool.items for c in q.choices}
    out = negatives_of("unrelated", questions, pool, hellaswag_endings)
    for (neg,) in out:
        assert neg.text in endings and neg.text not in arc_options


def test_k_negatives_per_question_are_distinct_and_capped_by_the_options(questions, pool, hellaswag_endings):
    out = negatives_of("incorrect", questions, pool, hellaswag_endings, k=5)
    for q, negs in zip(questions, out, strict=True):
        assert len(negs) == len(q.choices) - 1  # all wrong options, once each
        assert len({n.text for n in negs}) == len(negs)
    for kind in ("irrelevant", "unrelated"):
        assert all(len(negs) == 4 for negs in negatives_of(kind, questions, pool, hellaswag_endings, k=4))


def test_contamination_replaces_that_fraction_with_the_correct_answer(questions, pool, hellaswag_endings):
    out = negatives_of("incorrect", questions, pool, hellaswag_endings, k=2, contamination=0.25)
    flat = [(q, n) for q, negs in zip(questions, out, strict=True) for n in negs]
    contaminated = [(q, n) for q, n in flat if n.kind == "contamination"]
    assert len(contaminated) == round(0.25 * len(flat))
    assert all(n.text == q.choices[q.label] for q, n in contaminated)


def test_bad_options_are_named(questions):
    with pytest.raises(LikraError, match="--negatives bogus"):
        make_negatives(questions, "bogus")
    with pytest.raises(LikraError, match="--contamination"):
        make_negatives(questions, "incorrect", contamination=1.5)
    with pytest.raises(LikraError, match="hardest"):
        make_negatives(questions, "hardest")
