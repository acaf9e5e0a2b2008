"""Prompts for agent training and inference, and the negative-aware prefixes that tell the model which kind of
trajectory follows.

Templates (``--template``):
- ``negative-aware`` (NAT): positives are asked to solve the problem correctly; negatives are introduced as a
  solution that reaches a wrong answer. At inference the model is asked the positive way.
- ``none``: the same prompt for both kinds (plain mixing of positives and negatives).
- ``tags``: a ``[Correct]`` / ``[Incorrect]`` tag before the problem.
- ``graded``: a tag per score band (e.g. F1 of a HotpotQA answer); inference asks for the top band.
The wording is ours; the design is the paper's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from likra.errors import LikraError
from likra.nat.trajectories import Trajectory

TEMPLATES = ("negative-aware", "none", "tags", "graded")
TEMPLATE_HELP = "negative-aware, none (plain mixing), tags, graded."

TOOL_LINES = {
    "search": "search[query]: looks the query up and returns the most relevant passages.",
    "calculator": "calculator[expression]: evaluates arithmetic (numbers, + - * / ** and parentheses).",
}
ANSWER_HINTS = {
    "yesno": "The answer to finish with is Yes or No.",
    "numeric": "The answer to finish with is a single number.",
    "f1": "The answer to finish with is a short phrase.",
}
POSITIVE = "Work through the problem and reach the correct answer."
NEGATIVE = "Below is a failed attempt: this solution reaches a wrong answer."
TAGS = {True: "[Correct]", False: "[Incorrect]"}
# Score bands for ``graded``, highest first: (lowest score in the band, tag).
GRADES: tuple[tuple[float, str], ...] = ((0.999, "[Score: full]"), (0.5, "[Score: partial]"), (0.0, "[Score: none]"))


def check_template(name: str) -> str:
    if name not in TEMPLATES:
        raise LikraError(f"--template {name}: expected one of {', '.join(TEMPLATES)}")
    return name


def grade(score: float) -> str:
    return next(tag for low, tag in GRADES if score >= low)


def prefix(template: str, reward: bool = True, score: float = 1.0) -> str:
    """The line that tells the model which kind of trajectory follows (inference: ``reward=True, score=1``)."""
    if template == "negative-aware":
        return POSITIVE if reward else NEGATIVE
    if template == "tags":
        return TAGS[reward]
    if template == "graded":
        return grade(score)
    return ""


def instruction(tool: str, checker: str) -> str:
    return (
        "Solve the problem with interleaved Thought and Action steps. A Thought reasons about what is known so "
        "far; an Action is one of:\n"
        f"{TOOL_LINES[tool]}\n"
        "finish[answer]: gives the final answer and ends the task.\n"
        f"Each Action is followed by an Observation. {ANSWER_HINTS[checker]}"
    )


def first_message(
    question: str,
    tool: str,
    checker: str,
    template: str,
    reward: bool = True,
    score: float = 1.0,
    demos: Sequence[str] = (),
) -> str:
    """The instruction, solved examples if any, the template's prefix, and the question."""
    lead = prefix(template, reward, score)
    shown = "Solved examples:\n\n" + "\n\n".join(demos) if demos else ""
    parts = [instruction(tool, checker), shown, lead, f"Question: {question.strip()}"]
    return "\n\n".join(p for p in parts if p)


def messages(trajectory: Trajectory, tool: str, checker: str, template: str) -> list[dict[str, str]]:
    head = first_message(trajectory.question, tool, checker, template, trajectory.reward, trajectory.score)
    return [{"role": "user", "content": head}] + [{"role": t.role, "content": t.content} for t in trajectory.turns]


def chat_text(tokenizer: Any, conversation: Sequence[dict[str, str]], generation_prompt: bool = False) -> str:
    """The model's chat format, or plain lines for a tokenizer without one (a base model)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            list(conversation), tokenize=False, add_generation_prompt=generation_prompt
        )
    return "".join(m["content"] + "\n" for m in conversation)


def segments(tokenizer: Any, conversation: Sequence[dict[str, str]], losses: Sequence[bool]) -> list[tuple[str, bool]]:
    """Cut the rendered conversation into (text, trained on) pieces: each message's header is never trained on;
    an assistant message flagged for loss is trained on its content and end-of-turn marker. ``losses`` has one
    flag per message."""
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i, (message, loss) in enumerate(zip(conversation, losses, strict=True)):
        text = chat_text(tokenizer, conversation[: i + 1])
        head = (
            chat_text(tokenizer, conversation[:i], generation_prompt=True) if message["role"] == "assistant" else done
        )
        if not (text.startswith(head) and head.startswith(done)):
            raise LikraError("the tokenizer's chat template does not render a conversation as a growing text")
        if head != done:
            pieces.append((head[len(done) :], False))
        pieces.append((text[len(head) :], bool(loss and message["role"] == "assistant")))
        done = text
    return pieces


def encode_trajectory(
    tokenizer: Any, trajectory: Trajectory, tool: str, checker: str, template: str, max_length: int
) -> tuple[list[int], list[bool]]:
    """Token ids and, per token, whether it is trained on. Longer trajectories keep their first ``max_length``
    tokens (the prompt and the first steps)."""
    conversation = messages(trajectory, tool, checker, template)
    losses = [False] + [t.loss for t in trajectory.turns]
    ids: list[int] = []
    mask: list[bool] = []
    for text, loss in segments(tokenizer, conversation, losses):
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        mask += [loss] * len(piece)
    return ids[:max_length], mask[:max_length]
