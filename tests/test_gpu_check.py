"""``benchmarks/gpu_check.py --dry-run``: the GPU check's every step, with small shapes on the CPU, so the script
that runs whenever a GPU is at hand works when one is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_every_step_on_the_cpu(tmp_path, data_dir):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "LIKRA_DATA_DIR": str(data_dir)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu_check.py"), "--dry-run", "--json", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    steps = json.loads(out.read_text())["steps"]
    assert list(steps) == ["env", "device_tests", "tiny_vs_cpu", "train_resume", "big_scoring", "big_training",
                           "estimate"]  # fmt: skip
    assert all(step["ok"] for step in steps.values()), steps
    assert steps["device_tests"]["returncode"] == 0
    assert steps["tiny_vs_cpu"]["float32_within_1e-4"] and steps["train_resume"]["within_1e-4"]
    capped = steps["big_scoring"]["runs"][-1]
    assert capped["backed_off"] >= 1 and capped["batch_tokens_end"] < capped["batch_tokens_start"]
    assert {(r["batch"], r["gradient_checkpointing"]) for r in steps["big_training"]["runs"]} == {
        (8, False), (8, True), (32, False), (32, True)}
    assert steps["estimate"]["total_s"] > 0 and steps["estimate"]["from_dry_run"]
    assert done.stdout.count("out of memory at") == 0  # said on stderr, once
    assert done.stderr.count("likra: out of memory at") == 1
