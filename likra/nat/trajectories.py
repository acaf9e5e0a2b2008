"""Tool-using episodes: turns with a loss flag, a reward and a score; readers and writers.

Two formats are read: the NAT release's JSON (``conversations``/``info``/``id``/``source``, without the question
text, joined to a task's problems by id) and our own JSONL (one trajectory per line, as ``write_trajectories`` writes).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from likra import files
from likra.data.items import RowError, field_of, read_jsonl
from likra.errors import LikraError
from likra.nat.tasks import Problem, read_rows

ROLES = ("assistant", "user")


@dataclass
class Turn:
    """One message: the agent's (``Thought: … Action: tool[arg]``) or the environment's (``Observation: …``)."""

    role: str
    content: str
    loss: bool = False  # trained on (the agent's own turns, usually)


@dataclass
class Trajectory:
    """One episode on one problem. ``reward``: it succeeded; ``score``: graded success in [0, 1] (F1, or 0/1)."""

    id: str
    question: str
    turns: list[Turn]
    reward: bool
    score: float
    answer: str | None = None  # the gold answer, when known
    prediction: str | None = None  # what the episode's finish[...] said
    meta: dict[str, Any] = field(default_factory=dict)


ACTION = re.compile(r"Action\s*:\s*([A-Za-z_]\w*)\s*\[(.*)\]", re.DOTALL)


def parse_action(text: str) -> tuple[str, str] | None:
    """The first ``Action: tool[argument]`` of an agent turn, or None. The argument runs to the last ``]`` of
    the action's line, so brackets inside it survive (``calculator[(2+3)*4]``, ``search[a [b] c]``)."""
    start = re.search(r"Action\s*:", text)
    if start is None:
        return None
    line = text[start.start() :].split("\n", 1)[0]
    match = ACTION.match(line)
    if match is None:
        return None
    return match.group(1).lower(), match.group(2).strip()


def _turns(value: Any) -> list[Turn]:
    if not isinstance(value, list):  # an empty list is kept: an episode with nothing to learn from
        raise RowError("'conversations'/'turns' should be a list")
    turns = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise RowError(f"turn {i} should be an object")
        try:
            role = field_of(turn, "role", str)
            content = field_of(turn, "content", str)
            loss = turn.get("loss", role == "assistant")
        except RowError as err:
            raise RowError(f"turn {i}: {err}") from None
        if role not in ROLES:
            raise RowError(f"turn {i}: role '{role}' should be one of {', '.join(ROLES)}")
        if not isinstance(loss, bool):
            raise RowError(f"turn {i}: 'loss' should be true or false")
        turns.append(Turn(role, content, loss))
    return turns


def final_answer(turns: Sequence[Turn]) -> str | None:
    """The argument of the last ``finish[...]`` action."""
    for turn in reversed(turns):
        if turn.role == "assistant":
            action = parse_action(turn.content)
            if action is not None and action[0] == "finish":
                return action[1]
    return None


def parse_nat_row(row: dict[str, Any], problems: dict[str, Problem]) -> Trajectory:
    """A row of the NAT release, joined to its problem by ``id``."""
    key = str(field_of(row, "id", (str, int)))
    if key not in problems:
        raise RowError(f"id {key} is not in the task's problems")
    info = field_of(row, "info", dict)
    reward = field_of(info, "reward", bool)
    score = info.get("f1", info.get("score", float(reward)))
    if not isinstance(score, int | float) or isinstance(score, bool):
        raise RowError("info.f1/score should be a number")
    turns = _turns(row.get("conversations"))
    problem = problems[key]
    meta = {"source": row.get("source")}
    return Trajectory(key, problem.question, turns, reward, float(score), problem.answer, final_answer(turns), meta)


def parse_row(row: dict[str, Any]) -> Trajectory:
    """A row of our own JSONL format."""
    reward = field_of(row, "reward", bool)
    score = row.get("score", float(reward))
    if not isinstance(score, int | float) or isinstance(score, bool) or not 0.0 <= score <= 1.0:
        raise RowError("'score' should be a number in [0, 1]")
    turns = _turns(row.get("turns"))
    return Trajectory(
        id=str(field_of(row, "id", (str, int))),
        question=field_of(row, "question", str),
        turns=turns,
        reward=reward,
        score=float(score),
        answer=row.get("answer"),
        prediction=row.get("prediction", final_answer(turns)),
        meta=row.get("meta") or {},
    )


def read_trajectories(path: str | Path, problems: Sequence[Problem] = ()) -> list[Trajectory]:
    """A ``.json`` file of the NAT release (joined to ``problems`` by id) or a ``.jsonl`` of our own format."""
    path = Path(path)
    by_id = {p.id: p for p in problems}
    nat_format = path.suffix == ".json"
    if nat_format and not by_id:
        raise LikraError(f"{path}: NAT-format trajectories need the task's problems to join by id")
    rows = read_rows(path) if nat_format else read_jsonl(path)
    out = []
    for number, row in rows:
        try:
            out.append(parse_nat_row(row, by_id) if nat_format else parse_row(row))
        except RowError as err:
            where = f"row {number}" if nat_format else f"line {number}"
            raise LikraError(f"{path}: {where}: {err}") from None
    if not out:
        raise LikraError(f"{path}: no trajectories")
    return out


def write_trajectories(path: str | Path, trajectories: Sequence[Trajectory]) -> None:
    """Write (atomically: a temporary file, then rename) in the format ``read_trajectories`` reads."""
    files.write_jsonl(path, (asdict(t) for t in trajectories), ensure_ascii=False)
