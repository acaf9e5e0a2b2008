"""likra.server: a real `likra serve` process on localhost, every endpoint, bad requests answered 4xx while it
keeps serving and logs no traceback; the batcher (concurrent requests share scorer calls, a full queue is 503, a
failing request fails alone) with fake scorers; the app in-process under Hypothesis (no body is a 500)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from likra.errors import LikraError
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
def server_log(tmp_path_factory):
    """Where the served process writes its stderr (a file: a pipe nobody reads would fill and stall it)."""
    return tmp_path_factory.mktemp("serve") / "stderr.log"


@contextmanager
def serving(checkpoint: Path, log_path: Path, *options: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`python -m likra serve` on a free port, its stderr into ``log_path``: (URL, process) once /health answers;
    stopped at the end."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    args = ["serve", "--checkpoint", str(checkpoint), "--port", str(port), *options]
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "likra", *args], env=env, stdout=subprocess.DEVNULL,
                                   stderr=log, text=True)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            if process.poll() is not None:
                pytest.fail(f"likra serve exited: {log_path.read_text()}")
            try:
                if call(url + "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        try:
            yield url, process
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(runs, server_log):
    """The tiny checkpoint served, with small limits; stopped after the module."""
    with serving(runs / "both", server_log, "--max-body", "20000", "--max-answers", "8") as served:
        yield served


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
        ("/score", b'{"text_1": ' + b"1" * 5000 + b"}", 400, "malformed JSON (an integer of more than 4300 digits)"),
        ("/score", b'{"text_1": "q", "text_2": ["a", "\\ud800"]}', 422, "text_2[1]: text with a lone surrogate"),
        ("/score", b'{"model": "\\udfff", "text_1": "q", "text_2": "a"}', 422, "model: text with a lone surrogate"),
        ("/get_reward", b'{"prompts": ["p"], "query": ["p \\ud83d"]}', 422, "query[0]: text with a lone surrogate"),
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
        if any(a == "refused" for r in rows for a in r.answers):
            raise LikraError("refused")
        return [{"score": float(len(a)), **FAKE} for r in rows for a in r.answers]


def submit(batcher: Batcher, loop, rows: list[Row]):
    import asyncio

    return asyncio.run_coroutine_threadsafe(batcher.score(rows), loop)


def busy(loop, first: list[Row], max_batch: int = 64, max_queue: int = 8):
    """A batcher whose worker is scoring ``first`` (held until ``scorer.release``): what is submitted next queues."""
    scorer = SlowScorer()
    batcher = Batcher(scorer, max_batch=max_batch, max_queue=max_queue)
    job = submit(batcher, loop, first)
    assert scorer.entered.wait(10)
    return scorer, batcher, job


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
    scorer, batcher, first = busy(loop, rows("a"))
    waiting = [submit(batcher, loop, rows("bb", "ccc")) for _ in range(4)]
    wait_until(lambda: batcher.jobs.qsize() == 4)
    scorer.release.set()
    assert first.result(10) == [{"score": 1.0, **FAKE}]
    assert all(w.result(10) == [{"score": 2.0, **FAKE}, {"score": 3.0, **FAKE}] for w in waiting)
    assert scorer.batches == [1, 8] and batcher.calls == 2 and batcher.requests == 5 and batcher.answers == 9


def test_a_batch_stops_at_max_batch_answers(loop):
    scorer, batcher, _ = busy(loop, rows("a"), max_batch=4)
    waiting = [submit(batcher, loop, rows("b", "c")) for _ in range(3)]
    wait_until(lambda: batcher.jobs.qsize() == 3)
    scorer.release.set()
    [w.result(10) for w in waiting]
    assert scorer.batches == [1, 4, 2]  # two requests (4 answers) fill a call, the third waits for the next


def test_a_full_queue_is_busy_and_a_scorer_failure_answers_only_its_batch(loop):
    scorer, batcher, failing = busy(loop, rows("a", question="fail"), max_queue=1)
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
    [("max_batch", 0, "--max-batch 0"), ("max_queue", -1, "--max-queue -1"), ("port", 70000, "--port 70000"),
     ("host", "256.1.1.1", "--host 256.1.1.1: not an address"), ("host", "a..b", "--host a..b"),
     ("host", "", "--host : not an address")],
)  # fmt: skip
def test_serve_options_are_checked(field, value, fragment):
    with pytest.raises(LikraError, match=fragment):
        ServeConfig(**{field: value})


@pytest.mark.parametrize("host", ["localhost", "0.0.0.0", "::", "127.0.0.1"])
def test_a_host_of_this_machine_or_a_name_is_accepted(host):
    assert ServeConfig(host=host).host == host


def test_likra_serve_checks_its_options_before_loading(runs, tmp_path):
    from .test_cli import assert_one_line_error, likra

    assert_one_line_error(likra("serve", "--checkpoint", str(tmp_path / "none")), "--checkpoint")
    assert_one_line_error(likra("serve", "--checkpoint", str(runs / "both"), "--port", "70000"), "--port 70000")
    assert_one_line_error(likra("serve", "--checkpoint", str(runs / "both"), "--host", "256.1.1.1"),
                          "--host 256.1.1.1: not an address of this machine")  # fmt: skip


def test_likra_serve_names_a_port_in_use_before_loading(runs):
    from .test_cli import assert_one_line_error, likra

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = likra("serve", "--checkpoint", str(runs / "both"), "--port", port)
    assert_one_line_error(result, f"--host 127.0.0.1 --port {port}: address already in use")
    assert result.stdout == ""  # the model was not loaded (its line would be here)


def test_an_address_not_of_this_machine_is_named_when_bound():
    from likra.server import listen

    with pytest.raises(LikraError, match=r"--host 192\.0\.2\.1 --port 8000: cannot assign requested address"):
        listen(ServeConfig(host="192.0.2.1"))  # a documentation address (TEST-NET-1): resolvable, nobody's


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


def test_good_requests_batched_beside_a_failing_one_get_their_numbers(loop):
    """A call failing on one request's answers is tried again request by request: only the culprit gets the error."""
    scorer, batcher, _ = busy(loop, rows("a"))
    goods = [submit(batcher, loop, rows("bb", "ccc")) for _ in range(3)]
    failing, refused = submit(batcher, loop, rows("a", question="fail")), submit(batcher, loop, rows("refused"))
    more = [submit(batcher, loop, rows("dddd")) for _ in range(3)]
    wait_until(lambda: batcher.jobs.qsize() == 8)
    scorer.release.set()
    assert all(g.result(10) == [{"score": 2.0, **FAKE}, {"score": 3.0, **FAKE}] for g in goods)
    assert all(m.result(10) == [{"score": 4.0, **FAKE}] for m in more)
    with pytest.raises(RuntimeError, match="scorer failed"):
        failing.result(10)
    with pytest.raises(LikraError, match="refused"):  # answered 422 over HTTP
        refused.result(10)
    assert scorer.batches == [1, 11, 2, 2, 2, 1, 1, 1, 1, 1]  # the batch, then each of its requests alone


def test_a_request_given_up_on_does_not_stop_the_worker(loop):
    """A request cancelled while it waits (its task given up on) is skipped; before, setting its result killed the
    worker thread and every later request waited forever."""
    scorer, batcher, first = busy(loop, rows("a"), max_batch=1)
    given_up = submit(batcher, loop, rows("bb"))
    wait_until(lambda: batcher.jobs.qsize() == 1)
    given_up.cancel()
    wait_until(lambda: batcher.jobs.queue[0][1].cancelled())  # the cancellation reached the queued job
    scorer.release.set()
    assert first.result(10) == [{"score": 1.0, **FAKE}]
    assert submit(batcher, loop, rows("ccc")).result(10) == [{"score": 3.0, **FAKE}]


def raw(url: str, body: bytes | Iterable[bytes], headers: dict[str, str] | None = None) -> tuple[int, dict]:
    """(status, JSON body) of a POST /score sent with http.client: ``body`` an iterable of bytes goes chunked."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        chunked = not isinstance(body, bytes)
        connection.request("POST", "/score", body=body, headers=headers or {}, encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_chunked_body_over_max_body_is_413(server):
    url, process = server
    assert raw(url, (b"x" * 1000 for _ in range(30))) == (413, {"error": "request body over 20000 bytes"})
    assert process.poll() is None and call(url + "/health")[0] == 200


def test_a_header_over_the_limit_is_431_not_a_reset(server):
    url, process = server
    status, body = raw(url, b"{}", {"X-Big": "a" * 200_000})
    assert status == 431 and body == {"error": "request line and headers over 16384 bytes"}
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as garbled:  # not HTTP: 400, in the same shape
        garbled.sendall(b"NOT HTTP\r\n\r\n")
        head, _, answer = garbled.makefile("rb").read().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and json.loads(answer) == {"error": "Invalid HTTP request received."}
    assert process.poll() is None and call(url + "/health")[0] == 200


def test_client_faults_leave_no_traceback_in_the_log(server, server_log):
    """Each fault a client makes is at most one line of the server's log, never a traceback."""
    url, process = server
    before = server_log.stat().st_size
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as gone:  # leaves mid-body
        gone.sendall(b'POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"text_1": ')
        time.sleep(0.2)
    faults = [status_of(lambda: call(url + "/score", b"{not json")),
              status_of(lambda: call(url + "/score", b"x" * 30000)),
              status_of(lambda: raw(url, (b"x" * 1000 for _ in range(30)))),
              status_of(lambda: raw(url, b"{}", {"X-Big": "a" * 200_000})),
              status_of(lambda: call(url + "/score", b'{"text_1": "q", "text_2": "\\ud800"}'))]  # fmt: skip
    time.sleep(0.5)  # the server logs what it logs after it answered
    with server_log.open() as log:
        log.seek(before)
        lines = log.read().splitlines()
    assert "Traceback" not in "\n".join(lines) and len(lines) <= 1 + len(faults), "\n".join(lines)
    assert faults == [400, 413, 413, 431, 422] and process.poll() is None


def status_of(send: Callable[[], tuple[int, dict]]) -> int | str:
    """The status of ``send()``'s answer, or the error that came instead (a reset: no answer at all)."""
    try:
        return send()[0]
    except OSError as err:
        return type(err).__name__


class Tokenizing:
    """A fake verifier: an answer's score is a function of its text alone, and a text the tokenizer refuses (a lone
    surrogate) fails the whole call with TypeError, as the real tokenizer does."""

    def info(self) -> dict:
        return {"checkpoint": "fake", "mode": "likra"}

    def score(self, rows: list[Row]) -> list[dict]:
        answers = [a for r in rows for a in r.answers]
        if any(not encodable(r.question + a) for r in rows for a in r.answers):
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, Tuple[InputSequence, InputSequence]]")
        return [{"score": float(sum(map(ord, a)) % 997), **FAKE} for a in answers]


def encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


TEXT = st.text(min_size=1, max_size=12)
# half of these with lone surrogates (as an alphabet, text() would draw the 2048 of them among all code points)
ANY_TEXT = TEXT | st.lists(st.characters() | st.characters(categories=["Cs"]), max_size=12).map("".join)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
                    max_leaves=12)  # fmt: skip
FIELD = st.one_of(ANY_TEXT, st.lists(ANY_TEXT, max_size=10), JSON)
FIELDS = ("model", "text_1", "text_2", "query", "prompts", "responses")
SOME_TEXT = st.one_of(TEXT, TEXT, TEXT, ANY_TEXT)  # mostly scored: one bad text refuses a whole request
TEXTS = SOME_TEXT | st.lists(SOME_TEXT, min_size=1, max_size=9)  # 9: over --max-answers
PAIRS = st.lists(st.tuples(SOME_TEXT, SOME_TEXT), min_size=1, max_size=4)  # (prompt, response)
REQUESTS = st.one_of(  # (path, body)
    st.tuples(st.sampled_from(["/score", "/get_reward"]),
              st.binary(max_size=200) | JSON | st.fixed_dictionaries({}, optional=dict.fromkeys(FIELDS, FIELD))),
    # the shapes each endpoint takes, so that many are scored: texts in its fields, queries starting with prompts
    st.tuples(st.just("/score"),
              st.fixed_dictionaries({"text_1": TEXTS, "text_2": TEXTS}, optional={"model": ANY_TEXT | JSON})),
    st.tuples(st.just("/get_reward"),
              PAIRS.map(lambda pairs: {"prompts": [p for p, _ in pairs], "responses": [r for _, r in pairs]})
              | PAIRS.map(lambda pairs: {"prompts": [p for p, _ in pairs], "query": [f"{p} {r}" for p, r in pairs]})),
)  # fmt: skip


@pytest.fixture(scope="module")
def client(runs):
    """The app in-process around the tiny checkpoint's verifier (its real tokenizer), through Starlette's client."""
    from starlette.testclient import TestClient

    from likra.server import create_app

    verifier = Verifier(str(runs / "both"))
    app = create_app(verifier, ServeConfig(max_body=2000, max_answers=8))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    verifier.close()


@settings(max_examples=100, deadline=None)
@given(request=REQUESTS)
def test_no_body_is_answered_500(client, request):
    path, body = request
    body = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code in (200, 400, 413, 422), response.text
    if response.status_code != 200:
        assert "\n" not in response.json()["error"]


@pytest.fixture(scope="module")
def tokenizing():
    """A batcher around the fake tokenizing verifier (one for the module: each starts a worker thread)."""
    return Batcher(Tokenizing(), max_batch=64, max_queue=8)


REQUEST = st.lists(ANY_TEXT.filter(str.strip), min_size=1, max_size=3)  # a request's answers
GOOD = REQUEST.filter(lambda answers: all(map(encodable, answers)))


@settings(max_examples=100, deadline=None)
@given(good=GOOD, others=st.lists(REQUEST, max_size=6), at=st.integers(0, 6))
def test_a_good_requests_answer_is_the_same_whatever_is_batched_beside_it(tokenizing, good, others, at):
    """One scorer call for all the requests (as the worker makes it): the good one gets its numbers alone, each
    other its own numbers or, holding a text the tokenizer refuses, its own error."""
    batch = [(rows(*answers), Future()) for answers in others]
    batch.insert(min(at, len(batch)), (rows(*good), Future()))
    tokenizing._run(batch)
    for job, future in batch:
        alone = Tokenizing().score(job) if all(encodable(r.answers[0]) for r in job) else None
        if alone is None:
            assert isinstance(future.exception(0), TypeError)
        else:
            assert future.result(0) == alone


# --- access (issue 39) --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed():
    """A real HTTP server (uvicorn, in a thread) with --api-key around a fake verifier: its URL."""
    import uvicorn

    from likra.server import HTTPProtocol, create_app, listen

    config = ServeConfig(port=free_port(), api_key="s3cret-key")
    app = create_app(Tokenizing(), config)
    server = uvicorn.Server(uvicorn.Config(app, http=HTTPProtocol, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": listen(config)}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{config.port}"
    wait_until(lambda: server.started)
    yield url
    server.should_exit = True
    thread.join(10)


def keyed_call(url: str, key: str | None, body: dict | None = None) -> tuple[int, dict, str | None]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key is not None else {})
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body else None, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), err.headers.get("WWW-Authenticate")


def test_with_a_key_every_endpoint_but_health_needs_it(keyed):
    body = {"text_1": "q", "text_2": ["a", "bb"]}
    for key in (None, "wrong", "s3cret-ke", "S3cret-key", "s3cret-key2"):
        status, answer, challenge = keyed_call(keyed + "/score", key, body)
        assert (status, challenge) == (401, "Bearer") and "API key" in answer["error"]
        assert keyed_call(keyed + "/info", key)[0] == 401
    assert keyed_call(keyed + "/health", None)[0] == 200  # load balancers probe it without a key
    status, answer, _ = keyed_call(keyed + "/score", "s3cret-key", body)
    assert status == 200 and [d["score"] for d in answer["data"]] == [97.0, 196.0]
    assert keyed_call(keyed + "/info", "s3cret-key")[0] == 200


@pytest.mark.parametrize("key", ["", "  ", "a\nb"])
def test_an_empty_or_unprintable_key_is_refused(key):
    with pytest.raises(LikraError, match="--api-key"):
        ServeConfig(api_key=key)


def test_serving_beyond_this_machine_without_a_key_warns_before_loading(runs):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("LIKRA_API_KEY", None)
    args = ["serve", "--checkpoint", str(runs / "both"), "--host", "0.0.0.0", "--port", str(free_port())]
    process = subprocess.Popen([sys.executable, "-m", "likra", *args], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        first = process.stderr.readline()
    finally:
        process.kill()
        process.wait()
    assert first.startswith("likra: serving on 0.0.0.0 without --api-key: anyone who reaches this address")


# --- the shapes practitioners' programs send (issue 39) -------------------------------------------------


def test_vllms_newer_score_field_names_pair_as_text_1_and_text_2(server, expected):
    url, _ = server
    want = pytest.approx([a["score"] for a in expected], abs=1e-6)
    for first, second in (("queries", "documents"), ("queries", "items"), ("data_1", "data_2")):
        status, body = call(url + "/score", {first: QUESTION, second: ANSWERS})
        assert status == 200 and [d["score"] for d in body["data"]] == want, (first, body)
    status, body = call(url + "/score", {"queries": [QUESTION, QUESTION], "documents": ANSWERS})
    assert status == 422 and "queries and documents: a list of questions needs a list of as many" in body["error"]
    status, body = call(url + "/score", {"text_1": QUESTION})
    assert status == 422 and "give the two sides as text_1 and text_2" in body["error"]


def test_a_cohere_shaped_rerank_ranks_as_likra_score_candidates(server, runs, tmp_path):
    """The request LiteLLM's cohere provider sends (POST {api_base}/v2/rerank, Bearer key, return_documents) and
    the cohere SDK's v1 client (/v1/rerank, objects with a text) get likra score --candidates' ranking."""
    from .test_cli import likra

    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": "q", "question": QUESTION, "candidates": ANSWERS}) + "\n")
    assert likra("score", "--checkpoint", str(runs / "both"), "--input", str(rows), "--out", str(tmp_path / "o"),
                 data_dir=None).returncode == 0  # fmt: skip
    scored = [json.loads(line) for line in (tmp_path / "o").read_text().splitlines()]
    by_rank = [a["index"] for a in sorted(scored, key=lambda a: a["rank"])]
    url, _ = server
    litellm = {"model": "likra", "query": QUESTION, "documents": ANSWERS, "top_n": 2, "return_documents": True}
    status, body = call_with(url + "/v2/rerank", litellm, {"Authorization": "Bearer sk-anything"})
    assert status == 200 and [r["index"] for r in body["results"]] == by_rank[:2]
    assert [r["document"]["text"] for r in body["results"]] == [ANSWERS[i] for i in by_rank[:2]]
    assert [r["relevance_score"] for r in body["results"]] == pytest.approx([scored[i]["score"] for i in by_rank[:2]])
    assert body["model"] == "likra" and body["id"].startswith("rerank-") and body["usage"]["total_tokens"] > 0
    cohere_v1 = {"model": "likra", "query": QUESTION, "documents": [{"text": a} for a in ANSWERS],
                 "return_documents": False}  # fmt: skip
    for path in ("/v1/rerank", "/rerank"):
        status, body = call(url + path, cohere_v1)
        assert status == 200 and [r["index"] for r in body["results"]] == by_rank
        assert "document" not in body["results"][0]
    status, body = call(url + "/rerank", {**litellm, "top_n": -1})
    assert status == 422 and body["error"].startswith("top_n")


def call_with(url: str, body: dict, headers: dict[str, str]) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", "accept": "application/json", **headers}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, json.loads(response.read())


def test_openrlhfs_remote_reward_request_gets_the_verifiers_scores(server, runs, tokenizer):
    """OpenRLHF 0.11 (openrlhf/utils/agent.py; the package needs flash-attn and deepspeed, so its request is built
    here as that code builds it):

        query = hf_tokenizer.decode(output["observation_tokens"], skip_special_tokens=False)      # agent.py:283
        rewards_info_list = await self._fetch_rewards_via_http([query], [prompt], [label])         # agent.py:287
        payload = {"query": queries_list[start_idx:end_idx], "prompts": prompts_list[start_idx:end_idx],
                   "labels": labels_list[start_idx:end_idx]}                                       # agent.py:330-334
        async with session.post(url, json=data) as response:                                     # agent.py:340
            response.raise_for_status(); return await response.json()
        score_value = rewards_info.get("scores") ... reward=rewards_info.get("rewards"),
            extra_logs=rewards_info.get("extra_logs") or {}                                        # agent.py:290-296

    with the prompt templated as its dataset does (prompts_dataset.py:26-45: apply_chat_template(chat,
    tokenize=False, add_generation_prompt=True)) and the response ending with the end-of-turn token."""
    import asyncio

    import aiohttp

    url, _ = server
    chat = [{"role": "user", "content": QUESTION}]
    prompt = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(text=prompt, add_special_tokens=False)["input_ids"]

    async def post(answer: str) -> dict:
        action_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        query = tokenizer.decode(prompt_ids + action_ids, skip_special_tokens=False)
        payload = {"query": [query], "prompts": [prompt], "labels": ["carbon dioxide"]}
        timeout = aiohttp.ClientTimeout(total=180)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.post(url + "/get_reward",
                                                                                   json=payload) as response:
            response.raise_for_status()
            return await response.json()

    async def all_answers() -> list[dict]:
        return await asyncio.gather(*(post(a) for a in ANSWERS))  # one sample per POST, concurrently

    found = asyncio.run(all_answers())
    verifier = Verifier(str(runs / "both"))
    want = verifier.score([Row(str(i), prompt, [a], False) for i, a in enumerate(ANSWERS)])
    verifier.close()
    for info, answer in zip(found, want, strict=True):
        assert info["rewards"] == info["scores"] == pytest.approx([answer["score"]], abs=1e-6)
        assert info["extra_logs"] == {"likra_score": info["scores"]}
    status, empty = call(url + "/get_reward", {"query": [], "prompts": [], "labels": []})  # 0.11.0's 2nd..nth URL
    assert status == 200 and empty == {"rewards": [], "scores": [], "extra_logs": {"likra_score": []}}


# --- TRL's reward function (issue 39) -------------------------------------------------------------------

PROMPTS = ["Which gas do plants take in?", "What do bees make?", "What melts ice?", "Which planet is red?"]


def verifier_scores(runs, pairs: list[tuple[str, str]]) -> list[float]:
    verifier = Verifier(str(runs / "both"))
    try:
        return [a["score"] for a in verifier.score([Row(str(i), q, [a], False) for i, (q, a) in enumerate(pairs)])]
    finally:
        verifier.close()


def recording(reward: Callable, name: str, calls: list) -> Callable:
    """``reward`` under ``name`` (TRL logs rewards/<name>/mean), keeping every (prompts, completions, rewards)."""

    def record(prompts, completions, **kwargs):
        values = reward(prompts, completions, **kwargs)
        calls.append((prompts, completions, values))
        return values

    record.__name__ = name
    return record


def test_grpo_trains_two_steps_with_likras_reward_in_process_and_from_the_server(runs, tiny_model_dir, server,
                                                                                  tmp_path):  # fmt: skip
    """A real trl.GRPOTrainer (2 optimisation steps on the tiny model, CPU) with two likra rewards: the checkpoint in
    this process and the same checkpoint served. Each step logs rewards/<name>/mean, the mean of what each gave;
    both gave the verifier's scores of the completions."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from likra.rewards import LikraReward, answer_of, question_of

    local, remote = LikraReward(runs / "both"), LikraReward(url=server[0])
    calls: dict[str, list] = {"likra_local": [], "likra_served": []}
    args = GRPOConfig(output_dir=str(tmp_path / "grpo"), max_steps=2, per_device_train_batch_size=2,
                      num_generations=2, max_completion_length=8, logging_steps=1, report_to="none", use_cpu=True,
                      bf16=False, gradient_checkpointing=False, save_strategy="no", seed=0)  # fmt: skip
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), args=args,
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
        reward_funcs=[recording(local, "likra_local", calls["likra_local"]),
                      recording(remote, "likra_served", calls["likra_served"])],
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
    )  # fmt: skip
    try:
        trainer.train()
    finally:
        local.close()
    assert trainer.state.global_step == 2
    for name, made in calls.items():
        logged = [h[f"rewards/{name}/mean"] for h in trainer.state.log_history if f"rewards/{name}/mean" in h]
        assert len(logged) == len(made) == 2
        for mean, (prompts, completions, values) in zip(logged, made, strict=True):
            pairs = [(question_of(p), answer_of(c)) for p, c in zip(prompts, completions, strict=True)]
            kept = [(pair, v) for pair, v in zip(pairs, values, strict=True) if v is not None]
            assert kept and all(v is None for (_, a), v in zip(pairs, values, strict=True) if not a.strip())
            assert [v for _, v in kept] == pytest.approx(verifier_scores(runs, [p for p, _ in kept]), abs=1e-5)
            assert mean == pytest.approx(sum(v for _, v in kept) / len(kept), abs=1e-5)


def test_conversations_the_async_reward_a_key_and_what_it_refuses(runs, keyed):
    import asyncio
    import math

    from likra.rewards import AsyncLikraReward, LikraReward

    reward = AsyncLikraReward(runs / "both")
    try:
        prompts = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPTS[1]}],
                   [{"role": "user", "content": [{"type": "text", "text": PROMPTS[0]}]}]] * 2  # fmt: skip
        completions = [[{"role": "assistant", "content": text}] for text in ("honey", "oxygen", "  ", "carbon")]
        values = asyncio.run(reward(prompts=prompts, completions=completions, completion_ids=None, trainer_state=None))
        assert values[2] is None  # an empty completion is left out of the reward, as TRL reads None
        want = verifier_scores(runs, [(PROMPTS[1], "honey"), (PROMPTS[0], "oxygen"), (PROMPTS[0], "carbon")])
        assert [values[0], values[1], values[3]] == pytest.approx(want, abs=1e-6) and not math.isnan(values[0])
    finally:
        reward.close()
    with pytest.raises(LikraError, match="p_correct needs a calibrated checkpoint"):
        LikraReward(runs / "both", value="p_correct")
    with pytest.raises(LikraError, match="not both"):
        LikraReward(runs / "both", url="http://127.0.0.1:1")
    with pytest.raises(LikraError, match="401"):  # a keyed server refuses a reward without its key
        LikraReward(url=keyed)(["q"], ["a"])
    assert LikraReward(url=keyed, api_key="s3cret-key")(["q", "q"], ["a", "bb"]) == [97.0, 196.0]
