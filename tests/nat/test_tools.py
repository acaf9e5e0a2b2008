"""likra.nat.tools: calculator and search."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from likra.nat.tools import BM25Search, HTTPSearch, Search, ToolError, calculate, snippets


@pytest.mark.parametrize(
    "expression, value",
    [
        ("2+3*4", "14"),
        ("(1+2)**3", "27"),
        ("7/2", "3.5"),
        ("2^10", "1024"),
        ("1,000 * 3", "3000"),
        ("$5 + 2.5", "7.5"),
        ("-(-3)", "3"),
        ("10 // 3 + 10 % 3", "4"),
        ("0.1 + 0.2", "0.3"),
    ],
)
def test_calculator_does_arithmetic(expression, value):
    assert calculate(expression) == value


@pytest.mark.parametrize(
    "expression, message",
    [
        ("__import__('os').system('echo hi')", "only numbers"),
        ("().__class__.__bases__", "only numbers"),
        ("(lambda: 1)()", "only numbers"),
        ("abs(-1)", "only numbers"),
        ("x + 1", "only numbers"),
        ("'a' * 10", "only numbers"),
        ("9**9**9", "out of range"),
        ("2**100000", "out of range"),
        ("10.0**400", "out of range"),
        ("1e308 * 10", "out of range"),
        ("(-8) ** 0.5", "not a real number"),
        ("1/0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("(" * 1000 + "1" + ")" * 1000, "longer than"),
        ("-" * 250 + "1", "nested too deeply"),
        ("1 +", "cannot parse"),
        ("", "empty"),
    ],
)
def test_calculator_refuses_everything_but_arithmetic(expression, message):
    """Hostile input costs the agent a step (a ToolError becomes its observation), never time or the run."""
    started = time.perf_counter()
    with pytest.raises(ToolError, match=message):
        calculate(expression)
    assert time.perf_counter() - started < 1.0


def test_calculator_takes_deep_parentheses():
    assert calculate("(" * 140 + "1" + ")" * 140) == "1"


def test_bm25_search_finds_the_passage():
    search = Search(BM25Search(["Ice is frozen water.", "Paris is the capital of France.", "Ice is frozen water."]))
    assert search.backend.passages == ["Ice is frozen water.", "Paris is the capital of France."]
    assert search("capital of France").startswith("#1: Paris is the capital of France.")
    assert search("zzzz qqqq") == "No results."
    with pytest.raises(ToolError, match="empty search query"):
        search("  ")
    assert snippets("Observation:  #1: a b #2: c") == ["a b", "c"]


def test_http_search_backend():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"results": [{"text": f"about {self.path}"}, "second"]}).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        found = HTTPSearch(f"http://127.0.0.1:{server.server_port}/search").search("ice cold", 3)
        assert found == ["about /search?q=ice+cold&k=3", "second"]
    finally:
        server.shutdown()
    with pytest.raises(ToolError, match="search service failed"):
        HTTPSearch(f"http://127.0.0.1:{server.server_port}/search", timeout=0.5).search("x", 1)
