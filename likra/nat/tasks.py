"""Agent tasks: where a task's problems live, how a row becomes a ``Problem``, which tool and checker it uses.

As ``likra.data.tasks`` does for multiple choice, tasks are data: adding one is adding a ``AgentTask``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from likra.data.items import RowError, field_of, read_jsonl
from likra.data.tasks import DATA_DIR_ENV, data_dir_from, hub_rows, parse_rows
from likra.errors import LikraError
from likra.files import parse_json, read_text


@dataclass(frozen=True)
class Problem:
    """One agent problem: ``answer`` is the gold answer as text ("yes", "18", "Richard Strauss")."""

    id: str
    question: str
    answer: str
    meta: dict[str, Any] = field(default_factory=dict)


def _id(row: dict[str, Any], default: str) -> str:
    value = row.get("id", default)
    return str(value)


def gsm8k_answer(text: str) -> str:
    """The number after GSM8K's ``####`` (thousands separators dropped)."""
    if "####" not in text:
        raise RowError("answer has no '#### N' line")
    return text.rsplit("####", 1)[1].strip().replace(",", "")


def parse_math(row: dict[str, Any], default_id: str) -> Problem:
    answer = str(field_of(row, "answer", (str, int, float)))
    meta = {}
    if "####" in answer:
        meta["solution"] = answer.rsplit("####", 1)[0].strip()  # GSM8K's worked solution (see likra.nat.demos)
        answer = gsm8k_answer(answer)
    return Problem(_id(row, default_id), field_of(row, "question", str), answer, meta)


def parse_strategyqa(row: dict[str, Any], default_id: str) -> Problem:
    answer = field_of(row, "answer", bool)
    meta = {"facts": row.get("facts", [])}
    return Problem(_id(row, default_id), field_of(row, "question", str), "yes" if answer else "no", meta)


def parse_hotpotqa(row: dict[str, Any], default_id: str) -> Problem:
    meta = {"type": row.get("type")}
    return Problem(_id(row, default_id), field_of(row, "question", str).strip(), field_of(row, "answer", str), meta)


@dataclass(frozen=True)
class AgentTask:
    name: str
    folder: str
    files: dict[str, str]  # split → file in ``folder`` (.jsonl or a .json array)
    default_split: str
    train_split: str | None  # where ``likra nat collect`` draws its problems
    tool: str  # "calculator" or "search"
    checker: str  # "numeric", "yesno" or "f1" (see likra.nat.checkers)
    parse: Callable[[dict[str, Any], str], Problem]
    hub: tuple[str, str | None] | None = None  # (dataset, config) for users who are online
    hub_splits: dict[str, str] = field(default_factory=dict)


def _math(name: str, file: str) -> AgentTask:
    return AgentTask(name, "nat/math", {"test": file}, "test", None, "calculator", "numeric", parse_math)


AGENT_TASKS: dict[str, AgentTask] = {
    "gsm8k": AgentTask(
        "gsm8k",
        "gsm8k",
        {"train": "train.jsonl", "test": "test.jsonl"},
        "test",
        "train",
        "calculator",
        "numeric",
        parse_math,
        hub=("openai/gsm8k", "main"),
        hub_splits={"train": "train", "test": "test"},
    ),
    "asdiv": _math("asdiv", "asdiv_test.jsonl"),
    "multiarith": _math("multiarith", "multiarith_test.jsonl"),
    "svamp": _math("svamp", "svamp_test.jsonl"),
    "strategyqa": AgentTask(
        "strategyqa",
        "nat/strategyqa",
        {"train": "train.jsonl", "test": "test_random_500.jsonl"},
        "test",
        "train",
        "search",
        "yesno",
        parse_strategyqa,
    ),
    "hotpotqa": AgentTask(
        "hotpotqa",
        "nat/hotpotqa",
        {"train": "train_random_8000.json", "dev": "dev_random_500.json"},
        "dev",
        "train",
        "search",
        "f1",
        parse_hotpotqa,
        hub=("hotpotqa/hotpot_qa", "distractor"),
        hub_splits={"train": "train", "dev": "validation"},
    ),
}
AGENT_TASK_HELP = ", ".join(AGENT_TASKS) + "."


def get_agent_task(name: str) -> AgentTask:
    if name not in AGENT_TASKS:
        raise LikraError(f"--task {name}: unknown agent task (known: {', '.join(AGENT_TASKS)})")
    return AGENT_TASKS[name]


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(row number, row)`` of a JSONL file or of a JSON array (rows numbered from 1)."""
    if path.suffix != ".json":
        yield from read_jsonl(path)
        return
    if not path.exists():
        raise LikraError(f"{path}: data file not found")
    rows = parse_json(read_text(path), str(path), "a JSON array of rows")
    if not isinstance(rows, list):
        raise LikraError(f"{path}: expected a JSON array of rows, got {type(rows).__name__}")
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise LikraError(f"{path}: row {number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def load_problems(task: AgentTask | str, split: str | None = None, data_dir: str | Path | None = None) -> list[Problem]:
    """One split of an agent task, from local files when a data folder is known, else from the Hub."""
    task = get_agent_task(task) if isinstance(task, str) else task
    split = split or task.default_split
    if split not in task.files:
        raise LikraError(f"--split {split}: task {task.name} has splits {', '.join(task.files)}")
    folder = data_dir_from(data_dir)
    if folder is not None:
        path = folder / task.folder / task.files[split]
        if not path.is_file():
            raise LikraError(f"{path}: data file not found (--data-dir / ${DATA_DIR_ENV} should hold {task.folder}/)")
        rows = ((f"{path}: row {number}", row) for number, row in read_rows(path))
        return parse_rows(task.parse, rows, str(path), split)
    if task.hub is None or split not in task.hub_splits:
        raise LikraError(f"task {task.name}: no --data-dir / ${DATA_DIR_ENV} given, and it has no Hub source")
    return parse_rows(task.parse, hub_rows(task.name, task.hub, task.hub_splits[split]), f"hub:{task.hub[0]}", split)
