"""Fixtures of the NAT tests."""

from __future__ import annotations

import pytest

from likra.nat.tasks import load_problems
from likra.nat.trajectories import read_trajectories, write_trajectories

from .helpers import STRATEGYQA


@pytest.fixture
def release_sample(tmp_path, data_dir):
    """A few StrategyQA trajectories of the NAT release, in our JSONL format."""
    train = load_problems("strategyqa", "train", data_dir)
    test = {p.question for p in load_problems("strategyqa", "test", data_dir)}
    pos = [
        t
        for t in read_trajectories(data_dir / STRATEGYQA / "strategyqa_gpt-3.5_positive.json", train)
        if t.question not in test
    ][:6]
    neg = [
        t
        for t in read_trajectories(data_dir / STRATEGYQA / "strategyqa_gpt-3.5_negative.json", train)
        if t.question not in test and t.turns
    ][:6]
    write_trajectories(tmp_path / "pos.jsonl", pos)
    write_trajectories(tmp_path / "neg.jsonl", neg)
    return tmp_path / "pos.jsonl", tmp_path / "neg.jsonl"
