"""likra.nat.demos: reference solutions as trajectories."""

from __future__ import annotations

import pytest

from likra.errors import LikraError
from likra.models import LoadedModel
from likra.nat.agent import run_agent
from likra.nat.tasks import get_agent_task, load_problems
from likra.nat.tools import calculate
from likra.nat.trajectories import read_trajectories

from ..conftest import tiny_llama
from ..test_cli import assert_one_line_error, likra
from .helpers import Scripted


def test_gsm8k_solutions_become_calculator_episodes(data_dir):
    from likra.nat.demos import demo_picker, demonstration, gsm8k_gold

    problem = load_problems("gsm8k", "train", data_dir)[0]
    gold = gsm8k_gold(problem)
    assert [t.content for t in gold.turns] == [
        "Thought: Natalia sold 48/2 = 24 clips in May.\nAction: calculator[48/2]",
        "Observation: 24",
        "Thought: Natalia sold 48+24 = 72 clips altogether in April and May.\nAction: calculator[48+24]",
        "Observation: 72",
        "Action: finish[72]",
    ]
    assert demonstration(gold).startswith("Question: Natalia sold clips")
    pick = demo_picker(get_agent_task("gsm8k"), 2, seed=1, data_dir=str(data_dir))
    shown = pick(problem)
    assert (
        len(shown) == 2
        and shown == pick(problem)
        and all(not s.startswith(f"Question: {problem.question}") for s in shown)
    )
    model = Scripted(lambda c: "Action: finish[72]")
    run_agent(model, [problem], get_agent_task("gsm8k"), {"calculator": calculate}, demos=pick)
    assert "Solved examples:" in model.calls[0][0][0]["content"] and shown[0] in model.calls[0][0][0]["content"]
    with pytest.raises(LikraError, match="--shots 2: task strategyqa has no built-in examples"):
        demo_picker(get_agent_task("strategyqa"), 2, seed=1, data_dir=str(data_dir))


def test_gold_episodes_teach_an_agent_that_then_collects_elsewhere(tmp_path, tokenizer, tiny_model_dir, data_dir):
    """The bootstrap for a model that cannot follow the action format: reference solutions → a first agent →
    collection (with that agent's prompt) on other questions."""
    from likra.nat.runs import CollectConfig, collect
    from likra.nat.training import NATConfig, train_agent

    gold = tmp_path / "gold.jsonl"
    done = likra("nat", "gold", "--out", str(gold), "--limit", "6", data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    episodes = read_trajectories(gold)
    assert len(episodes) == 6 and all(t.reward for t in episodes)
    assert episodes[0].turns[0].content.startswith("Thought: Natalia sold 48/2")
    config = NATConfig(task="gsm8k", pos=[str(gold)], template="none", data_dir=str(data_dir), max_length=256)
    loaded = LoadedModel(tiny_llama(len(tokenizer)), tokenizer, "tiny", str(tiny_model_dir), "cpu", "float32")
    train_agent(loaded, config, tmp_path / "warm")
    config = CollectConfig(checkpoint=str(tmp_path / "warm"), skip=[str(gold)], limit=3, temperatures=[0.0],
                           max_steps=1, max_new_tokens=4, data_dir=str(data_dir))  # fmt: skip
    summary = collect(config, tmp_path / "c")
    found = read_trajectories(tmp_path / "c" / "negative.jsonl")  # a random model solves nothing
    assert summary["template"] == "none" and summary["checkpoint"] == str(tmp_path / "warm" / "step-6")
    assert len(found) == 3 and not {t.question for t in found} & {t.question for t in episodes}
    assert_one_line_error(likra("nat", "gold", "--out", str(gold), "--task", "strategyqa"), "--task strategyqa")
