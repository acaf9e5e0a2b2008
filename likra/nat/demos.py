"""Solved examples for the prompt (``--shots K``): an untrained small model rarely follows the Thought / Action
format from an instruction alone, so collection (and evaluation, when asked) can show it K solved episodes.

GSM8K's reference solutions carry calculator annotations (``48/2 = <<48/2=24>>24``), which become gold episodes
directly; any task can instead take successful trajectories from a file (``--demos FILE``)."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

from likra.data.items import select_items
from likra.errors import LikraError
from likra.nat.tasks import AgentTask, Problem, get_agent_task, load_problems
from likra.nat.trajectories import Trajectory, Turn, read_trajectories, write_trajectories

ANNOTATION = re.compile(r"<<([^=<>]+)=([^<>]+)>>")


def gsm8k_gold(problem: Problem) -> Trajectory | None:
    """A GSM8K reference solution as an episode: each annotated line is a Thought with a calculator Action and
    the annotation's result as the Observation; then ``finish[answer]``. None without annotations."""
    solution = problem.meta.get("solution", "")
    turns: list[Turn] = []
    pending: list[str] = []
    for line in solution.splitlines():
        calls = ANNOTATION.findall(line)
        pending.append(ANNOTATION.sub("", line).strip())
        if not calls:
            continue
        expression, result = calls[-1]
        thought = " ".join(p for p in pending if p)
        turns.append(Turn("assistant", f"Thought: {thought}\nAction: calculator[{expression.strip()}]", True))
        turns.append(Turn("user", f"Observation: {result.strip()}", False))
        pending = []
    if not turns:
        return None
    turns.append(Turn("assistant", f"Action: finish[{problem.answer}]", True))
    return Trajectory(problem.id, problem.question, turns, True, 1.0, problem.answer, problem.answer)


def gold_episodes(task: AgentTask, split: str | None = None, data_dir: str | None = None) -> list[Trajectory]:
    """A task's reference solutions as successful trajectories (GSM8K: those with calculator annotations), for
    ``--demos`` or to teach an untrained model the action format before it collects (``likra nat gold``)."""
    if task.name != "gsm8k":
        raise LikraError(f"--task {task.name}: has no reference solutions with tool calls (only gsm8k)")
    return [g for p in load_problems(task, split, data_dir) if (g := gsm8k_gold(p)) is not None]


def write_gold(
    out: str | Path, task: str, split: str | None = None, *, limit: int | None = None, sample: int | None = None,
    seed: int = 1234, data_dir: str | None = None,
) -> tuple[int, int]:  # fmt: skip
    """``likra nat gold``: a task's reference solutions written as successful trajectories; (written, with tool
    calls in all)."""
    agent_task = get_agent_task(task)
    episodes = gold_episodes(agent_task, split or agent_task.train_split, data_dir)
    chosen = select_items(episodes, limit, sample, seed)
    write_trajectories(out, chosen)
    return len(chosen), len(episodes)


def demonstration(trajectory: Trajectory) -> str:
    """An episode as prompt text: the question, then every turn on its own lines."""
    lines = [f"Question: {trajectory.question.strip()}"]
    lines += [t.content.strip() for t in trajectory.turns if t.content.strip() != "Observation: Episode finished"]
    return "\n".join(lines)


def demo_picker(
    task: AgentTask, shots: int, seed: int, data_dir: str | None = None, file: str | None = None
) -> Callable[[Problem], list[str]] | None:
    """``problem → K demonstrations`` (seeded per problem, never the problem itself), or None for 0 shots."""
    if shots <= 0:
        return None
    if file is not None:
        pool = [t for t in read_trajectories(file, load_problems(task, task.train_split, data_dir)) if t.reward]
    elif task.name == "gsm8k":
        pool = gold_episodes(task, "train", data_dir)
    else:
        raise LikraError(f"--shots {shots}: task {task.name} has no built-in examples; give --demos FILE")
    if len(pool) <= shots:
        raise LikraError(f"--shots {shots}: only {len(pool)} solved examples are available")

    def pick(problem: Problem) -> list[str]:
        rng = random.Random(f"{seed}:demos:{problem.id}")
        chosen: list[Trajectory] = []
        while len(chosen) < shots:
            candidate = pool[rng.randrange(len(pool))]
            if candidate.question != problem.question and candidate not in chosen:
                chosen.append(candidate)
        return [demonstration(t) for t in chosen]

    return pick
