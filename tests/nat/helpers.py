"""Shared helpers of the NAT tests."""

from __future__ import annotations

from likra.nat.trajectories import Trajectory, Turn

STRATEGYQA = "nat/strategyqa"


def trajectory(reward: bool = True, question: str = "Is ice cold?", answer: str = "Yes") -> Trajectory:
    turns = [
        Turn("assistant", "Thought: look it up.\nAction: search[ice temperature]", True),
        Turn("user", "Observation: #1: Ice is frozen water.", False),
        Turn("assistant", f"Action: finish[{answer}]", True),
        Turn("user", "Observation: Episode finished", False),
    ]
    return Trajectory("q1", question, turns, reward, float(reward), "yes", answer)


class Scripted:
    """A fake model: the n-th turn of every episode is ``script[n]`` (a function of the conversation)."""

    def __init__(self, *script):
        self.script, self.calls = script, []

    def __call__(self, conversations, temperature, seed):
        self.calls.append(conversations)
        return [self.script[(len(c) - 1) // 2](c) for c in conversations]
