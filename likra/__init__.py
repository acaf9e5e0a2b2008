"""Likra: teach language models from negative examples.

The Python API behind the ``likra`` command::

    from likra import EvalConfig, TrainConfig, evaluate, load_model, train
    loaded = load_model("smollm2-135m")
    train(loaded, TrainConfig(n=256, negatives="incorrect"), "runs/arc-256")
    result = evaluate(loaded, EvalConfig(task="arc_challenge", checkpoint="runs/arc-256", mode="likra"))
    scores = Verifier("runs/arc-256").score([{"question": "What do bees make?", "answer": "honey"}])
"""

from likra.errors import LikraError
from likra.evaluation import EvalConfig, EvalResult, evaluate
from likra.models import LoadedModel, load_model
from likra.scoring import LogLikelihood, Scorer
from likra.training import TrainConfig, TrainResult, train
from likra.verifier import Verifier, VerifierConfig
from likra.version import __version__

__all__ = [
    "EvalConfig",
    "EvalResult",
    "LikraError",
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
