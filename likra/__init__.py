"""Likra: teach language models from negative examples.

The Python API behind the ``likra`` command::

    from likra import EvalConfig, TrainConfig, evaluate, load_model, train
    loaded = load_model("smollm2-135m")
    train(loaded, TrainConfig(n=256, negatives="incorrect"), "runs/arc-256")
    result = evaluate(loaded, EvalConfig(task="arc_challenge", checkpoint="runs/arc-256", mode="likra"))
    scores = Verifier("runs/arc-256").score([{"question": "What do bees make?", "answer": "honey"}])
"""

import importlib
from typing import Any

from likra.errors import LikraError

# Imported on first use (PEP 562), so that ``import likra`` (and ``likra --help``) imports neither torch nor the
# package metadata (reading it costs ~40 ms of every command's start).
_EXPORTS = {
    "__version__": "likra.version",
    "EvalConfig": "likra.configs",
    "TrainConfig": "likra.configs",
    "VerifierConfig": "likra.configs",
    "EvalResult": "likra.evaluation",
    "evaluate": "likra.evaluation",
    "LoadedModel": "likra.models",
    "load_model": "likra.models",
    "LogLikelihood": "likra.scoring",
    "Scorer": "likra.scoring",
    "TrainResult": "likra.training",
    "train": "likra.training",
    "Verifier": "likra.verifier",
    "LikraReward": "likra.rewards",
}
__all__ = [
    "EvalConfig",
    "EvalResult",
    "LikraError",
    "LikraReward",
    "LoadedModel",
    "LogLikelihood",
    "Scorer",
    "TrainConfig",
    "TrainResult",
    "Verifier",
    "VerifierConfig",
    "__version__",
    "evaluate",
    "load_model",
    "train",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'likra' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
