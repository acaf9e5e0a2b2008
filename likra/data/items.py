"""The multiple-choice item, the JSONL reading every benchmark reader shares, and the choice of which items to use
(``--limit``/``--sample``, for questions and problems alike)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from likra.errors import LikraError
from likra.files import iter_lines, parse_json

T = TypeVar("T")


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice question: ``choices[label]`` is the correct answer."""

    id: str
    question: str
    choices: list[str]
    label: int
    meta: dict[str, Any] = field(default_factory=dict)


class RowError(ValueError):
    """A row that does not have the shape its reader expects (the caller adds file and line)."""


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, row)`` for each non-blank line; a malformed line names file and line."""
    if not path.exists():
        raise LikraError(f"{path}: data file not found")
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        row = parse_json(line, f"{path}:{number}", "a JSON object per line")
        if not isinstance(row, dict):
            raise LikraError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def field_of(row: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """``row[name]``, checked to exist and to be of ``kind``."""
    if name not in row:
        raise RowError(f"missing field '{name}'")
    value = row[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise RowError(f"field '{name}' should be {names}, got {type(value).__name__}")
    return value


def checked_item(item_id: str, question: str, choices: list[Any], label: int) -> MCItem:
    """Build an item after the checks every task needs: choices are non-empty strings, label in range."""
    if not choices:
        raise RowError("empty choice list")
    for i, choice in enumerate(choices):
        if not isinstance(choice, str):
            raise RowError(f"choice {i} should be a string, got {type(choice).__name__}")
        if not choice.strip():  # scored over 0 characters, it could never win acc_norm
            raise RowError(f"choice {i} is empty")
    if not 0 <= label < len(choices):
        raise RowError(f"answer index {label} out of range for {len(choices)} choices")
    return MCItem(id=item_id, question=question, choices=list(choices), label=label)


def select_items(items: list[T], limit: int | None, sample: int | None, seed: int) -> list[T]:
    """The first ``limit`` items, or a seeded sample of ``sample`` kept in file order (questions or problems)."""
    if limit is not None and sample is not None:
        raise LikraError("--limit and --sample exclude each other")
    for name, value in (("--limit", limit), ("--sample", sample)):
        if value is not None and value <= 0:
            raise LikraError(f"{name} {value}: must be a positive number")
    if limit is not None:
        return items[:limit]
    if sample is not None and sample < len(items):
        keep = sorted(random.Random(seed).sample(range(len(items)), sample))
        return [items[i] for i in keep]
    return items
