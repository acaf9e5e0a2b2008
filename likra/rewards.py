"""A checkpoint's verifier as a reward function for RL trainers, in TRL's shape.

TRL's ``GRPOTrainer(reward_funcs=[...])`` calls each function as ``f(prompts=..., completions=...,
completion_ids=..., **columns)`` and takes a list with one float (or None: the sample is left out of that reward)
per completion; async functions are awaited side by side. ``LikraReward`` is such a function, scoring every
completion of a call in one scorer call, either in this process (a checkpoint folder, or a ``Verifier`` already
open) or through a running ``likra serve`` (``url=``, its ``POST /get_reward``). ``AsyncLikraReward`` is the same
as a coroutine. Conversational data arrives as lists of messages: the question is the last user message, the
answer the completion's text (see ``question_of`` and ``answer_of``).

    from trl import GRPOConfig, GRPOTrainer
    from likra.rewards import LikraReward

    trainer = GRPOTrainer(model="Qwen/Qwen2.5-0.5B-Instruct", reward_funcs=[LikraReward("runs/arc-256")],
                          args=GRPOConfig(output_dir="grpo"), train_dataset=dataset)
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from likra.errors import LikraError

VALUES = ("score", "p_correct")  # what a reward is: the verifier's score, or its calibrated P(correct)


def text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of a multimodal content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type", "text") == "text")
    return ""


def question_of(prompt: str | list[dict[str, Any]]) -> str:
    """The question a prompt asks: the prompt itself, or a conversation's last user message (the verifier scores
    in its checkpoint's own prompt format, so system prompts and earlier turns are left out)."""
    if isinstance(prompt, str):
        return prompt
    users = [m for m in prompt if m.get("role") == "user"]
    return text_of(users[-1].get("content")) if users else ""


def answer_of(completion: str | list[dict[str, Any]]) -> str:
    """The answer a completion gives: its text, or its assistant messages' text."""
    if isinstance(completion, str):
        return completion
    return "".join(text_of(m.get("content")) for m in completion if m.get("role", "assistant") == "assistant")


class LikraReward:
    """A TRL reward function from a Likra checkpoint: ``reward(prompts, completions, **kwargs) -> [float | None]``.

    ``source`` is a checkpoint folder (or a ``VerifierConfig``, or an open ``Verifier``), scored in this process;
    or give ``url`` (``http://host:8000``), a running ``likra serve``, and ``api_key`` if it has one. ``value``:
    ``score`` (the verifier's score in its mode, e.g. L+ - w·L-) or ``p_correct`` (needs a calibrated checkpoint,
    see ``likra calibrate``). An empty completion gets None. ``chunk`` answers go in one request to a server (its
    ``--max-answers``)."""

    __name__ = "likra"  # TRL logs rewards/<__name__>/mean

    def __init__(self, source: Any = None, *, url: str | None = None, value: str = "score", api_key: str | None = None,
                 chunk: int = 256, timeout: float = 180.0) -> None:  # fmt: skip
        if (source is None) == (url is None):
            raise LikraError("LikraReward: give a checkpoint (in process) or url= (a running likra serve), not both")
        if value not in VALUES:
            raise LikraError(f"LikraReward: value {value!r}: expected one of {', '.join(VALUES)}")
        self.value, self.url, self.api_key, self.chunk, self.timeout = value, url, api_key, chunk, timeout
        self.verifier = None if url else _open(source)
        self.owned = self.verifier is not None and self.verifier is not source  # opened here: closed by close()
        if value == "p_correct" and not self._calibrated():
            raise LikraError("LikraReward: value p_correct needs a calibrated checkpoint (run likra calibrate)")

    def _calibrated(self) -> bool:
        if self.verifier is not None:
            return self.verifier.calibration is not None
        return bool(self._request("/info")["calibration"])

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        pairs = [(question_of(p), answer_of(c)) for p, c in zip(prompts, completions, strict=True)]
        scored = [i for i, (q, a) in enumerate(pairs) if q.strip() and a.strip()]
        values = self._score([pairs[i] for i in scored]) if scored else []
        out: list[float | None] = [None] * len(pairs)
        for i, v in zip(scored, values, strict=True):
            out[i] = v
        return out

    def _score(self, pairs: list[tuple[str, str]]) -> list[float]:
        """One scorer call in process, or one request per ``chunk`` answers to the server."""
        if self.verifier is not None:
            from likra.verifier import Row

            answers = self.verifier.score([Row(str(i), q, [a], False) for i, (q, a) in enumerate(pairs)])
            return [a[self.value] for a in answers]
        out: list[float] = []
        for start in range(0, len(pairs), self.chunk):
            part = pairs[start : start + self.chunk]
            body = self._request("/get_reward", {"prompts": [q for q, _ in part], "responses": [a for _, a in part]})
            out += body["rewards"] if self.value == "p_correct" else body["scores"]
        return out

    def _request(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url.rstrip("/") + path, data=data, headers=headers)  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            raise LikraError(f"{self.url}{path}: {err.code} {err.read().decode(errors='replace')[:300]}") from None
        except OSError as err:
            raise LikraError(f"{self.url}{path}: cannot reach the server ({err})") from None

    def close(self) -> None:
        """Take the adapters of a verifier this reward opened off its model."""
        if self.owned:
            self.verifier.close()


class AsyncLikraReward(LikraReward):
    """``LikraReward`` as a coroutine: TRL awaits async reward functions side by side with the others. The scoring
    itself runs in a worker thread (one model, one call at a time)."""

    async def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        return await asyncio.to_thread(super().__call__, prompts, completions, **kwargs)


def _open(source: Any) -> Any:
    """An open ``Verifier``: ``source`` itself, or one opened on it (a folder or a ``VerifierConfig``, as
    ``Verifier`` takes them)."""
    from likra.verifier import Verifier

    return source if isinstance(source, Verifier) else Verifier(source)
