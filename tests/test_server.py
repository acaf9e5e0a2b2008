"""likra.server: a real `likra serve` process on localhost, every endpoint, bad requests answered 4xx while it
keeps serving; the batcher (concurrent requests share scorer calls, a full queue is 503) with a slow fake scorer."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from likra.server import Batcher, Busy, ServeConfig
from likra.verifier import Row, Verifier


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, body: bytes | dict | None = None, method: str | None = None) -> tuple[int, dict]:
    """(status, JSON body) of one request; ``body`` a dict is sent as JSON, bytes as they are."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(scope="module")
def server(runs):
    """`python -m likra serve` on a free port, answering once /health does; stopped after the module."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    args = ["serve", "--checkpoint", str(runs / "both"), "--port", str(port), "--max-body", "20000",
            "--max-answers", "8"]  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "likra", *args], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if process.poll() is not None:
            pytest.fail(f"likra serve exited: {process.stderr.read()}")
        try:
            if call(url + "/health")[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    yield url, process
    process.terminate()
    process.wait(timeout=30)


QUESTION = "Which gas do plants take in for photosynthesis?"
ANSWERS = ["carbon dioxide", "oxygen", "nitrogen"]


@pytest.fixture(scope="module")
def expected(runs):
    """The in-process verifier's answers to QUESTION, the numbers the server must give."""
    verifier = Verifier(str(runs / "both"))
    answers = verifier.score([Row(str(i), QUESTION, [a], False) for i, a in enumerate(ANSWERS)])
    verifier.close()
    return answers


def test_health_and_info(server, runs):
    url, _ = server
    status, health = call(url + "/health")
    assert status == 200 and health["status"] == "ok"
    status, info = call(url + "/info")
    assert status == 200
    assert info["checkpoint"] == str(runs / "both" / "step-8") and info["mode"] == "likra"
    assert info["neg_weight"] == 1.0 and info["heads"] == ["positive", "negative"] and info["calibration"] is None
    assert info["hardware"]["device"] == "cpu" and info["hardware"]["dtype"] == "float32"


def test_score_in_vllms_shape_with_the_verifiers_numbers(server, expected):
    url, _ = server
    status, body = call(url + "/score", {"model": "likra", "text_1": QUESTION, "text_2": ANSWERS})
    assert status == 200 and body["object"] == "list" and body["mode"] == "likra"
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert [d["score"] for d in body["data"]] == pytest.approx([a["score"] for a in expected], abs=1e-6)
    first = body["data"][0]["likra"]
    assert set(first["loglikelihood"]) == {"base", "positive", "negative"}
    assert first["n_chars"] == expected[0]["n_chars"] and body["data"][0]["p_correct"] is None
    # questions and answers pairwise: the same numbers
    status, pairs = call(url + "/score", {"text_1": [QUESTION] * 3, "text_2": ANSWERS})
    assert status == 200 and [d["score"] for d in pairs["data"]] == pytest.approx([a["score"] for a in expected])


def test_get_reward_in_openrlhfs_shape_and_prompts_with_responses(server, expected):
    url, _ = server
    prompt = QUESTION
    status, body = call(url + "/get_reward", {"query": [f"{prompt} {a}" for a in ANSWERS], "prompts": [prompt] * 3})
    assert status == 200
    # no calibration: the reward is the score
    assert body["rewards"] == pytest.approx([a["score"] for a in expected], abs=1e-6) == body["scores"]
    status, apart = call(url + "/get_reward", {"prompts": [prompt] * 3, "responses": ANSWERS})
    assert status == 200 and apart["rewards"] == pytest.approx(body["rewards"])


@pytest.mark.parametrize(
    "path, body, status, fragment",
    [
        ("/score", b"{not json", 400, "malformed JSON"),
        ("/score", b"\xff\xfe", 400, "malformed JSON"),
        ("/score", b"[" * 30000 + b"]" * 30000, 413, "over 20000 bytes"),
        ("/score", b"[" * 9000 + b"]" * 9000, 400, "malformed JSON"),
        ("/score", {"text_2": ["a"]}, 422, "text_1"),
        ("/score", {"text_1": "q", "text_2": []}, 422, "text_2: expected a non-empty"),
        ("/score", {"text_1": "q", "text_2": [""]}, 422, "text_2"),
        ("/score", {"text_1": 3, "text_2": ["a"]}, 422, "text_1"),
        ("/score", {"text_1": ["q", "r"], "text_2": ["a"]}, 422, "as many answers"),
        ("/score", {"text_1": "q", "text_2": ["a"] * 9}, 413, "9 answers in one request; at most 8"),
        ("/score", {"text_1": "q", "text_2": ["a" * 30000]}, 413, "over 20000 bytes"),
        ("/score", b"null", 422, "body"),
        ("/get_reward", {"prompts": ["p"]}, 422, "give 'query'"),
        ("/get_reward", {"prompts": ["p"], "query": ["x y"]}, 422, "each starting with its prompt"),
        ("/get_reward", {"prompts": ["p", "q"], "responses": ["a"]}, 422, "as many of each"),
        ("/get_reward", {"prompts": [1], "responses": ["a"]}, 422, "prompts"),
        ("/nowhere", {}, 404, "Not Found"),
    ],
)
def test_a_bad_request_is_4xx_with_a_one_line_error_and_the_server_goes_on(server, path, body, status, fragment):
    url, process = server
    got, answer = call(url + path, body)
    assert got == status and fragment in answer["error"] and "\n" not in answer["error"]
    assert process.poll() is None and call(url + "/health")[0] == 200


def test_the_wrong_method_is_405(server):
    url, _ = server
    assert call(url + "/score")[0] == 405 and call(url + "/health", {}, method="POST")[0] == 405


def test_concurrent_requests_get_the_numbers_they_get_alone(server, expected):
    url, _ = server
    before = call(url + "/health")[1]
    start = threading.Barrier(12)

    def one(i: int) -> tuple[int, dict]:
        start.wait()
        return call(url + "/score", {"text_1": QUESTION, "text_2": [ANSWERS[i % 3]]})

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(one, range(12)))
    assert all(status == 200 for status, _ in results)
    for i, (_, body) in enumerate(results):
        assert body["data"][0]["score"] == pytest.approx(expected[i % 3]["score"], abs=1e-6)
    after = call(url + "/health")[1]
    assert after["requests"] - before["requests"] == 12 and after["answers"] - before["answers"] == 12


FAKE = {"loglikelihood": {}, "per_char": {}, "n_chars": 1}


class SlowScorer:
    """A stand-in verifier: each call waits until released, then scores every answer by its length."""

    def __init__(self) -> None:
        self.entered, self.release, self.batches = threading.Event(), threading.Event(), []

    def score(self, rows: list[Row]) -> list[dict]:
        self.entered.set()
        self.release.wait(timeout=30)
        self.batches.append(len(rows))
        if any(r.question == "fail" for r in rows):
            raise RuntimeError("scorer failed")
        return [{"score": float(len(a)), **FAKE} for r in rows for a in r.answers]


def submit(batcher: Batcher, loop, rows: list[Row]):
    import asyncio

    return asyncio.run_coroutine_threadsafe(batcher.score(rows), loop)


@pytest.fixture
def loop():
    import asyncio

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)


def rows(*answers: str, question: str = "q") -> list[Row]:
    return [Row(str(i), question, [a], False) for i, a in enumerate(answers)]


def wait_until(condition, seconds: float = 10) -> None:
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        time.sleep(0.01)
    assert condition()


def test_requests_waiting_together_are_scored_in_one_call(loop):
    scorer = SlowScorer()
    batcher = Batcher(scorer, max_batch=64, max_queue=8)
    first = submit(batcher, loop, rows("a"))
    assert scorer.entered.wait(10)  # the worker is scoring the first request
    waiting = [submit(batcher, loop, rows("bb", "ccc")) for _ in range(4)]
    wait_until(lambda: batcher.jobs.qsize() == 4)
    scorer.release.set()
    assert first.result(10) == [{"score": 1.0, **FAKE}]
    assert all(w.result(10) == [{"score": 2.0, **FAKE}, {"score": 3.0, **FAKE}] for w in waiting)
    assert scorer.batches == [1, 8] and batcher.calls == 2 and batcher.requests == 5 and batcher.answers == 9


def test_a_batch_stops_at_max_batch_answers(loop):
    scorer = SlowScorer()
    batcher = Batcher(scorer, max_batch=4, max_queue=8)
    submit(batcher, loop, rows("a"))
    assert scorer.entered.wait(10)
    waiting = [submit(batcher, loop, rows("b", "c")) for _ in range(3)]
    wait_until(lambda: batcher.jobs.qsize() == 3)
    scorer.release.set()
    [w.result(10) for w in waiting]
    assert scorer.batches == [1, 4, 2]  # two requests (4 answers) fill a call, the third waits for the next


def test_a_full_queue_is_busy_and_a_scorer_failure_answers_only_its_batch(loop):
    scorer = SlowScorer()
    batcher = Batcher(scorer, max_batch=64, max_queue=1)
    failing = submit(batcher, loop, rows("a", question="fail"))
    assert scorer.entered.wait(10)
    queued = submit(batcher, loop, rows("bb"))
    wait_until(lambda: batcher.jobs.qsize() == 1)
    with pytest.raises(Busy):
        submit(batcher, loop, rows("c")).result(10)
    scorer.release.set()
    with pytest.raises(RuntimeError, match="scorer failed"):
        failing.result(10)
    assert queued.result(10) == [{"score": 2.0, **FAKE}]  # the worker went on


@pytest.mark.parametrize(
    "field, value, fragment",
    [("max_batch", 0, "--max-batch 0"), ("max_queue", -1, "--max-queue -1"), ("port", 70000, "--port 70000")],
)
def test_serve_options_are_checked(field, value, fragment):
    from likra.errors import LikraError

    with pytest.raises(LikraError, match=fragment):
        ServeConfig(**{field: value})


def test_likra_serve_checks_its_options_before_loading(runs, tmp_path):
    from .test_cli import assert_one_line_error, likra

    assert_one_line_error(likra("serve", "--checkpoint", str(tmp_path / "none")), "--checkpoint")
    assert_one_line_error(likra("serve", "--checkpoint", str(runs / "both"), "--port", "70000"), "--port 70000")


def test_over_http_a_full_queue_is_503_and_a_scorer_failure_500(loop):
    """The app around a slow fake scorer, served by uvicorn in a thread."""
    import uvicorn

    from likra.server import create_app

    scorer = SlowScorer()
    scorer.info = lambda: {"checkpoint": "fake", "mode": "likra"}
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(scorer, ServeConfig(max_queue=1)), port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: server.started)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(call, url + "/score", {"text_1": "fail", "text_2": ["a"]})
        assert scorer.entered.wait(10)
        second = pool.submit(call, url + "/score", {"text_1": "q", "text_2": ["bb"]})
        wait_until(lambda: call(url + "/health")[1]["queued"] == 1)
        assert call(url + "/score", {"text_1": "q", "text_2": ["c"]}) == (503, {"error": "busy: the queue is full, "
                                                                                       "retry later"})  # fmt: skip
        scorer.release.set()
        assert first.result(10) == (500, {"error": "RuntimeError: scorer failed"})
        status, body = second.result(10)
    assert status == 200 and body["data"][0]["score"] == 2.0
    server.should_exit = True
