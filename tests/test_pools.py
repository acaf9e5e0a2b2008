"""Training pools on the real benchmark files: the right sources, and no evaluation question inside."""

from __future__ import annotations

import pytest

from likra.data import load_items
from likra.data.pools import normalize_text, training_pool
from likra.errors import LikraError


def assert_no_leak(pool, held_out) -> None:
    ids = {i.id for i in held_out}
    texts = {normalize_text(i.question) for i in held_out}
    assert not [p for p in pool.items if p.id in ids or normalize_text(p.question) in texts]


def test_arc_pool_is_the_papers_6615_minus_the_11_test_questions(data_dir):
    pool = training_pool("arc_challenge", "test", data_dir)
    assert len(pool.items) + len(pool.dropped) == 6615  # ARC-Easy (all) + ARC-Challenge train and dev
    assert len(pool.dropped) == 11
    assert sorted(pool.sources) == sorted(
        ["arc_easy/train", "arc_easy/validation", "arc_easy/test", "arc_challenge/train", "arc_challenge/validation"]
    )
    test = load_items("arc_challenge", "test", data_dir)
    assert_no_leak(pool, test)
    # what was dropped really is in the test split, by text (the ids differ)
    texts = {normalize_text(i.question) for i in test}
    assert all(normalize_text(d.question) in texts for d in pool.dropped)


@pytest.mark.parametrize(
    ("task", "split", "sources"),
    [
        ("arc_easy", "test", 5),
        ("hellaswag", "validation", 1),
        ("winogrande", "validation", 1),
        ("mmlu", "test", 2),
    ],
)
def test_every_builtin_pool_keeps_its_evaluation_split_out(data_dir, task, split, sources):
    pool = training_pool(task, split, data_dir)
    assert len(pool.sources) == sources
    assert_no_leak(pool, load_items(task, split, data_dir))
    assert f"{task}/{split}" not in pool.sources


def test_hold_out_keeps_a_second_evaluation_set_out(data_dir):
    """ARC-Easy test is in the paper's ARC-Challenge pool; --hold-out arc_easy:test takes it out."""
    paper = training_pool("arc_challenge", "test", data_dir)
    easy_test = load_items("arc_easy", "test", data_dir)
    leaked = paper.overlap(easy_test)
    assert leaked == len(easy_test) - 1  # one ARC-Easy test question is also in ARC-Challenge test: dropped
    pool = training_pool("arc_challenge", "test", data_dir, hold_out=["arc_easy:test"])
    assert pool.held_out == ["arc_challenge/test", "arc_easy/test"]
    assert pool.overlap(easy_test) == 0 and pool.overlap(load_items("arc_challenge", "test", data_dir)) == 0
    assert len(pool.items) + len(pool.dropped) == 6615
    # what else went are copies of ARC-Easy test questions under other ids (same text): nothing unrelated
    removed = [item for item in paper.items if item not in pool.items]
    assert len(removed) >= leaked
    easy = training_pool("arc_easy", "test", data_dir)  # the pool's own guard, on the same files
    assert not [item for item in removed if item in easy.items]
    # the evaluation split itself, named again, changes nothing
    assert training_pool("arc_challenge", "test", data_dir, hold_out=["arc_challenge"]).items == paper.items
    with pytest.raises(LikraError, match="--hold-out arc_easy:dev: task arc_easy has splits"):
        training_pool("arc_challenge", "test", data_dir, hold_out=["arc_easy:dev"])


def test_normalised_text_catches_reworded_copies():
    assert normalize_text("Which gas do plants  absorb?") == normalize_text("which gas do plants absorb")


def test_user_tasks_need_a_train_file(tmp_path):
    test = tmp_path / "test.jsonl"
    test.write_text('{"question": "Q1?", "choices": ["a", "b"], "answer": 0}\n')
    with pytest.raises(LikraError, match="--train-file"):
        training_pool(f"jsonl:{test}")
    train = tmp_path / "train.jsonl"
    train.write_text(
        '{"question": "q1", "choices": ["a", "b"], "answer": 1}\n'  # the test question, differently written
        '{"question": "Q2?", "choices": ["c", "d"], "answer": 0}\n'
    )
    pool = training_pool(f"jsonl:{test}", train_file=train)
    assert [i.question for i in pool.items] == ["Q2?"] and len(pool.dropped) == 1
