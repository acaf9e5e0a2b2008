"""Training pools: the questions a head may learn from, with every evaluation question kept out.

The guard compares ids *and* normalised question text, because benchmarks reuse questions under new ids
(11 ARC-Challenge test questions reappear in ARC-Easy or in ARC-Challenge train/dev).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from likra.data.items import MCItem, read_jsonl
from likra.data.tasks import TaskSpec, get_task, load_items, numbered, parse_rows
from likra.errors import LikraError

# Each built-in task's pool: the (task, split) files it is drawn from, given the evaluation split.
_ARC_FILES = [(stem, split) for stem in ("arc_easy", "arc_challenge") for split in ("train", "validation", "test")]
POOL_SOURCES: dict[str, list[tuple[str, str]]] = {
    # the paper's pool for ARC-Challenge test: ARC-Easy (all splits) + ARC-Challenge train and dev = 6615
    "arc_challenge": _ARC_FILES,
    "arc_easy": _ARC_FILES,
    "hellaswag": [("hellaswag", "train")],
    "winogrande": [("winogrande", "train")],
    "mmlu": [("mmlu", "validation"), ("mmlu", "dev")],
}


def normalize_text(text: str) -> str:
    """Case, punctuation and spacing folded away, so a reworded copy of the same question still matches."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


@dataclass(frozen=True)
class Pool:
    """Training questions in a fixed order, and what the leakage guard removed."""

    items: list[MCItem]
    dropped: list[MCItem]
    sources: list[str]
    eval_task: str
    eval_split: str
    held_out: list[str]  # every "task/split" whose questions were kept out (the evaluation split first)

    def overlap(self, items: Sequence[MCItem]) -> int:
        """How many of ``items`` are in the pool (same id or same normalised question text)."""
        return sum(map(member_of(self.items), items))


def member_of(items: Sequence[MCItem]) -> Callable[[MCItem], bool]:
    """A test for "this question is one of ``items``": same id or same normalised question text."""
    ids = {item.id for item in items}
    texts = {normalize_text(item.question) for item in items}
    return lambda item: item.id in ids or normalize_text(item.question) in texts


def parse_held_out(entry: str) -> tuple[str, str]:
    """``task`` or ``task:split`` (``--hold-out``) → (task name, split), the split defaulting to the test split."""
    name, _, split = entry.partition(":")
    try:
        spec = get_task(name.strip())
    except LikraError as err:
        raise LikraError(f"--hold-out {entry}: {str(err).split(': ', 1)[-1]}") from None
    split = split.strip() or spec.default_split
    if split not in spec.files:
        raise LikraError(f"--hold-out {entry}: task {spec.name} has splits {', '.join(spec.files)}")
    return spec.name, split


def training_pool(
    task: str | TaskSpec,
    eval_split: str | None = None,
    data_dir: str | Path | None = None,
    train_file: str | Path | None = None,
    hold_out: Sequence[str] = (),
) -> Pool:
    """The questions available for training when ``task``/``eval_split`` is the test, leakage removed.

    ``train_file`` (a JSONL file in the task's own row format; required for ``jsonl:`` tasks) replaces the
    built-in pool. ``hold_out`` names more evaluation sets (``task`` or ``task:split``) to keep out, for
    experiments that score the same heads on several of them (ARC-Challenge and ARC-Easy test).
    """
    spec = get_task(task) if isinstance(task, str) else task
    eval_split = eval_split or spec.default_split
    held_out = load_items(spec, eval_split, data_dir)
    held_names = [f"{spec.name}/{eval_split}"]
    for entry in hold_out:
        name, split = parse_held_out(entry)
        if f"{name}/{split}" not in held_names:
            held_out = held_out + load_items(name, split, data_dir)
            held_names.append(f"{name}/{split}")
    if train_file is not None:
        path = Path(train_file).expanduser()
        items = parse_rows(spec.parse, numbered(str(path), read_jsonl(path)), str(path), "train")
        sources = [str(path)]
    elif spec.name in POOL_SOURCES:
        items, sources = [], []
        for name, split in POOL_SOURCES[spec.name]:
            if (name, split) == (spec.name, eval_split):
                continue
            items += load_items(name, split, data_dir)
            sources.append(f"{name}/{split}")
    else:
        raise LikraError(f"--task {spec.name}: no built-in training pool; give one with --train-file")
    leaked = member_of(held_out)
    kept, dropped = [], []
    for item in items:
        (dropped if leaked(item) else kept).append(item)
    if not kept:
        raise LikraError(f"training pool for {spec.name}/{eval_split} is empty after removing evaluation questions")
    return Pool(kept, dropped, sources, spec.name, eval_split, held_names)
