"""The agent's tools: a calculator that evaluates arithmetic and nothing else, and a search tool with a
pluggable backend (offline BM25 over a local corpus, or an HTTP endpoint for users who are online).

A tool failure is a ``ToolError``; the agent loop turns it into an observation, so a bad action costs the agent a
step, never the run.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from likra.nat.tasks import Problem


class ToolError(Exception):
    """What went wrong, worded for the agent's next observation."""


# --- calculator -------------------------------------------------------------------------------------------

MAX_EXPRESSION = 300  # characters
MAX_DEPTH = 100  # nested operations (a bound on recursion; 300 characters allow ~150)
MAX_MAGNITUDE = 1e100  # of every intermediate result
_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[float], float]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _number(value: float) -> float:
    if isinstance(value, complex):
        raise ToolError("result is not a real number")
    if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise ToolError("result out of range")
    return value


def _power(base: float, exponent: float) -> float:
    # Checked before computing: 9**9**9 would otherwise run for minutes and take gigabytes.
    if base != 0 and abs(exponent) * math.log10(abs(base)) > math.log10(MAX_MAGNITUDE):
        raise ToolError("result out of range")
    if base == 0 and exponent < 0:
        raise ToolError("division by zero")
    return base**exponent


def _evaluate(node: ast.AST, depth: int) -> float:
    if depth > MAX_DEPTH:
        raise ToolError("expression nested too deeply")
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, depth)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _number(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, depth + 1))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left, depth + 1), _evaluate(node.right, depth + 1)
        if isinstance(node.op, ast.Pow):
            return _number(_power(left, right))
        try:
            return _number(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
    raise ToolError("only numbers, + - * / // % ** and parentheses are allowed")


def format_number(value: float) -> str:
    """Integers without a decimal point; other numbers to 10 significant digits."""
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.10g}"


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression (no names, calls or attributes: the tree is walked, never ``eval``-ed)."""
    # the caret, times and divide signs as people write them
    text = expression.strip().replace("^", "**").replace("\u00d7", "*").replace("\u00f7", "/")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text).replace("$", "")  # 1,000 and $5 as people write them
    if not text:
        raise ToolError("empty expression")
    if len(text) > MAX_EXPRESSION:
        raise ToolError(f"expression longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ToolError(f"cannot parse '{expression.strip()}' as arithmetic") from None
    return format_number(_evaluate(tree, 0))


# --- search -----------------------------------------------------------------------------------------------


class SearchBackend(Protocol):
    def search(self, query: str, k: int) -> list[str]: ...


def snippets(text: str) -> list[str]:
    """Split a recorded observation (``#1: … #2: …``) into its passages."""
    body = text.removeprefix("Observation:").strip()
    parts = [p.strip() for p in re.split(r"#\d+:\s*", body) if p.strip()]
    return parts


class BM25Search:
    """Offline search: BM25 (``bm25s``) over a list of passages; duplicates are kept once."""

    def __init__(self, passages: Iterable[str]):
        import bm25s

        self.passages = list(dict.fromkeys(p for p in (p.strip() for p in passages) if p))
        if not self.passages:
            raise ToolError("the search corpus is empty")
        self.retriever = bm25s.BM25()
        self.retriever.index(bm25s.tokenize(self.passages, show_progress=False), show_progress=False)

    def search(self, query: str, k: int) -> list[str]:
        import bm25s

        tokens = bm25s.tokenize([query], show_progress=False)
        if not tokens.ids[0]:
            return []
        k = min(k, len(self.passages))
        results, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
        return [self.passages[i] for i, s in zip(results[0], scores[0], strict=True) if s > 0]


class HTTPSearch:
    """Online search: GET ``url`` with ``q=<query>&k=<k>``; the reply is a JSON list of strings, or an object
    whose ``results`` is one (strings, or objects with a ``text``/``snippet`` field)."""

    def __init__(self, url: str, timeout: float = 10.0):
        self.url, self.timeout = url, timeout

    def search(self, query: str, k: int) -> list[str]:
        sep = "&" if "?" in self.url else "?"
        address = f"{self.url}{sep}{urllib.parse.urlencode({'q': query, 'k': k})}"
        try:
            with urllib.request.urlopen(address, timeout=self.timeout) as reply:
                data = json.loads(reply.read().decode("utf-8"))
        except (OSError, ValueError) as err:
            raise ToolError(f"search service failed ({type(err).__name__})") from None
        results = data.get("results", []) if isinstance(data, dict) else data
        if not isinstance(results, list):
            raise ToolError("search service replied without a result list")
        texts = [r if isinstance(r, str) else str(r.get("text") or r.get("snippet") or "") for r in results]
        return [t for t in texts if t][:k]


@dataclass
class Search:
    backend: SearchBackend
    k: int = 3

    def __call__(self, query: str) -> str:
        if not query.strip():
            raise ToolError("empty search query")
        found = self.backend.search(query, self.k)
        if not found:
            return "No results."
        return " ".join(f"#{i}: {text}" for i, text in enumerate(found, start=1))


def strategyqa_corpus(problems: Sequence[Problem], observations: Iterable[str]) -> list[str]:
    """Passages for offline StrategyQA search: the problems' ``facts`` and the recorded observations' passages."""
    passages = [fact for p in problems for fact in p.meta.get("facts", [])]
    passages += [s for text in observations for s in snippets(text)]
    return passages
