"""likra.nat.agent: the loop, turns, generation."""

from __future__ import annotations

from likra.nat.agent import HFGenerator, cut_turn, run_agent, summarize
from likra.nat.tasks import Problem, get_agent_task
from likra.nat.templates import POSITIVE
from likra.nat.tools import calculate

from .helpers import Scripted


def test_cut_turn_drops_what_follows_the_first_action_line():
    assert cut_turn("Thought: a\nAction: search[b]\nObservation: made up\nAction: finish[c]") == (
        "Thought: a\nAction: search[b]"
    )
    assert cut_turn("Thought: no action yet Observation: x") == "Thought: no action yet"


def test_agent_loop_runs_tools_and_turns_their_errors_into_observations():
    task = get_agent_task("gsm8k")
    problems = [Problem("a", "What is 6 times 7?", "42"), Problem("b", "What is 2 plus 2?", "4")]
    model = Scripted(
        lambda c: "Thought: multiply.\nAction: calculator[__import__('os')]\nObservation: invented",
        lambda c: "Action: calculator[6*7]",
        lambda c: "I think I know.",  # no action
        lambda c: "Action: finish[42]" if "6 times" in c[0]["content"] else "Action: finish[5]",
    )
    found = run_agent(model, problems, task, {"calculator": calculate}, "negative-aware", max_steps=6)
    a, b = found
    assert a.turns[0].content == "Thought: multiply.\nAction: calculator[__import__('os')]"
    assert (
        a.turns[1].content == "Observation: calculator error: only numbers, + - * / // % ** and parentheses are allowed"
    )
    assert a.turns[3].content == "Observation: 42"
    assert a.turns[5].content.startswith("Observation: Invalid action (no action)")
    assert a.prediction == "42" and a.reward and a.score == 1.0
    assert b.prediction == "5" and not b.reward
    assert a.meta == {"steps": 4, "tool_errors": 1, "invalid_actions": 1, "stop": "finish", "temperature": 0.0}
    assert all(t.loss == (t.role == "assistant") for t in a.turns)
    assert POSITIVE in model.calls[0][0][0]["content"]  # asked for a successful trajectory
    metrics = summarize(found)
    assert metrics["accuracy"] == 0.5 and metrics["mean_steps"] == 4 and metrics["tool_error_rate"] == 0.5
    assert metrics["finished"] == 1.0


def test_agent_loop_stops_after_max_steps():
    task = get_agent_task("strategyqa")
    model = Scripted(*[lambda c: "Action: search[ice]"] * 3)
    [t] = run_agent(model, [Problem("a", "Is ice cold?", "yes")], task, {"search": lambda q: "#1: cold"}, max_steps=3)
    assert t.meta["stop"] == "max_steps" and t.prediction is None and not t.reward and t.meta["steps"] == 3
    assert len(model.calls) == 3


def test_generation_on_the_tiny_model(tokenizer, tiny_model):
    generate = HFGenerator(tiny_model, tokenizer, max_new_tokens=5, batch_size=2)
    conversations = [[{"role": "user", "content": "Q" * n}] for n in (1, 30, 7)]
    first = generate(conversations, 0.0, 1)
    assert len(first) == 3 and first == generate(conversations, 0.0, 1)  # greedy is repeatable
    assert first[0] == generate(conversations[:1], 0.0, 1)[0]  # left padding does not change the answer
    sampled = generate(conversations, 1.0, 2)
    assert sampled == generate(conversations, 1.0, 2) and sampled != first  # seeded sampling
