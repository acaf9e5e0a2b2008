"""``accelerate launch`` with 2 CPU processes (gloo): the same checkpoints and the same metrics as one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from .test_cli import likra


def launch(*args: str, data_dir) -> subprocess.CompletedProcess:
    """``accelerate launch --multi_gpu --num_processes 2 -m likra ARGS`` (``--multi_gpu`` starts the processes;
    without GPUs they join a gloo group on the CPU)."""
    with socket.socket() as probe:  # a free port, so parallel test runs do not collide
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--multi_gpu"]
    command += ["--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += ["--main_process_port", str(port), "-m", "likra", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LIKRA_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def adapters(run) -> dict[str, torch.Tensor]:
    weights = {}
    for head in ("positive", "negative"):
        for name, value in load_file(str(run / "step-16" / head / "adapter_model.safetensors")).items():
            weights[f"{head}/{name}"] = value
    return weights


def test_two_processes_train_and_evaluate_as_one(tmp_path, tiny_model_dir, data_dir):
    model = ["--model", str(tiny_model_dir)]
    one, two = tmp_path / "one", tmp_path / "two"
    result = likra(
        "train", *model, "--n", "16", "--lr", "1e-2", "--batch-size", "4", "--out", str(one), data_dir=data_dir
    )
    assert result.returncode == 0, result.stderr
    result = launch(
        "train", *model, "--n", "16", "--lr", "1e-2", "--batch-size", "4", "--out", str(two), data_dir=data_dir
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("trained in") == 1  # one process speaks
    # checkpoints count the examples both processes saw together, as one process counts them
    steps = sorted(p.name for p in two.glob("step-*"))
    assert steps == sorted(p.name for p in one.glob("step-*")) == ["step-16", "step-8"]
    for name in steps:
        a, b = (json.loads((run / name / "likra.json").read_text()) for run in (one, two))
        assert a["examples_seen"] == b["examples_seen"] and a["steps"] == b["steps"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    a, b = adapters(one), adapters(two)
    assert a.keys() == b.keys()
    # the same updates up to float summation order (Adam amplifies it a little on near-zero gradients)
    assert all((a[k] - b[k]).norm() <= 1e-3 * a[k].norm() for k in a)
    assert any(b[k].abs().max() > 1e-3 for k in b if "lora_B" in k)  # trained, not the zero initialisation
    log = (two / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["examples"] for line in log] == [4, 8, 12, 16]  # written once

    # evaluation: each process scores half of the questions, the gathered items are in the file's order
    outputs = {}
    for name, run in (("one", likra), ("two", launch)):
        out, items = tmp_path / f"{name}.json", tmp_path / f"{name}.items.jsonl"
        args = ["eval", *model, "--checkpoint", str(one), "--limit", "21", "--out", str(out), "--items-out", str(items)]
        result = run(*args, data_dir=data_dir)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[name] = json.loads(out.read_text()), [json.loads(line) for line in items.read_text().splitlines()]
    (r1, i1), (r2, i2) = outputs["one"], outputs["two"]
    assert r1["n"] == r2["n"] == 21 and r1["modes"] == r2["modes"] and r1["metrics"] == r2["metrics"]
    assert [i["id"] for i in i1] == [i["id"] for i in i2]
    for x, y in zip(i1, i2, strict=True):
        assert x["heads"]["positive"] == pytest.approx(y["heads"]["positive"], abs=1e-4)
