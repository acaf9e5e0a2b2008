"""Each option's default and help in one place: the config dataclass field (``option(...)``).

The CLI derives its options from these fields, as TRL's ``TrlParser`` reads its configs' ``metadata["help"]``; the
Python API reads the same defaults. This module knows nothing of the CLI: ``specs`` describes a config's fields,
``likra.cli_options`` turns them into command-line options.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import MISSING, dataclass
from typing import Any, get_type_hints

from likra.errors import LikraError


def option(
    default: Any = MISSING,
    help: str = "",  # the name TRL's and HfArgumentParser's field metadata use
    *,
    factory: Callable[[], Any] | None = None,
    flags: tuple[str, ...] = (),
    envvar: str | None = None,
) -> Any:
    """A config field with its help text; ``flags`` when the option's name is not the field's (``--split``)."""
    metadata = {"help": help, "flags": flags, "envvar": envvar}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


TASK_HELP = "arc_challenge, arc_easy, hellaswag, winogrande, mmlu, jsonl:PATH."
DTYPE_HELP = ("auto (CUDA bfloat16; CPU float32, or bfloat16 for scoring where the CPU has it natively: AMX, "
              "AVX512-BF16), float32, bfloat16, float16.")
DEVICE_HELP = "auto (the rank's GPU under a launcher, else cuda:0 if any, else cpu), cpu, cuda, cuda:N."
MODEL_HELP = "Alias (smollm2-135m), model directory, .gguf, Hub id."


def model_option(default: str) -> Any:
    """``--model/-m``, as every command that loads a model names it."""
    return option(default, MODEL_HELP, flags=("--model", "-m"))


def device_option() -> Any:
    """``--device``, as every command that loads a model names it."""
    return option("auto", DEVICE_HELP)


def batch_tokens_option() -> Any:
    """``--batch-tokens``: a number, or ``auto`` (sized from the GPU's free memory; 1024 on the CPU)."""
    return option("auto", "Padded tokens per forward pass: a number, or auto (from the GPU's free memory; 1024 on "
                  "the CPU). Halved and retried on running out of memory.")  # fmt: skip


def check_batch_tokens(value: Any) -> str:
    """``auto`` or a positive whole number (as text: the CLI's type), else a one-line error naming the option."""
    text = str(value).strip().lower()
    if text != "auto" and not (text.isdigit() and int(text) > 0):
        raise LikraError(f"--batch-tokens {value}: expected a positive number of tokens or auto")
    return text


def data_dir_option() -> Any:
    """``--data-dir`` (or ``LIKRA_DATA_DIR``): the local benchmark files."""
    return option(None, "Folder with arc/, hellaswag/, ... (else the Hub).", flags=("--data-dir",),
                  envvar="LIKRA_DATA_DIR")  # fmt: skip


@dataclass(frozen=True)
class Spec:
    """One config field as an option: its type, default, help and names."""

    name: str
    type: Any
    default: Any
    help: str
    flags: tuple[str, ...]
    envvar: str | None


@functools.cache  # the CLI asks for a config's specs once per command that shows its options
def specs(cls: type) -> dict[str, Spec]:
    """The fields of the config class ``cls``; a field redeclared in a subclass to change its default keeps the
    help of the class it comes from unless it gives its own."""
    hints = get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        meta = _metadata(cls, f.name)
        default = f.default_factory() if f.default_factory is not MISSING else f.default  # MISSING: required
        out[f.name] = Spec(f.name, hints[f.name], default, meta.get("help", ""), meta.get("flags", ()),
                           meta.get("envvar"))  # fmt: skip
    return out


def _metadata(cls: type, name: str) -> dict[str, Any]:
    for klass in cls.__mro__:
        field = getattr(klass, "__dataclass_fields__", {}).get(name)
        if field is not None and field.metadata.get("help"):
            return dict(field.metadata)
    return {}
