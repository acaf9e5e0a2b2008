"""NAT, negative-aware training: fine-tune a tool-using agent on successful and failed trajectories, each
introduced by a prompt prefix that says which kind it is; at inference, ask for the successful kind.

Rooms: ``tasks`` (problems per task) → ``trajectories`` (episodes, readers) → ``templates`` (prompts, prefixes,
loss masks) → ``training`` (on ``likra.training.fit``) → ``agent`` (the loop) with ``tools`` and ``checkers`` →
``runs`` (evaluation and collection, resumable) → ``curve`` (accuracy against negatives, NAT against mixing).
"""

from likra.nat.agent import HFGenerator, run_agent, summarize
from likra.nat.curve import NATCurveConfig, run_nat_curve
from likra.nat.runs import AgentEvalConfig, CollectConfig, collect, evaluate_agent, load_agent
from likra.nat.tasks import AGENT_TASKS, Problem, get_agent_task, load_problems
from likra.nat.templates import TEMPLATES
from likra.nat.training import NATConfig, select_trajectories, train_agent
from likra.nat.trajectories import Trajectory, Turn, read_trajectories, write_trajectories

__all__ = [
    "AGENT_TASKS",
    "TEMPLATES",
    "AgentEvalConfig",
    "CollectConfig",
    "HFGenerator",
    "NATConfig",
    "NATCurveConfig",
    "Problem",
    "Trajectory",
    "Turn",
    "collect",
    "evaluate_agent",
    "get_agent_task",
    "load_agent",
    "load_problems",
    "read_trajectories",
    "run_agent",
    "run_nat_curve",
    "select_trajectories",
    "summarize",
    "train_agent",
    "write_trajectories",
]
