"""The files likra writes and later reads back, as typed schemas, and the one way they are read.

A stored file can be cut short by a full disk, edited by hand or come from another version; read back without a
schema, a wrong shape surfaced as a ``KeyError`` deep in a report. Here each file's shape is declared once
(pydantic validates it: TypedDicts for the summaries, whose readers index them as dicts; dataclasses such as
``Calibration`` and ``Manifest`` are validated the same way by their own modules), and ``read_stored`` turns any
mismatch into one ``LikraError`` naming the file, the line (JSONL) and the field: ``sweep.json: rows[2].neg_weight:
field required``. Keys a schema does not name are kept: a later version may add some.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Any, NotRequired

from pydantic import AfterValidator, ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict only on Python 3.12 and later

from likra.errors import LikraError
from likra.files import read_json

KEEP = ConfigDict(extra="allow")


@cache
def _adapter(schema: Any) -> TypeAdapter:
    return TypeAdapter(schema)


def field_name(location: tuple[str | int, ...]) -> str:
    """pydantic's error location as the field reads in the file: ``rows[2].neg_weight``."""
    name = ""
    for part in location:
        name += f"[{part}]" if isinstance(part, int) else f".{part}" if name else str(part)
    return name or "value"


def validated(data: Any, schema: Any, where: str) -> Any:
    """``data`` checked against ``schema`` (a TypedDict, a dataclass, a type); the first mismatch is one
    ``LikraError`` starting with ``where`` and naming the field."""
    try:
        return _adapter(schema).validate_python(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        raise LikraError(f"{where}: {field_name(first['loc'])}: {first['msg'].lower()}") from None


def read_stored(path: str | Path, schema: Any, what: str) -> Any:
    """A JSON file likra wrote, read back as ``schema`` (``what`` names the kind of file in errors)."""
    return validated(read_json(path, what=what), schema, str(path))


def read_stored_rows(path: str | Path, schema: Any) -> list[Any]:
    """Each row of a JSONL file likra wrote, as ``schema``; a wrong row names its line."""
    from likra.data.items import read_jsonl

    return [validated(row, schema, f"{path}:{number}") for number, row in read_jsonl(Path(path))]


# --- the summaries every experiment writes beside its figure ------------------------------------------


@with_config(KEEP)
class EvalSet(TypedDict):
    """``scores/<task>-<split>/eval.json``: the evaluation set a curve folder scored."""

    task: str
    split: str
    n: int


@with_config(KEEP)
class Command(TypedDict):
    """One line of ``commands.jsonl``: a command that wrote into the folder."""

    command: str
    finished: str
    seconds: float


@with_config(KEEP)
class Evaluations(TypedDict):
    """``step-K/evaluations.json``: the evaluations a checkpoint's model card shows (``likra.model_card``)."""

    evaluations: list[dict[str, Any]]


@with_config(KEEP)
class CurveRow(TypedDict):
    """A Likra curve's row (``curve.json``); the verifier's rows add AUROC and its kin."""

    task: str
    split: str
    method: str
    examples: int
    seed: int
    accuracy: float
    p_vs_sft: NotRequired[float | None]
    p_vs_sft_calibrated: NotRequired[float | None]
    auroc: NotRequired[float]
    hard_auroc: NotRequired[float]
    acc_at_50: NotRequired[float]


@with_config(KEEP)
class NATCurveRow(TypedDict):
    """A NAT curve's row (``curve.json`` with ``"experiment": "nat_curve"``)."""

    template: str
    neg_num: int
    seed: int
    accuracy: float
    p_vs_pos_only: float | None
    p_vs_none: float | None


@with_config(KEEP)
class AblateRow(TypedDict):
    kind: str
    method: str
    examples: int
    seed: int
    accuracy: float


@with_config(KEEP)
class SweepRow(TypedDict):
    mode: str
    neg_weight: float
    acc_norm: float
    run: NotRequired[int]


@with_config(KEEP)
class MassRow(TypedDict):
    examples: int
    head: str
    answer: str
    mean_delta_per_char: float


@with_config(KEEP)
class CurveSummary(TypedDict):
    rows: list[CurveRow]


@with_config(KEEP)
class NATCurveSummary(TypedDict):
    rows: list[NATCurveRow]


@with_config(KEEP)
class AblateSummary(TypedDict):
    rows: list[AblateRow]


@with_config(KEEP)
class SweepSummary(TypedDict):
    rows: list[SweepRow]


@with_config(KEEP)
class MassSummary(TypedDict):
    rows: list[MassRow]


class Interval(TypedDict):
    mean: float
    ci95: tuple[float, float]


Gain = TypedDict("Gain", {"from": int, "to": int, "negatives": Interval, "positives": Interval})


class NegativeValue(TypedDict):
    steps: list[tuple[int, int]]
    ratio: NotRequired[float | None]
    ratio_ci95: NotRequired[tuple[float, float] | None]


def _square(summary: dict[str, Any]) -> dict[str, Any]:
    """The grid's mean accuracies: one row and one column per count."""
    n = len(summary["counts"])
    if len(summary["mean_acc_norm"]) != n or any(len(row) != n for row in summary["mean_acc_norm"]):
        raise ValueError(f"mean_acc_norm should be {n} rows of {n} numbers, one per count")
    return summary


@with_config(KEEP)
class _GridSummary(TypedDict):
    counts: list[int]
    mean_acc_norm: list[list[float]]
    gains: list[Gain]
    value_of_a_negative: dict[str, NegativeValue]
    rows: list[dict[str, Any]]


GridSummary = Annotated[_GridSummary, AfterValidator(_square)]
