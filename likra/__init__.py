"""Likra: teach language models from negative examples.

The Python API behind the ``likra`` command::

    from likra import EvalConfig, evaluate, load_model
    result = evaluate(load_model("smollm2-135m"), EvalConfig(task="arc_challenge", limit=100))
"""

__version__ = "0.1.0"

from likra.errors import LikraError
from likra.evaluation import EvalConfig, EvalResult, evaluate
from likra.models import LoadedModel, load_model
from likra.scoring import LogLikelihood, Scorer

__all__ = [
    "EvalConfig",
    "EvalResult",
    "LikraError",
    "LoadedModel",
    "LogLikelihood",
    "Scorer",
    "__version__",
    "evaluate",
    "load_model",
]
