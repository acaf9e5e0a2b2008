"""NAT, negative-aware training: fine-tune a tool-using agent on successful and failed trajectories, each
introduced by a prompt prefix that says which kind it is; at inference, ask for the successful kind.

Rooms: ``tasks`` (problems per task) → ``trajectories`` (episodes, readers) → ``templates`` (prompts, prefixes,
loss masks) → ``training`` (on ``likra.loop.fit``) → ``agent`` (the loop) with ``tools`` and ``checkers`` →
``runs`` (evaluation and collection, resumable) → ``curve`` (accuracy against negatives, NAT against mixing).
"""

import importlib
from typing import Any

# Imported on first use (PEP 562), so that the CLI's ``likra nat --help`` does not import torch.
_EXPORTS = {
    "HFGenerator": "likra.nat.agent",
    "run_agent": "likra.nat.agent",
    "summarize": "likra.nat.agent",
    "AgentEvalConfig": "likra.nat.configs",
    "CollectConfig": "likra.nat.configs",
    "NATConfig": "likra.nat.configs",
    "NATCurveConfig": "likra.nat.configs",
    "run_nat_curve": "likra.nat.curve",
    "collect": "likra.nat.runs",
    "evaluate_agent": "likra.nat.runs",
    "load_agent": "likra.nat.runs",
    "AGENT_TASKS": "likra.nat.tasks",
    "Problem": "likra.nat.tasks",
    "get_agent_task": "likra.nat.tasks",
    "load_problems": "likra.nat.tasks",
    "TEMPLATES": "likra.nat.templates",
    "select_trajectories": "likra.nat.training",
    "train_agent": "likra.nat.training",
    "Trajectory": "likra.nat.trajectories",
    "Turn": "likra.nat.trajectories",
    "read_trajectories": "likra.nat.trajectories",
    "write_trajectories": "likra.nat.trajectories",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'likra.nat' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
