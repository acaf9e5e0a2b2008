"""The agent loop: the model writes a turn, the first ``Action:`` in it runs a tool, the result comes back as an
``Observation:``; at most ``max_steps`` turns, asked (by the template's positive prefix) for a successful
trajectory. All open episodes advance together, one batched generation per step.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from likra.nat.checkers import check, normalize_answer
from likra.nat.tasks import AgentTask, Problem
from likra.nat.templates import chat_text, first_message
from likra.nat.tools import ToolError
from likra.nat.trajectories import Trajectory, Turn, parse_action

Conversation = list[dict[str, str]]


class Generator(Protocol):
    """Writes the next agent turn of each conversation."""

    def __call__(self, conversations: Sequence[Conversation], temperature: float, seed: int) -> list[str]: ...


COMPLETE_ACTION = re.compile(r"Action\s*:\s*\w+\s*\[[^\n]*\]")


def cut_turn(text: str) -> str:
    """The agent's turn up to the end of its first action line (whatever it imagines after that, such as an
    observation of its own, is dropped)."""
    match = COMPLETE_ACTION.search(text)
    if match is not None:
        line_end = text.find("\n", match.end())
        text = text if line_end < 0 else text[:line_end]
    return text.split("Observation:", 1)[0].strip()


@dataclass
class _Episode:
    problem: Problem
    prompt: str  # the first message: instruction, solved examples, prefix, question
    turns: list[Turn]
    prediction: str | None = None
    stop: str | None = None  # "finish" or "max_steps"
    tool_errors: int = 0
    invalid_actions: int = 0


def run_agent(
    generate: Generator,
    problems: Sequence[Problem],
    task: AgentTask,
    tools: dict[str, Callable[[str], str]],
    template: str = "negative-aware",
    max_steps: int = 8,
    temperature: float = 0.0,
    seed: int = 1234,
    demos: Callable[[Problem], Sequence[str]] | None = None,
) -> list[Trajectory]:
    """Run one episode per problem and check its answer. Each trajectory's ``meta`` holds ``steps``,
    ``tool_errors``, ``invalid_actions``, ``stop``, ``temperature``; every agent turn is flagged for loss, so the
    result can be training data as it is. ``demos`` gives each problem's solved examples for the prompt."""
    episodes = [
        _Episode(p, first_message(p.question, task.tool, task.checker, template, demos=demos(p) if demos else ()), [])
        for p in problems
    ]
    known = ", ".join(f"{name}[...]" for name in [*tools, "finish"])
    for step in range(max_steps):
        open_ = [e for e in episodes if e.stop is None]
        if not open_:
            break
        conversations = [
            [{"role": "user", "content": e.prompt}] + [{"role": t.role, "content": t.content} for t in e.turns]
            for e in open_
        ]
        replies = generate(conversations, temperature, seed + step)
        for episode, reply in zip(open_, replies, strict=True):
            _act(episode, cut_turn(reply), tools, known)
            if step == max_steps - 1 and episode.stop is None:
                episode.stop = "max_steps"
    return [_checked(e, task, temperature) for e in episodes]


def _act(episode: _Episode, text: str, tools: dict[str, Callable[[str], str]], known: str) -> None:
    """The agent's turn ``text``, then what it observes: the episode finished, a tool's answer or error, or an
    invalid action."""
    episode.turns.append(Turn("assistant", text, True))
    action = parse_action(text)
    if action is not None and action[0] == "finish":
        episode.prediction, episode.stop = action[1], "finish"
        episode.turns.append(Turn("user", "Observation: Episode finished", False))
        return
    if action is None or action[0] not in tools:
        episode.invalid_actions += 1
        what = "no action" if action is None else f"unknown action '{action[0]}'"
        observation = f"Invalid action ({what}): write one Action: {known}"
    else:
        try:
            observation = tools[action[0]](action[1])
        except ToolError as err:
            episode.tool_errors += 1
            observation = f"{action[0]} error: {err}"
    episode.turns.append(Turn("user", f"Observation: {observation}", False))


def _checked(e: _Episode, task: AgentTask, temperature: float) -> Trajectory:
    """A finished episode as a trajectory, its answer checked."""
    verdict = check(task.checker, e.prediction, e.problem.answer)
    meta = {
        "steps": sum(t.role == "assistant" for t in e.turns),
        "tool_errors": e.tool_errors,
        "invalid_actions": e.invalid_actions,
        "stop": e.stop or "max_steps",
        "temperature": temperature,
    }
    return Trajectory(e.problem.id, e.problem.question, e.turns, verdict.correct, verdict.score, e.problem.answer,
                      e.prediction, meta)  # fmt: skip


def summarize(trajectories: Sequence[Trajectory]) -> dict[str, Any]:
    """Accuracy, mean score, mean steps, the share of actions that failed (tool errors and invalid actions), the
    share of episodes that finished; and two guards against a degenerate agent: the share of finished episodes
    giving the most common answer, and the accuracy of always giving the most common gold answer."""
    n = len(trajectories)
    steps = sum(t.meta.get("steps", 0) for t in trajectories)
    failed = sum(t.meta.get("tool_errors", 0) + t.meta.get("invalid_actions", 0) for t in trajectories)
    given = Counter(normalize_answer(t.prediction) for t in trajectories if t.prediction is not None)
    gold = Counter(normalize_answer(t.answer) for t in trajectories)
    return {
        "n": n,
        "accuracy": sum(t.reward for t in trajectories) / n if n else 0.0,
        "score": sum(t.score for t in trajectories) / n if n else 0.0,
        "mean_steps": steps / n if n else 0.0,
        "tool_error_rate": failed / steps if steps else 0.0,
        "finished": sum(t.meta.get("stop") == "finish" for t in trajectories) / n if n else 0.0,
        "top_answer_share": given.most_common(1)[0][1] / given.total() if given else 0.0,
        "majority_baseline": gold.most_common(1)[0][1] / n if n else 0.0,
    }


class HFGenerator:
    """Batched generation with a transformers model: left padding, prompts sorted by length, each row stopping at
    its end-of-turn token or once it has written a complete action line."""

    def __init__(self, model: Any, tokenizer: Any, max_new_tokens: int = 160, batch_size: int = 16):
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size

    def __call__(self, conversations: Sequence[Conversation], temperature: float, seed: int) -> list[str]:
        import torch

        texts = [chat_text(self.tokenizer, c, generation_prompt=True) for c in conversations]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        replies: list[str] = [""] * len(texts)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + start)
                outputs = self._generate([texts[i] for i in chunk], temperature)
            for i, reply in zip(chunk, outputs, strict=True):
                replies[i] = reply
        return replies

    def _generate(self, texts: list[str], temperature: float) -> list[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        tok = self.tokenizer
        side, tok.padding_side = tok.padding_side, "left"
        try:
            batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        finally:
            tok.padding_side = side
        width = batch["input_ids"].shape[1]

        class ActionWritten(StoppingCriteria):  # per row: done once a whole action line is out
            def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
                new = tok.batch_decode(input_ids[:, width:], skip_special_tokens=True)
                done = [COMPLETE_ACTION.search(t) is not None or "Observation:" in t for t in new]
                return torch.tensor(done, device=input_ids.device)

        sampling = (
            {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
            if temperature > 0
            else {"do_sample": False}
        )
        with torch.inference_mode():
            out = self.model.generate(
                **batch,
                max_new_tokens=self.max_new_tokens,
                stopping_criteria=StoppingCriteriaList([ActionWritten()]),
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                **sampling,
            )
        return tok.batch_decode(out[:, width:], skip_special_tokens=True)
