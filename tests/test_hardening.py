"""A user's mistakes and faults at the command line (issue 18): one line naming the file or option, exit 2, no
traceback, nothing lost; one writer per run folder."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys

import pytest

from .conftest import copy_run
from .test_cli import GOOD, assert_one_line_error, likra, likra_here


def eval_args(tiny_model_dir, data_file, *more):
    return ("eval", "--model", str(tiny_model_dir), "--task", f"jsonl:{data_file}", *more)


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.jsonl"
    path.write_text(GOOD + "\n" + GOOD.replace("bees", "wasps") + "\n")
    return path


def test_data_files_invalid_utf8_bom_duplicate_ids_and_empty_choices(tmp_path, tiny_model_dir, data_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(GOOD.encode() + b'\n{"question": "caf\xe9", "choices": ["a", "b"], "answer": 0}\n')
    assert_one_line_error(likra(*eval_args(tiny_model_dir, bad)), f"{bad}:2: not UTF-8")
    pool = tmp_path / "pool.jsonl"
    pool.write_bytes(b'{"question": "caf\xe9"}\n')
    train = ("train", "--model", str(tiny_model_dir), "--task", "arc_challenge", "--n", "4")
    result = likra_here(*train, "--train-file", str(pool), "--out", str(tmp_path / "r"), data_dir=data_dir)
    assert_one_line_error(result, f"{pool}:1: not UTF-8")
    for name in ("pos.jsonl", "pos.json"):  # NAT trajectories, in likra's format and in the NAT release's
        trajectories = tmp_path / name
        trajectories.write_bytes(b'[{"id": "caf\xe9"}]' if name.endswith(".json") else b'{"id": "caf\xe9"}\n')
        nat = ("nat", "train", "--model", str(tiny_model_dir), "--task", "strategyqa", "--pos", str(trajectories))
        result = likra_here(*nat, "--out", str(tmp_path / "nat"), data_dir=data_dir)
        assert_one_line_error(result, f"{trajectories}:1: not UTF-8")
    assert not (tmp_path / "nat").exists()
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + GOOD.encode() + b"\n")
    result = likra_here(*eval_args(tiny_model_dir, bom))
    assert result.returncode == 0, result.stderr  # files saved on Windows: the byte-order mark is dropped
    dup = tmp_path / "dup.jsonl"
    row = '{"id": "x", "question": "q?", "choices": ["a", "b"], "answer": 0}'
    dup.write_text(row + "\n" + row.replace("q?", "r?") + "\n")
    assert_one_line_error(likra_here(*eval_args(tiny_model_dir, dup)), f"{dup}:2: id 'x' again (first at {dup}:1)")
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"question": "q?", "choices": ["a", " "], "answer": 0}\n')
    assert_one_line_error(likra_here(*eval_args(tiny_model_dir, empty)), f"{empty}:1: choice 1 is empty")


def test_outputs_are_checked_before_any_work_and_never_overwrite_an_input(tmp_path, tiny_model_dir, good):
    before = good.read_text()
    assert_one_line_error(likra(*eval_args(tiny_model_dir, good, "--items-out", str(good))),
                          "--items-out", "would overwrite the input --task")  # fmt: skip
    assert good.read_text() == before
    same = tmp_path / "same.json"
    assert_one_line_error(likra_here(*eval_args(tiny_model_dir, good, "--out", str(same), "--items-out", str(same))),
                          "--items-out", "the same file as --out")  # fmt: skip
    (tmp_path / "afile").write_text("")
    result = likra_here(*eval_args(tiny_model_dir, good, "--out", str(tmp_path / "afile" / "x.json")))
    assert_one_line_error(result, "--out", "afile is a file")
    assert "scoring" not in result.stdout + result.stderr  # refused before the scoring pass, not after it


def test_models_that_are_not_models(tmp_path, tiny_model_dir, good):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"\x00" * 1000)
    assert_one_line_error(likra(*eval_args(fake, good)), f"--model {fake}: not a GGUF file")
    cut = tmp_path / "cut.gguf"  # a GGUF header cut off in its first key, as a download that stopped
    cut.write_bytes(b"GGUF" + struct.pack("<IQQQ", 3, 0, 2, 20) + b"general.arch")
    assert_one_line_error(likra_here(*eval_args(cut, good)), f"--model {cut}: not a readable GGUF model")
    (tmp_path / "afile").write_text("")
    result = subprocess.run([sys.executable, "-m", "likra", "eval", "--task", f"jsonl:{good}"], capture_output=True,
                            text=True, env={**_env(), "LIKRA_CACHE": str(tmp_path / "afile")})  # fmt: skip
    assert_one_line_error(result, "LIKRA_CACHE", "afile is a file, not a folder")


def _env():
    import os

    return {**os.environ, "HF_HUB_OFFLINE": "1"}


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [("{oops", "malformed JSON"), ("", "malformed JSON (empty)"), ("[]", "got a JSON list"),
     ("drop:base_model", "no 'base_model'")],
)  # fmt: skip
def test_damaged_manifests_are_named(runs, tmp_path, tiny_model_dir, data_dir, good, damage, fragment):
    run = copy_run(runs, tmp_path)
    manifest = run / "step-8" / "likra.json"
    if damage.startswith("drop:"):
        data = json.loads(manifest.read_text())
        del data[damage[5:]]
        damage = json.dumps(data)
    manifest.write_text(damage)
    assert_one_line_error(likra(*eval_args(tiny_model_dir, good, "--checkpoint", str(run))), str(manifest), fragment)
    resume = ("train", "--model", str(tiny_model_dir), "--n", "16", "--save-at", "8,16", "--resume", "--out", str(run))
    assert_one_line_error(likra_here(*resume, data_dir=data_dir), str(manifest), fragment)


def test_damaged_adapters_and_nat_checkpoints_are_named(runs, tmp_path, tiny_model_dir, good):
    run = copy_run(runs, tmp_path)
    weights = run / "step-8" / "positive" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    assert_one_line_error(likra(*eval_args(tiny_model_dir, good, "--checkpoint", str(run))),
                          str(weights), "not a whole safetensors file")  # fmt: skip
    run = copy_run(runs, tmp_path, "pos")
    (run / "step-8" / "positive" / "adapter_config.json").unlink()
    assert_one_line_error(likra_here(*eval_args(tiny_model_dir, good, "--checkpoint", str(run))), "adapter_config.json")
    nat = tmp_path / "nat"
    shutil.copytree(runs / "both", nat)
    manifest = nat / "step-8" / "likra.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format": "likra-nat-checkpoint"}))
    assert_one_line_error(likra_here(*eval_args(tiny_model_dir, good, "--checkpoint", str(nat))), "likra nat eval")


def test_options_refused_before_the_scoring_pass(runs, tiny_model_dir, good):
    result = likra(*eval_args(tiny_model_dir, good, "--checkpoint", str(runs / "pos"), "--mode", "negbase"))
    assert_one_line_error(result, "--mode negbase: needs the negative head", "has positive")
    assert "scoring" not in result.stdout
    for weight in ("nan", "inf"):
        both = str(runs / "both")
        result = likra_here(*eval_args(tiny_model_dir, good, "--checkpoint", both, "--neg-weight", weight))
        assert_one_line_error(result, f"--neg-weight {weight}", "finite")


def test_damaged_items_files_are_named(tmp_path, tiny_model_dir, good):
    items = tmp_path / "items.jsonl"
    assert likra_here(*eval_args(tiny_model_dir, good, "--items-out", str(items))).returncode == 0
    row = json.loads(items.read_text().splitlines()[0])
    cases = {
        "short": ({"loglikelihoods": row["loglikelihoods"][:1]}, "'loglikelihoods' should list 3 numbers"),
        "strings": ({"loglikelihoods": ["x"] * 3}, "'loglikelihoods' holds a value that is not a finite number"),
        "nan": ({"loglikelihoods": [-1.0, float("nan"), -2.0]}, "'loglikelihoods' holds a value that is not a finite"),
        "label": ({"label": 7}, "label 7 is not one of the 3 choices"),
    }
    for name, (change, fragment) in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text(json.dumps({**row, **change}) + "\n")
        run = likra if name == "short" else likra_here  # one in a real process, the others in this one
        assert_one_line_error(run("rescore", str(path)), f"{path}:1: {fragment}")
    bad = tmp_path / "exp"
    bad.mkdir()
    (bad / "sweep.json").write_text("{bad")
    assert_one_line_error(likra_here("report", str(bad)), str(bad / "sweep.json"), "malformed JSON")


HOLD = """
import sys, time
from contextlib import ExitStack
from likra.files import claim
with ExitStack() as stack:
    for folder in sys.argv[1:]:
        stack.enter_context(claim(folder))
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_writer_into_a_run_folder_is_refused(runs, tmp_path, tiny_model_dir, data_dir):
    fresh, with_steps, nat = tmp_path / "fresh", copy_run(runs, tmp_path), tmp_path / "nat"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(fresh), str(with_steps), str(nat)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    model = ("--model", str(tiny_model_dir))
    try:
        assert holder.stdout.readline().strip() == "held"
        for run in (fresh, with_steps):  # in use is said first, before "already holds checkpoints"
            result = likra("train", *model, "--n", "8", "--out", str(run), data_dir=data_dir)
            assert_one_line_error(result, f"--out {run}: in use by process {holder.pid}")
        assert sorted(p.name for p in fresh.iterdir()) == [".likra.lock"]  # nothing written by the refused run
        result = likra("nat", "eval", *model, "--task", "gsm8k", "--limit", "2", "--out", str(nat), data_dir=data_dir)
        assert_one_line_error(result, f"--out {nat}: in use by process {holder.pid}")
        assert sorted(p.name for p in nat.iterdir()) == [".likra.lock"]
    finally:
        holder.kill()
        holder.wait()
    result = likra_here("train", *model, "--n", "8", "--out", str(fresh), data_dir=data_dir)
    assert result.returncode == 0, result.stderr  # the lock of a killed process is taken over
    alone = tmp_path / "alone"
    assert likra_here("train", *model, "--n", "8", "--out", str(alone), data_dir=data_dir).returncode == 0
    for head in ("positive", "negative"):  # the survivor's checkpoint is a lone run's
        survivor, lone = (run / "step-8" / head / "adapter_model.safetensors" for run in (fresh, alone))
        assert survivor.read_bytes() == lone.read_bytes()


def test_two_curve_processes_share_the_pieces_of_one_folder(tmp_path, tiny_model_dir, data_dir):
    """As users with several GPUs run them: each seed's run and each checkpoint's scores done by one process,
    and the curve the same as one process's."""
    common = ["--model", str(tiny_model_dir), "--max-n", "16", "--seeds", "2", "--limit", "4"]
    env = {**_env(), "LIKRA_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "likra", "curve", *common, "--out"]
    pair = [subprocess.Popen([*command, str(tmp_path / "shared")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env) for _ in range(2)]  # fmt: skip
    logs = [p.communicate(timeout=600) for p in pair]
    assert [p.returncode for p in pair] == [0, 0], logs
    alone = subprocess.run([*command, str(tmp_path / "alone")], capture_output=True, text=True, env=env, timeout=600)
    assert alone.returncode == 0, alone.stderr
    said = "".join(out + err for out, err in logs)
    for seed in (1, 2):
        for step in (8, 16):  # each checkpoint scored once, by one of the two
            assert said.count(f"seed-{seed}: scoring step-{step}") == 1, said
    shared, alone = ((tmp_path / f / "curve.csv").read_text() for f in ("shared", "alone"))
    assert shared == alone


FULL_AT_STEP_16 = """
import errno, sys
import safetensors.torch

save_file = safetensors.torch.save_file


def full(tensors, filename, *args, **kwargs):  # the disk fills up while the second checkpoint is written
    if "step-16" in str(filename):
        raise OSError(errno.ENOSPC, "No space left on device")
    return save_file(tensors, filename, *args, **kwargs)


safetensors.torch.save_file = full  # before peft imports it
sys.argv = ["likra", *sys.argv[1:]]
from likra.cli import main
main()
"""


def test_a_full_disk_is_named_leaves_no_temporary_and_resume_is_exact(tmp_path, tiny_model_dir, data_dir):
    run, alone = tmp_path / "run", tmp_path / "alone"
    args = ("train", "--model", str(tiny_model_dir), "--n", "16", "--save-at", "8,16")
    env = {**_env(), "LIKRA_DATA_DIR": str(data_dir)}
    full = subprocess.run([sys.executable, "-c", FULL_AT_STEP_16, *args, "--out", str(run)], capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip
    assert_one_line_error(full, f"{run / 'step-16'}: cannot write (no space left on the device)")
    assert sorted(p.name for p in run.iterdir()) == [".likra.lock", "step-8", "train_log.jsonl"]  # no .step-16.tmp
    assert likra_here(*args, "--out", str(run), "--resume", data_dir=data_dir).returncode == 0
    assert likra_here(*args, "--out", str(alone), data_dir=data_dir).returncode == 0
    for head in ("positive", "negative"):
        resumed, lone = (r / "step-16" / head / "adapter_model.safetensors" for r in (run, alone))
        assert resumed.read_bytes() == lone.read_bytes()


def test_a_question_with_one_choice_is_scored_and_written(tmp_path, tiny_model_dir):
    """Issue 38, root cause 7: `likra eval --items-out` failed after scoring when a question had one choice."""
    data = tmp_path / "one.jsonl"
    data.write_text(GOOD + "\n" + '{"question": "Only one?", "choices": ["yes"], "answer": 0}\n')
    items = tmp_path / "items.jsonl"
    result = likra(*eval_args(tiny_model_dir, data, "--items-out", str(items)))
    assert result.returncode == 0, result.stderr
    assert len(items.read_text().splitlines()) == 2


def test_text_no_tokenizer_encodes_empty_and_duplicate_rows_are_refused_before_the_model_loads(runs, tmp_path):
    """Issue 38, root causes 1 and 8: a lone surrogate reached the tokenizer after the model loaded (TypeError);
    ``likra score`` took an empty file and repeated ids, which ``eval`` refuses."""
    questions = tmp_path / "questions.jsonl"
    questions.write_text(GOOD + "\n" + GOOD.replace("bees", "\\ud800") + "\n")
    result = likra("eval", "--model", "no/such-model", "--task", f"jsonl:{questions}")
    assert_one_line_error(result, f"{questions}:2: question: text with a lone surrogate")
    score = ("score", "--checkpoint", str(runs / "both"), "--model", "no/such-model", "--out", str(tmp_path / "o"))
    cases = {
        "surrogate": ('{"question": "q?", "answer": "\\udc00"}\n', ":1: answer: text with a lone surrogate"),
        "empty": ("\n", ": no rows"),
        "twice": ('{"id": 1, "question": "q?", "answer": "a"}\n{"id": "1", "question": "r?", "answer": "b"}\n',
                  ":2: id '1' again (first at line 1); ids must be unique"),
    }  # fmt: skip
    for name, (text, fragment) in cases.items():
        rows = tmp_path / f"{name}.jsonl"
        rows.write_text(text)
        run = likra if name == "surrogate" else likra_here  # one in a real process, the others in this one
        assert_one_line_error(run(*score, "--input", str(rows)), f"{rows}{fragment}")
    assert not (tmp_path / "o").exists()
