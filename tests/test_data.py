"""Benchmark readers, lm-eval's preprocessing, few-shot contexts and the errors of bad data."""

from __future__ import annotations

import json

import pytest

from likra.data import build_requests, get_task, load_items
from likra.data.prompts import choice_pairs
from likra.data.tasks import hellaswag_preprocess
from likra.errors import LikraError


@pytest.mark.parametrize(
    ("task", "split", "n"),
    [
        ("arc_challenge", "test", 1172),
        ("arc_challenge", "train", 1119),
        ("arc_easy", "test", 2376),
        ("hellaswag", "validation", 10042),
        ("hellaswag", "train", 3367),
        ("winogrande", "validation", 1267),
        ("winogrande", "train_xs", 160),
        ("mmlu", "test", 14042),
        ("mmlu", "dev", 285),
    ],
)
def test_real_files_read_whole(data_dir, task, split, n):
    items = load_items(task, split, data_dir)
    assert len(items) == n
    assert len({i.id for i in items}) == n
    assert all(0 <= i.label < len(i.choices) for i in items)


def test_arc_numeric_labels_and_odd_choice_counts(data_dir):
    items = load_items("arc_easy", "train", data_dir) + load_items("arc_challenge", "test", data_dir)
    counts = {len(i.choices) for i in items}
    assert {3, 4, 5} <= counts
    rows = [json.loads(line) for line in (data_dir / "arc" / "ARC-Challenge-Test.jsonl").open()]
    numeric = [r for r in rows if r["choices"]["label"][0] == "1"]
    assert numeric, "the test split has questions labelled 1..4"
    by_id = {i.id: i for i in items}
    for row in numeric:
        assert by_id[row["id"]].label == row["choices"]["label"].index(row["answerKey"])


def test_hellaswag_matches_lm_eval_preprocessing(data_dir):
    import datasets
    from lm_eval.tasks.hellaswag.utils import process_docs

    rows = [json.loads(line) for line in (data_dir / "hellaswag" / "validation.jsonl").open()]
    reference = process_docs(datasets.Dataset.from_list(rows))
    items = load_items("hellaswag", "validation", data_dir)
    assert any("[" in r["ctx"] or "[" in "".join(r["endings"]) for r in rows), "sample has brackets to clean"
    for item, ref in zip(items, reference, strict=True):
        assert item.question == ref["query"]
        assert item.choices == ref["choices"]
        assert item.label == ref["gold"]
    assert hellaswag_preprocess(" Wash hands [title] Rinse [step] well.  ") == "Wash hands. Rinse well."


def test_winogrande_partial_scoring_matches_lm_eval(data_dir):
    from lm_eval.tasks.winogrande import preprocess_winogrande as ref

    rows = [json.loads(line) for line in (data_dir / "winogrande" / "validation.jsonl").open()][:50]
    items = load_items("winogrande", "validation", data_dir)[:50]
    for item, row in zip(items, rows, strict=True):
        pairs = choice_pairs(item, "partial")
        assert [c for c, _ in pairs] == ref.doc_to_choice(row)
        assert all(x == " " + ref.doc_to_target(row) for _, x in pairs)
        assert item.label == ref.doc_to_text(row)


def test_arc_prompt_is_lm_evals(data_dir):
    task = get_task("arc_challenge")
    item = load_items(task, "test", data_dir)[0]
    (request,) = build_requests(task, [item])
    assert request.contexts == [f"Question: {item.question}\nAnswer:"] * len(item.choices)
    assert request.continuations == [" " + c for c in item.choices]
    assert request.unconditional == [("Answer:", " " + c) for c in item.choices]


def test_fewshot_contexts_are_seeded_and_exclude_the_item(data_dir):
    task = get_task("arc_challenge")
    items = load_items(task, "test", data_dir)[:5]
    pool = load_items(task, "train", data_dir)
    first = build_requests(task, items, shots=3, pool=pool, seed=1)
    again = build_requests(task, items[2:], shots=3, pool=pool, seed=1)
    other = build_requests(task, items, shots=3, pool=pool, seed=2)
    assert [r.contexts for r in first[2:]] == [r.contexts for r in again]  # per item, whatever the --limit
    assert first[0].contexts != other[0].contexts
    context = first[0].contexts[0]
    blocks = context.split("\n\n")
    assert len(blocks) == 4 and blocks[-1] == f"Question: {items[0].question}\nAnswer:"
    assert all(b.startswith("Question: ") and "\nAnswer: " in b for b in blocks[:3])
    # the item never serves as its own example when the pool is the evaluation split
    same = build_requests(task, items, shots=4, pool=items, seed=1)
    for request in same:
        assert request.contexts[0].count(request.item.question) == 1


def test_mmlu_uses_the_first_dev_questions_of_its_subject(data_dir):
    task = get_task("mmlu")
    item = load_items(task, "test", data_dir)[0]
    dev = load_items(task, "dev", data_dir)
    (request,) = build_requests(task, [item], shots=2, pool=dev)
    same = [d for d in dev if d.meta["subject"] == item.meta["subject"]][:2]
    expected = "The following are questions (with answers) about abstract algebra.\n\n"
    expected += "".join(f"Question: {d.question}\nAnswer: {d.choices[d.label]}\n\n" for d in same)
    assert request.contexts[0] == expected + f"Question: {item.question}\nAnswer:"


def test_hub_rows_go_through_the_same_reader(monkeypatch, data_dir):
    import datasets

    rows = [json.loads(line) for line in (data_dir / "arc" / "ARC-Challenge-Dev.jsonl").open()]
    calls = []

    def fake_load_dataset(path, name, split):
        calls.append((path, name, split))
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.delenv("LIKRA_DATA_DIR", raising=False)
    items = load_items("arc_challenge", "validation")
    assert calls == [("allenai/ai2_arc", "ARC-Challenge", "validation")]
    assert items == load_items("arc_challenge", "validation", data_dir)


def test_hub_unreachable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("LIKRA_DATA_DIR", raising=False)
    with pytest.raises(LikraError, match="no --data-dir"):
        load_items("winogrande", "validation")


def write(tmp_path, lines):
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return f"jsonl:{path}", path


GOOD = '{"question": "2+2?", "choices": ["3", "4"], "answer": 1}'


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"question": "2+2?", "choices": ["3", "4"], "answer": 1', "malformed JSON"),
        ('{"question": "2+2?", "choices": ["3", "4"]}', "missing field 'answer'"),
        ('{"question": "2+2?", "choices": ["3", "4"], "answer": 2}', "answer index 2 out of range"),
        ('{"question": "2+2?", "choices": [], "answer": 0}', "empty choice list"),
        ('{"question": "2+2?", "choices": ["3", 4], "answer": 0}', "choice 1 should be a string"),
        ('["not", "an", "object"]', "expected a JSON object"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, line, message):
    task, path = write(tmp_path, [GOOD, line])
    with pytest.raises(LikraError) as err:
        load_items(task)
    assert str(err.value).startswith(f"{path}:2: ")
    assert message in str(err.value)


def test_user_file_reads(tmp_path):
    task, _ = write(tmp_path, [GOOD, "", '{"id": "q2", "question": "1+1?", "choices": ["2"], "answer": 0}'])
    items = load_items(task)
    assert [i.id for i in items] == ["test-0", "q2"]
    assert items[0].choices == ["3", "4"] and items[0].label == 1


def test_unknown_task_split_and_missing_files(tmp_path, data_dir):
    with pytest.raises(LikraError, match="unknown task"):
        get_task("arc_hard")
    with pytest.raises(LikraError, match="has splits"):
        load_items("arc_challenge", "dev", data_dir)
    with pytest.raises(LikraError, match="data file not found"):
        load_items("hellaswag", "validation", tmp_path)
    with pytest.raises(LikraError, match="data file not found"):
        load_items(f"jsonl:{tmp_path / 'nope.jsonl'}")
