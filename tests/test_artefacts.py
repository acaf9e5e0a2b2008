"""Every reader of a user's file or of a file likra stored (issue 38): whatever the bytes, a parse or one
``LikraError`` naming the file (and line, and field), never another exception.

The targeted tests hold each root cause the issue found; the Hypothesis tests throw arbitrary bytes, arbitrary
JSON values and valid files with one field broken at every reader."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from likra.calibration import read_calibration
from likra.checkpoints import manifest_of, truncate_log
from likra.data import load_items, read_jsonl
from likra.errors import LikraError
from likra.evaluation import read_items
from likra.experiments.curve import eval_sets
from likra.files import read_json
from likra.nat.tasks import read_rows
from likra.report import write_report
from likra.verifier import check_rows

QUESTION = {"id": "q1", "question": "What do bees make?", "choices": ["honey", "milk"], "answer": 0}
SCORE_ROW = {"id": "a1", "question": "What do bees make?", "answer": "honey"}
ITEM = {"id": "q1", "label": 0, "loglikelihoods": [-1.0, -2.0], "unconditional": [], "n_tokens": [1, 1],
        "n_chars": [5, 4], "n_bytes": [5, 4], "heads": {"positive": [-1.0, -3.0]}}  # fmt: skip
MANIFEST = {"format": "likra", "task": "arc_challenge", "heads": ["positive"], "questions": 4, "config": {"n": 4},
            "base_model": {"name": "m", "hash": "sha256:0"}, "examples_seen": 4, "steps": 1}  # fmt: skip
CALIBRATION = {"method": "platt", "mode": "likra", "neg_weight": 1.0, "norm": "char",
               "params": {"coef": [1.0], "intercept": [0.0]}}  # fmt: skip
CURVE = {"rows": [{"task": "arc_challenge", "split": "test", "method": "likra", "examples": 8, "seed": 1,
                   "accuracy": 0.5, "p_vs_sft": 0.2, "p_vs_sft_calibrated": None}]}  # fmt: skip
SUMMARIES = {
    "curve.json": CURVE,
    "ablate.json": {"rows": [{"kind": "near", "method": "likra", "examples": 8, "seed": 1, "accuracy": 0.5}]},
    "sweep.json": {"rows": [{"mode": "likra", "neg_weight": 0.5, "acc_norm": 0.4, "run": 1}]},
    "mass.json": {"rows": [{"examples": 8, "head": "negative", "answer": "wrong", "mean_delta_per_char": -0.1}]},
    "grid.json": {"counts": [0, 8], "mean_acc_norm": [[0.3, 0.4], [0.5, 0.6]], "rows": [],
                  "gains": [{"from": 0, "to": 8, "negatives": {"mean": 0.1, "ci95": [0.0, 0.2]},
                             "positives": {"mean": 0.05, "ci95": [-0.1, 0.1]}}],
                  "value_of_a_negative": {"below": {"steps": [[0, 8]], "ratio": 2.0, "ratio_ci95": [1.0, 3.0]}}},
}  # fmt: skip
COMMAND = {"command": "likra curve --out x", "finished": "2026-12-07T10:00:00+00:00", "seconds": 12.5}
EVAL_SET = {"task": "arc_challenge", "split": "test", "n": 3}


def write(path: Path, value: Any, lines: bool = False) -> Path:
    """``value`` as JSON (a list of rows, one per line, with ``lines``); surrogates as ``\\ud800`` escapes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(v) + "\n" for v in value) if lines else json.dumps(value))
    return path


def read_manifest(path: Path) -> Any:
    return manifest_of(path.parent)


def read_calibration_file(path: Path) -> Any:
    return read_calibration(path.parent, "likra", 1.0, "char")


def report_of(name: str):
    def read(path: Path) -> Any:
        return write_report(path.parent)

    read.__name__ = f"report_of_{name}"
    return read


def report_with_commands(path: Path) -> Any:
    write(path.parent / "sweep.json", SUMMARIES["sweep.json"])
    return write_report(path.parent)


# reader, the file name it reads, a valid value, whether the file is JSONL (the value is then its rows)
READERS: list[tuple[Any, str, Any, bool]] = [
    (read_json, "x.json", CALIBRATION, False),
    (lambda p: list(read_jsonl(p)), "x.jsonl", [QUESTION], True),
    (lambda p: load_items(f"jsonl:{p}"), "questions.jsonl", [QUESTION], True),
    (check_rows, "rows.jsonl", [SCORE_ROW], True),
    (read_items, "items.jsonl", [ITEM], True),
    (read_manifest, "likra.json", MANIFEST, False),
    (read_calibration_file, "calibration.json", CALIBRATION, False),
    (lambda p: eval_sets(p.parents[2]), "scores/arc_challenge-test/eval.json", EVAL_SET, False),
    (report_with_commands, "commands.jsonl", [COMMAND], True),
    (lambda p: list(read_rows(p)), "pos.json", [{"id": "t1"}], False),
    *((report_of(name), name, value, False) for name, value in SUMMARIES.items()),
]
IDS = [getattr(r[0], "__name__", "reader").replace("<lambda>", Path(r[1]).name) for r in READERS]


def outcome(reader: Any, path: Path) -> Any:
    """Call ``reader``; a LikraError is a fine answer, any other exception fails the test."""
    try:
        return reader(path)
    except LikraError as err:
        assert str(err) and "\n" not in str(err)
        return err


@pytest.mark.parametrize(("reader", "name", "valid", "lines"), READERS, ids=IDS)
def test_every_reader_takes_its_valid_file(tmp_path, reader, name, valid, lines):
    assert not isinstance(outcome(reader, write(tmp_path / name, valid, lines)), LikraError)


# --- the root causes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lines", [True, False], ids=["jsonl", "json"])
@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"question": "' + "\\ud800" + '"}', "question: text with a lone surrogate"),
        ('{"choices": ["a", "b\\udfff"]}', "choices[1]: text with a lone surrogate"),
        ('{"n": ' + "7" * 5000 + "}", "an integer of more than 4300 digits"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
    ids=["surrogate", "surrogate-in-a-list", "huge-int", "deep"],
)
def test_json_that_python_or_a_tokenizer_refuses_is_named_at_read_time(tmp_path, text, fragment, lines):
    path = tmp_path / ("rows.jsonl" if lines else "file.json")
    path.write_text(f"{GOOD_LINE}\n{text}\n" if lines else text)
    with pytest.raises(LikraError, match=r"^" + str(path) + (":2: " if lines else ": ")) as found:
        list(read_jsonl(path)) if lines else read_json(path)
    assert fragment in str(found.value)


GOOD_LINE = json.dumps(QUESTION)


def test_a_question_or_an_answer_no_tokenizer_encodes_is_refused_before_the_model_loads(tmp_path):
    questions = write(tmp_path / "q.jsonl", [QUESTION, {**QUESTION, "id": "q2", "choices": ["a", "b\ud800"]}], True)
    with pytest.raises(LikraError, match=rf"{questions}:2: choices\[1\]: text with a lone surrogate"):
        load_items(f"jsonl:{questions}")
    rows = write(tmp_path / "rows.jsonl", [SCORE_ROW, {**SCORE_ROW, "id": "a2", "answer": "\udc00"}], True)
    with pytest.raises(LikraError, match=rf"{rows}:2: answer: text with a lone surrogate"):
        check_rows(rows)


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("calibration.json", {**CALIBRATION, "params": {}}, "params: platt calibration needs coef and intercept"),
        ("calibration.json", {**CALIBRATION, "method": "isotonic", "params": {"x": [1.0], "y": []}}, "isotonic"),
        ("calibration.json", {**CALIBRATION, "neg_weight": "one"}, "neg_weight: input should be a valid number"),
        ("likra.json", {**MANIFEST, "examples_seen": "four"}, "examples_seen: input should be a valid integer"),
        ("curve.json", {"rows": "abc"}, "rows: input should be a valid list"),
        ("curve.json", {"rows": [{}]}, "rows[0].task: field required"),
        ("curve.json", {}, "rows: field required"),
        ("sweep.json", {"rows": [{"mode": "likra", "acc_norm": 0.5}]}, "rows[0].neg_weight: field required"),
        ("mass.json", {}, "rows: field required"),
        ("grid.json", {**SUMMARIES["grid.json"], "mean_acc_norm": [[0.1]]}, "mean_acc_norm should be 2 rows"),
        ("scores/arc_challenge-test/eval.json", {}, "task: field required"),
        ("commands.jsonl", [{"command": "likra x"}], ":1: finished: field required"),
    ],
)
def test_stored_files_of_the_wrong_shape_are_one_line_naming_file_and_field(tmp_path, name, value, fragment):
    reader = dict((r[1], r[0]) for r in READERS)[name]
    found = outcome(reader, write(tmp_path / name, value, name.endswith(".jsonl")))
    assert isinstance(found, LikraError) and str(found).startswith(str(tmp_path / name))
    assert fragment in str(found)


def test_a_curve_folder_whose_eval_json_is_cut_short_is_named(tmp_path):
    from likra.configs import GridConfig
    from likra.experiments.grid import find_scores

    (tmp_path / "scores" / "arc_challenge-test").mkdir(parents=True)
    cut = tmp_path / "scores" / "arc_challenge-test" / "eval.json"
    for text, fragment in (('{"task": "arc_chall', "malformed JSON"), ("{}", "task: field required")):
        cut.write_text(text)
        with pytest.raises(LikraError, match=f"^{cut}: .*{fragment}"):
            find_scores(tmp_path, GridConfig())


def test_a_report_page_in_the_way_is_refused_and_an_empty_summary_says_so(tmp_path):
    write(tmp_path / "sweep" / "sweep.json", {"rows": []})
    (tmp_path / "report.html").mkdir()
    with pytest.raises(LikraError, match=r"report\.html: is a folder"):
        write_report(tmp_path)
    (tmp_path / "report.html").rmdir()
    page, markdown = write_report(tmp_path)
    assert "sweep.json holds no results yet" in markdown.read_text()
    assert "sweep.json holds no results yet" in page.read_text()


def test_a_half_written_log_line_does_not_stop_a_resume(tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_text('{"examples": 4}\n{"examples": 8}\n{"examples": 12}\n{"exam')
    truncate_log(log, 8)
    assert log.read_text() == '{"examples": 4}\n{"examples": 8}\n'


# --- properties ---------------------------------------------------------------------------------------

HUGE = "<an integer of 5000 digits>"  # drawn as this text (Hypothesis cannot print such an int), written as digits
TEXT = st.one_of(st.text(max_size=8), st.sampled_from(["\ud800", "a\udfffb", "", " ", "NaN", HUGE]))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                    max_leaves=8)  # fmt: skip


def paths(value: Any, at: tuple = ()) -> list[tuple]:
    """Every place in ``value`` (dict keys and list indices down to the leaves)."""
    found = [at]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += paths(item, (*at, i))
    return found


def broken(valid: Any, where: tuple, new: Any, drop: bool) -> Any:
    """``valid`` with the value at ``where`` replaced by ``new`` (or, in a dict, dropped)."""
    if not where:
        return new
    copy = json.loads(json.dumps(valid))
    parent = copy
    for key in where[:-1]:
        parent = parent[key]
    if drop and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = new
    return copy


def dumped(value: Any) -> str:
    """JSON text, ``NaN`` and integers of 5000 digits included (as files on disk can hold them)."""
    return json.dumps(value).replace(json.dumps(HUGE), "7" * 5000)


PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize(("reader", "name", "valid", "lines"), READERS, ids=IDS)
@PROPERTY
@given(data=st.binary(max_size=64))
def test_arbitrary_bytes_give_a_parse_or_a_likra_error(tmp_path_factory, reader, name, valid, lines, data):
    path = tmp_path_factory.mktemp("bytes") / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    outcome(reader, path)


@pytest.mark.parametrize(("reader", "name", "valid", "lines"), READERS, ids=IDS)
@PROPERTY
@given(data=st.data())
def test_arbitrary_json_and_valid_files_with_a_field_broken(tmp_path_factory, reader, name, valid, lines, data):
    value = data.draw(st.one_of(JSON, st.sampled_from(paths(valid)).flatmap(
        lambda where: st.tuples(JSON, st.booleans()).map(lambda nd: broken(valid, where, *nd)))))  # fmt: skip
    path = tmp_path_factory.mktemp("json") / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if lines and isinstance(value, list):
        path.write_text("".join(dumped(v) + "\n" for v in value))
    else:
        path.write_text(dumped(value))
    outcome(reader, path)


def test_nan_metrics_are_read(tmp_path):
    """A metric undefined on its set (hard AUROC with no hard pair) is stored as NaN, read back and shown."""
    rows = [{**CURVE["rows"][0], "auroc": math.nan, "hard_auroc": math.nan, "acc_at_50": 0.5}]
    write(tmp_path / "curve.json", {"rows": rows})
    (tmp_path / "verifier.png").write_bytes(b"")
    assert "nan" in write_report(tmp_path)[1].read_text()
