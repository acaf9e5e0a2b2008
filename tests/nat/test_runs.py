"""likra.nat.runs: agent evaluation and collection, resumable, and the CLI's errors."""

from __future__ import annotations

import pytest

from likra.errors import LikraError
from likra.nat.runs import AgentEvalConfig, claim_folder, evaluate_agent, run_chunks
from likra.nat.tasks import Problem
from likra.nat.trajectories import Trajectory, read_trajectories

from ..test_cli import assert_one_line_error, likra, likra_here


def test_run_chunks_skips_finished_chunks(tmp_path):
    problems = [Problem(str(i), f"q{i}", "1") for i in range(5)]
    calls = []

    def run(part):
        calls.append([p.id for p in part])
        return [Trajectory(p.id, p.question, [], False, 0.0) for p in part]

    first = run_chunks(problems, tmp_path, run, chunk=2)
    assert calls == [["0", "1"], ["2", "3"], ["4"]]
    (tmp_path / "part-00002.jsonl").unlink()  # as if killed during the second chunk
    assert run_chunks(problems, tmp_path, run, chunk=2) == first
    assert calls[3:] == [["2", "3"]]


def test_a_folder_refuses_a_run_with_other_options(tmp_path):
    claim_folder(tmp_path, {"task": "gsm8k", "limit": 5})
    claim_folder(tmp_path, {"task": "gsm8k", "limit": 10})  # a longer run of the same evaluation resumes
    with pytest.raises(LikraError, match="holds a run with other options \\(task\\)"):
        claim_folder(tmp_path, {"task": "svamp", "limit": 5})


def test_agent_evaluation_end_to_end_and_resumed(tmp_path, tiny_model_dir, data_dir):
    config = AgentEvalConfig(
        task="gsm8k", model=str(tiny_model_dir), limit=3, max_steps=2, max_new_tokens=6, data_dir=str(data_dir)
    )
    results = evaluate_agent(config, tmp_path / "eval")
    items = read_trajectories(tmp_path / "eval" / "items.jsonl")
    assert results["metrics"]["n"] == 3 and len(items) == 3 and results["template"] == "negative-aware"
    assert all(t.meta["steps"] >= 1 for t in items)
    again = evaluate_agent(config, tmp_path / "eval")
    assert again["metrics"] == results["metrics"]


def test_nat_cli_errors(tmp_path, data_dir, release_sample):
    pos, neg = release_sample
    out = str(tmp_path / "run")
    assert_one_line_error(
        likra("nat", "train", "--out", out, "--pos", str(pos), "--template", "maybe"), "--template maybe"
    )
    assert_one_line_error(
        likra_here("nat", "train", "--out", out, "--pos", str(pos), "--neg-num", "3", data_dir=data_dir), "--neg-num 3"
    )
    assert_one_line_error(
        likra_here("nat", "train", "--out", out, "--pos", str(neg), data_dir=data_dir), "are failed", str(neg)
    )
    assert_one_line_error(likra_here("nat", "eval", "--out", out, "--task", "chess", data_dir=data_dir), "--task chess")
    assert_one_line_error(likra("nat", "collect", "--out", out, "--temperatures", "hot"), "--temperatures hot")
    assert_one_line_error(
        likra_here(
            "nat", "eval", "--out", out, "--task", "hotpotqa", "--corpus", str(tmp_path / "none.txt"), data_dir=data_dir
        ),
        "none.txt",
    )


def test_collect_writes_checked_trajectories_per_temperature(tmp_path, tiny_model_dir, data_dir):
    from likra.nat.runs import CollectConfig, collect

    config = CollectConfig(
        model=str(tiny_model_dir), limit=2, temperatures=[0.0, 1.0], shots=1, max_steps=1, max_new_tokens=4,
        data_dir=str(data_dir),
    )  # fmt: skip
    summary = collect(config, tmp_path / "c")
    found = read_trajectories(tmp_path / "c" / "negative.jsonl")  # a random model solves nothing
    assert summary["problems"] == 2 and summary["negatives"] == 4 and summary["positives"] == 0
    assert sorted(t.meta["temperature"] for t in found) == [0.0, 0.0, 1.0, 1.0]
    assert (tmp_path / "c" / "positive.jsonl").read_text() == ""
    assert set(summary["per_temperature"]) == {"0", "1"}
