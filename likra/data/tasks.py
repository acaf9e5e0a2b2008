"""Benchmarks as data: where each one's files are, how a row becomes an ``MCItem``, and its prompt style.

Readers take rows as dicts, so the same code reads the local JSONL files (``--data-dir`` /
``LIKRA_DATA_DIR``) and the Hugging Face ``datasets`` rows (used when no data folder is given).
Preprocessing follows lm-evaluation-harness 0.4 for every task, so that accuracies are comparable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from likra.data.items import MCItem, RowError, checked_item, field_of, read_jsonl
from likra.errors import LikraError

T = TypeVar("T")

DATA_DIR_ENV = "LIKRA_DATA_DIR"


# --- row readers ------------------------------------------------------------------------------------


def parse_arc(row: dict[str, Any], default_id: str) -> MCItem:
    choices = field_of(row, "choices", dict)
    texts, labels = choices.get("text"), choices.get("label")
    if not isinstance(texts, list) or not isinstance(labels, list) or len(texts) != len(labels):
        raise RowError("field 'choices' should hold lists 'text' and 'label' of equal length")
    key = field_of(row, "answerKey", str)
    if key not in labels:
        raise RowError(f"answerKey '{key}' is not one of the choice labels {labels}")
    item = checked_item(str(row.get("id", default_id)), field_of(row, "question", str), texts, labels.index(key))
    return item


def hellaswag_preprocess(text: str) -> str:
    """lm-eval's clean-up of HellaSwag text (brackets are WikiHow artifacts)."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def parse_hellaswag(row: dict[str, Any], default_id: str) -> MCItem:
    ctx = field_of(row, "ctx_a", str) + " " + field_of(row, "ctx_b", str).capitalize()
    query = hellaswag_preprocess(field_of(row, "activity_label", str) + ": " + ctx)
    endings = [hellaswag_preprocess(e) if isinstance(e, str) else e for e in field_of(row, "endings", list)]
    label = field_of(row, "label", (int, str))
    try:
        label = int(label)
    except ValueError:
        raise RowError(f"field 'label' should be an index, got {label!r}") from None
    item = checked_item(default_id, query, endings, label)
    item.meta["ind"] = row.get("ind")
    return item


def parse_winogrande(row: dict[str, Any], default_id: str) -> MCItem:
    sentence = field_of(row, "sentence", str)
    if "_" not in sentence:
        raise RowError("field 'sentence' has no '_' blank")
    options = [field_of(row, "option1", str), field_of(row, "option2", str)]
    answer = field_of(row, "answer", (str, int))
    if str(answer) not in ("1", "2"):
        raise RowError(f"field 'answer' should be '1' or '2', got {answer!r}")
    return checked_item(str(row.get("qID", default_id)), sentence, options, int(answer) - 1)


def parse_mmlu(row: dict[str, Any], default_id: str) -> MCItem:
    item = checked_item(
        default_id,
        field_of(row, "question", str).strip(),
        field_of(row, "choices", list),
        field_of(row, "answer", int),
    )
    item.meta["subject"] = field_of(row, "subject", str)
    return item


def parse_user(row: dict[str, Any], default_id: str) -> MCItem:
    """A user's own file: ``{"question", "choices": [...], "answer": index}`` (+ optional ``"id"``)."""
    return checked_item(
        str(row.get("id", default_id)),
        field_of(row, "question", str),
        field_of(row, "choices", list),
        field_of(row, "answer", int),
    )


def mmlu_description(item: MCItem) -> str:
    """lm-eval's ``mmlu_*_continuation`` description line."""
    subject = " ".join(item.meta["subject"].split("_"))
    return f"The following are questions (with answers) about {subject}.\n\n"


# --- task specs -------------------------------------------------------------------------------------


SAMPLERS = ("first_n", "random")  # how a question's few-shot examples are drawn (likra.data.prompts.sample_shots)


@dataclass(frozen=True)
class TaskSpec:
    """How to find, read and prompt one benchmark.

    ``style`` picks the prompt (see ``likra.data.prompts``): ``qa`` (``Question: …\\nAnswer:`` + `` choice``),
    ``completion`` (context + `` ending``), ``partial`` (Winogrande: each option fills the blank, the shared
    rest of the sentence is scored).
    """

    name: str
    folder: str
    files: dict[str, str]  # split -> file name inside folder
    default_split: str
    fewshot_split: str
    parse: Callable[[dict[str, Any], str], MCItem]
    style: str
    hub: tuple[str, str | None]  # datasets.load_dataset(path, name)
    hub_splits: dict[str, str]
    fewshot_sampler: str = "random"  # one of SAMPLERS: "first_n" (same subject, in file order) is lm-eval's MMLU
    description: Callable[[MCItem], str] | None = None


def _arc(name: str, stem: str) -> TaskSpec:
    return TaskSpec(
        name=name,
        folder="arc",
        files={s: f"{stem}-{f}.jsonl" for s, f in (("train", "Train"), ("validation", "Dev"), ("test", "Test"))},
        default_split="test",
        fewshot_split="train",
        parse=parse_arc,
        style="qa",
        hub=("allenai/ai2_arc", stem),
        hub_splits={"train": "train", "validation": "validation", "test": "test"},
    )


TASKS: dict[str, TaskSpec] = {
    "arc_challenge": _arc("arc_challenge", "ARC-Challenge"),
    "arc_easy": _arc("arc_easy", "ARC-Easy"),
    "hellaswag": TaskSpec(
        name="hellaswag",
        folder="hellaswag",
        files={"train": "train_first3367.jsonl", "validation": "validation.jsonl"},
        default_split="validation",
        fewshot_split="train",
        parse=parse_hellaswag,
        style="completion",
        hub=("Rowan/hellaswag", None),
        hub_splits={"train": "train", "validation": "validation"},
    ),
    "winogrande": TaskSpec(
        name="winogrande",
        folder="winogrande",
        files={
            "validation": "validation.jsonl",
            "train": "train_l.jsonl",  # the largest training size available offline
            **{f"train_{s}": f"train_{s}.jsonl" for s in ("xs", "s", "m", "l")},
        },
        default_split="validation",
        fewshot_split="train",
        parse=parse_winogrande,
        style="partial",
        hub=("allenai/winogrande", "winogrande_xl"),
        hub_splits={"train": "train", "validation": "validation"},
    ),
    "mmlu": TaskSpec(
        name="mmlu",
        folder="mmlu",
        files={s: f"mmlu_{s}.jsonl" for s in ("test", "validation", "dev")},
        default_split="test",
        fewshot_split="dev",
        parse=parse_mmlu,
        style="qa",
        hub=("cais/mmlu", "all"),
        hub_splits={"test": "test", "validation": "validation", "dev": "dev"},
        fewshot_sampler="first_n",
        description=mmlu_description,
    ),
}


def user_task(path: str) -> TaskSpec:
    """``jsonl:PATH``: one file serves as the evaluation split and as the few-shot pool."""
    file = Path(path).expanduser()
    return TaskSpec(
        name=f"jsonl:{path}",
        folder=str(file.parent),
        files={"test": file.name},
        default_split="test",
        fewshot_split="test",
        parse=parse_user,
        style="qa",
        hub=("", None),
        hub_splits={},
    )


def get_task(name: str) -> TaskSpec:
    if name.startswith("jsonl:"):
        if not name[len("jsonl:") :]:
            raise LikraError("--task jsonl:PATH needs a file path after 'jsonl:'")
        return user_task(name[len("jsonl:") :])
    if name not in TASKS:
        raise LikraError(f"--task {name}: unknown task (known: {', '.join(TASKS)}, or jsonl:PATH)")
    return TASKS[name]


def data_dir_from(option: str | Path | None) -> Path | None:
    """``--data-dir``, else ``$LIKRA_DATA_DIR``, else None (read from the Hub)."""
    value = option or os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def parse_rows(
    parse: Callable[[dict[str, Any], str], T], rows: Iterable[tuple[str, dict[str, Any]]], where: str, split: str
) -> list[T]:
    """Parse ``(place, row)`` pairs (place: ``file:line`` or alike, named in errors); ``where`` names the source."""
    items: list[T] = []
    first: dict[str, str] = {}  # id → where it first appeared: results, negatives and pools join on ids
    for place, row in rows:
        try:
            items.append(parse(row, f"{split}-{len(items)}"))
        except RowError as err:
            raise LikraError(f"{place}: {err}") from None
        item_id = getattr(items[-1], "id", None)
        if item_id is not None and first.setdefault(item_id, place) != place:
            raise LikraError(f"{place}: id {item_id!r} again (first at {first[item_id]}); ids must be unique")
    if not items:
        raise LikraError(f"{where}: no items")
    return items


def numbered(where: str, rows: Iterable[tuple[int, dict[str, Any]]]) -> Iterator[tuple[str, dict[str, Any]]]:
    return ((f"{where}:{number}", row) for number, row in rows)


def hub_rows(task: str, hub: tuple[str, str | None], split: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """A Hub dataset's rows for users who are online (``datasets``), or one clear error when it cannot load."""
    import datasets

    path, name = hub
    try:
        rows = datasets.load_dataset(path, name, split=split)
    except Exception as err:  # datasets raises many types when offline; all mean "not reachable"
        raise LikraError(
            f"task {task}: no --data-dir / ${DATA_DIR_ENV} given and the Hub dataset {path} could not be "
            f"loaded ({type(err).__name__})"
        ) from None
    return numbered(f"hub:{path}/{split}", enumerate(rows, start=1))


def load_items(task: TaskSpec | str, split: str | None = None, data_dir: str | Path | None = None) -> list[MCItem]:
    """Read one split of a task as ``MCItem``s, from local files when a data folder is known, else the Hub."""
    task = get_task(task) if isinstance(task, str) else task
    split = split or task.default_split
    if split not in task.files:
        raise LikraError(f"--split {split}: task {task.name} has splits {', '.join(task.files)}")
    if task.name.startswith("jsonl:"):
        path = Path(task.folder) / task.files[split]
        return parse_rows(task.parse, numbered(str(path), read_jsonl(path)), str(path), split)
    folder = data_dir_from(data_dir)
    if folder is not None:
        path = folder / task.folder / task.files[split]
        if not path.is_file():
            raise LikraError(
                f"{path}: data file not found (--data-dir / ${DATA_DIR_ENV} should be the folder holding "
                f"{task.folder}/)"
            )
        return parse_rows(task.parse, numbered(str(path), read_jsonl(path)), str(path), split)
    if split not in task.hub_splits:
        raise LikraError(f"--split {split}: not available from the Hub for {task.name}; use --data-dir")
    return parse_rows(task.parse, hub_rows(task.name, task.hub, task.hub_splits[split]), f"hub:{task.hub[0]}", split)
