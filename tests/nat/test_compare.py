"""likra.nat.compare: agents side by side."""

from __future__ import annotations

from pathlib import Path

import pytest

from likra.errors import LikraError
from likra.nat.trajectories import write_trajectories

from ..test_cli import assert_one_line_error, likra
from .helpers import trajectory


def test_compare_tests_agents_on_the_same_problems(tmp_path):
    from dataclasses import replace

    from likra.nat.compare import compare_evals, run_name

    def agent(folder: str, rewards: list[bool], predictions: list[str]) -> str:
        done = {"steps": 2, "stop": "finish"}
        runs = [
            replace(trajectory(r, answer=a), id=f"q{i}", answer="no" if i % 4 else "yes", meta=done)
            for i, (r, a) in enumerate(zip(rewards, predictions, strict=True))
        ]
        write_trajectories(tmp_path / folder / "eval" / "items.jsonl", runs)
        return str(tmp_path / folder / "eval")

    first = agent("pos-only", [False] * 12, ["No"] * 8 + ["Yes"] * 4)
    second = agent("nat", [True] * 10 + [False] * 2, ["No."] * 12)
    rows = compare_evals([first, second])
    assert [r["run"] for r in rows] == ["pos-only", "nat"]
    assert run_name(Path("out/gsm8k/nat/eval-multiarith")) == "nat" and run_name(Path("out/evals/nat")) == "nat"
    assert rows[0]["p_vs_first"] == 1.0 and rows[1]["p_vs_first"] == pytest.approx(2 / 2**10)
    assert rows[0]["top_answer_share"] == pytest.approx(8 / 12) and rows[1]["top_answer_share"] == 1.0  # "No." = "no"
    assert rows[1]["majority_baseline"] == pytest.approx(9 / 12)
    other = tmp_path / "other" / "items.jsonl"
    write_trajectories(other, [replace(trajectory(), id="elsewhere")])
    with pytest.raises(LikraError, match="scored other problems"):
        compare_evals([first, str(other.parent)])
    assert_one_line_error(likra("nat", "compare", first, str(tmp_path / "missing")), "missing: no items.jsonl")
    done = likra("nat", "compare", first, second, "--csv", str(tmp_path / "t.csv"))
    assert done.returncode == 0 and "always the most common gold answer: 0.7500" in done.stdout
    assert (tmp_path / "t.csv").read_text().splitlines()[2].startswith("nat,12,0.8333")
