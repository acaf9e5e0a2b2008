"""likra.nat.trajectories: the NAT release and our JSONL, actions."""

from __future__ import annotations

import json

import pytest

from likra.errors import LikraError
from likra.nat.tasks import get_agent_task, load_problems
from likra.nat.trajectories import parse_action, read_trajectories, write_trajectories

from .helpers import STRATEGYQA, trajectory


@pytest.mark.parametrize(
    "text, action",
    [
        ("Thought: hm.\nAction: search[Genghis Khan]", ("search", "Genghis Khan")),
        ("Action: calculator[(2+3)*[4]]\nObservation: 20", ("calculator", "(2+3)*[4]")),
        ("Action: finish[Yes]\nAction: search[x]", ("finish", "Yes")),
        ("Action:Finish[ no ]", ("finish", "no")),
        ("Thought: I am not sure.", None),
        ("Action: search Genghis", None),
    ],
)
def test_parse_action(text, action):
    assert parse_action(text) == action


def test_nat_release_joins_questions_by_id(data_dir):
    task = get_agent_task("strategyqa")
    train = load_problems(task, "train", data_dir)
    pos = read_trajectories(data_dir / STRATEGYQA / "strategyqa_gpt-3.5_positive.json", train)
    neg = read_trajectories(data_dir / STRATEGYQA / "strategyqa_gpt-3.5_negative.json", train)
    assert (len(pos), len(neg)) == (1070, 1263)
    assert all(t.reward for t in pos) and not any(t.reward for t in neg)
    by_id = {p.id: p for p in train}
    first = pos[0]
    assert first.question == by_id[first.id].question and first.answer in ("yes", "no")
    assert first.turns[0].role == "assistant" and first.turns[0].loss and not first.turns[1].loss
    assert first.prediction == "Yes" and first.meta["source"] == "0.5"
    assert sum(not t.turns for t in neg) == 7  # the release has 7 empty negatives; kept, never trained on


def test_trajectory_files_round_trip_and_bad_rows_are_named(tmp_path, data_dir):
    path = tmp_path / "t.jsonl"
    write_trajectories(path, [trajectory(), trajectory(False, answer="No")])
    back = read_trajectories(path)
    assert back == [trajectory(), trajectory(False, answer="No")]
    path.write_text(path.read_text() + '{"id": 1, "question": "q", "reward": true, "turns": [{"role": "bot"}]}\n')
    with pytest.raises(LikraError, match=r"t.jsonl: line 3: turn 0: missing field 'content'"):
        read_trajectories(path)
    bad = tmp_path / "release.json"
    bad.write_text(json.dumps([{"id": "nope", "conversations": [], "info": {"reward": True}}]))
    train = load_problems("strategyqa", "train", data_dir)
    with pytest.raises(LikraError, match=r"release.json: row 1: id nope is not in the task's problems"):
        read_trajectories(bad, train)
    bad.write_text("[{")
    with pytest.raises(LikraError, match=r"release\.json: malformed JSON"):
        read_trajectories(bad, train)
