"""Command-line options derived from config dataclasses: one option per field, its default and help the field's
(``likra.options``), so that a default is written once and the CLI and the Python API cannot drift apart.

Typer reads a command's options from its signature; ``config_options`` rewrites that signature (the way typer
itself is meant to be extended, through ``__signature__``) instead of a parser of our own. Lists are given
comma-separated, as everywhere in likra's CLI.
"""

from __future__ import annotations

import functools
import inspect
import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import MISSING
from typing import Annotated, Any, Union, get_args, get_origin

import typer

from likra.errors import LikraError
from likra.options import DTYPE_HELP, MODEL_HELP, Spec, specs

# options that are not a config's field (how to load, where to write), shared by likra's and likra nat's commands
ModelOpt = Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP)]
DtypeOpt = Annotated[str, typer.Option(help=DTYPE_HELP)]
ResumeOpt = Annotated[bool, typer.Option(help="Continue from the newest complete checkpoint in --out.")]
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

_UNSET = object()


def config_options(
    cls: type,
    *,
    into: str = "config",
    only: Sequence[str] | None = None,
    skip: Sequence[str] = (),
    help: dict[str, str] | None = None,  # as typer names it
    build: bool = True,
) -> Decorator:
    """Decorator: the command's parameter ``into`` becomes one option per field of ``cls`` (those in ``only``,
    less ``skip``), and the command receives ``into=cls(...)`` built from them. ``help`` rewords a field's help
    for this command (a curve's ``--task`` is the training pool's); the default stays the field's. ``build=False``:
    the command receives the options' values as a dict instead, to build a config that holds other configs (which a
    decorator of their own builds) itself."""
    fields = specs(cls)
    own = inspect.get_annotations(cls)  # the class's own fields first, then the shared ones
    names = sorted((n for n in (only or fields) if n not in skip), key=lambda n: n not in own)

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        params: list[inspect.Parameter] = []
        for p in signature.parameters.values():
            own = [_parameter(fields[n], (help or {}).get(n)) for n in names] if p.name == into else [p]
            params += [q.replace(kind=inspect.Parameter.KEYWORD_ONLY) for q in own]
        taken = [q.name for q in params]
        if len(set(taken)) != len(taken):
            raise TypeError(f"{command.__name__}: two options named {sorted({n for n in taken if taken.count(n) > 1})}")

        def run(**kwargs: Any) -> Any:
            values = {n: _value(fields[n], kwargs.pop(n)) for n in names}
            given = {n: v for n, v in values.items() if v is not _UNSET}
            return command(**kwargs, **{into: cls(**given) if build else given})

        run.__name__, run.__qualname__, run.__doc__ = command.__name__, command.__qualname__, command.__doc__
        run.__module__ = command.__module__
        run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        return run

    return decorate


def recorded(folder: str | Callable[[dict[str, Any]], str] = "out") -> Decorator:
    """Decorator: once the command succeeds, it is appended to the folder's ``commands.jsonl`` with its wall time
    (``likra report`` lists them). ``folder``: the option naming the folder, or a function of the options."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)  # keeps the signature typer reads (``config_options``'s included)
        def run(**kwargs: Any) -> Any:
            from likra.report import log_command

            started = time.perf_counter()
            result = command(**kwargs)
            target = folder(kwargs) if callable(folder) else kwargs[folder]
            log_command(target, sys.argv[1:], time.perf_counter() - started)
            return result

        return run

    return decorate


def flag(spec: Spec) -> str:
    """The option's name as users type it."""
    return spec.flags[0] if spec.flags else "--" + spec.name.replace("_", "-")


def _list_item(annotation: Any) -> type | None:
    """``int`` for ``list[int]`` or ``list[int] | None``; None for anything that is not a list."""
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    return get_args(annotation)[0] if get_origin(annotation) is list else None


def _parameter(spec: Spec, help: str | None) -> inspect.Parameter:
    text = help or spec.help
    if _list_item(spec.type) is None:
        option = typer.Option(*spec.flags, help=text, envvar=spec.envvar)
        default = inspect.Parameter.empty if spec.default is MISSING else spec.default  # a required option
        return inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                 annotation=Annotated[spec.type, option])  # fmt: skip
    shown = ",".join(map(str, spec.default or [])) or False  # the default as it would be typed
    option = typer.Option(*spec.flags, help=text, envvar=spec.envvar, show_default=shown)
    return inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[str | None, option])  # fmt: skip


def _value(spec: Spec, raw: Any) -> Any:
    """The field's value from what the option received (lists: comma-separated text; not given: the default)."""
    item = _list_item(spec.type)
    if item is None:
        return raw
    if raw is None:
        return _UNSET
    parts = [v.strip() for v in raw.split(",") if v.strip()]
    if item is str:
        return parts
    try:
        return [item(v) for v in parts]
    except ValueError:
        what = "whole numbers" if item is int else "numbers"
        raise LikraError(f"{flag(spec)} {raw}: expected comma-separated {what}") from None
