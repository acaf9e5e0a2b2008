"""How a long call reports while it works: a progress bar's factory (the CLI passes ``likra.cli_output.progress_bar``)
and the default that reports nothing, for the Python API."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

# (total, description) → a context giving ``advance(n)`` (or None: nothing to report)
ProgressFactory = Callable[[int, str], AbstractContextManager[Callable[[float], None] | None]]
# told each model a call loads, and its role when it has one (the CLI prints the header: model, device, dtype)
OnLoad = Callable[..., None]


def no_progress(total: int, description: str) -> AbstractContextManager[Callable[[float], None] | None]:
    return nullcontext(None)


def quiet(*_: Any) -> None:
    """An ``OnLoad`` or a ``log`` that says nothing."""
