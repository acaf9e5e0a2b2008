"""Likra's verifier over HTTP: ``likra serve`` (FastAPI app, uvicorn server).

Endpoints: ``POST /score`` in vLLM's shape (``{"text_1": question, "text_2": [answers]}`` → ``{"data": [{"index",
"score"}], ...}``, with Likra's per-head numbers and ``p_correct`` beside), ``POST /get_reward`` in the shape
OpenRLHF's remote reward model is called (``{"query": [prompt + response], "prompts": [prompt]}`` or
``{"prompts", "responses"}`` → ``{"rewards": [...]}``), ``GET /health``, ``GET /info``.

Requests are batched: handlers put their rows on a bounded queue, and one worker thread takes every request
waiting (up to ``max_batch`` answers) into a single scorer call (the engine is fastest on many answers at once,
and one thread owns the model); a call that fails is tried again request by request, so only the request that
failed it gets the error. A full queue is answered 503, a body over ``max_body`` bytes 413 (with or without
Content-Length), a request line and headers over 16 KiB 431, JSON that Python cannot read 400, wrong fields or
text no tokenizer encodes (a lone surrogate) 422, each with a one-line JSON error; nothing a client sends
stops the server or leaves a traceback in its log (a server fault, answered 500, does). The sockets are bound
before the model loads, so a port in use is one line naming ``--host``/``--port`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import ipaddress
import json
import logging
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import h11
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol

from likra.configs import ServeConfig, VerifierConfig
from likra.errors import LikraError
from likra.files import BadJSON, load_json, unencodable_field
from likra.progress import OnLoad, quiet
from likra.verifier import Row, Verifier

T = TypeVar("T", bound=BaseModel)


# vLLM's /score names its two sides in any of these pairs (vllm/entrypoints/.../scoring: text_1/text_2 first,
# queries/documents, queries/items and data_1/data_2 since)
SCORE_PAIRS = (("text_1", "text_2"), ("queries", "documents"), ("queries", "items"), ("data_1", "data_2"))


class ScoreRequest(BaseModel):
    """vLLM's score request: one question and its answers, or questions and answers pairwise, under any of the
    field names of ``SCORE_PAIRS``."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    text_1: str | list[Any] | None = None
    text_2: str | list[Any] | None = None
    queries: str | list[Any] | None = None
    documents: str | list[Any] | None = None
    items: str | list[Any] | None = None
    data_1: str | list[Any] | None = None
    data_2: str | list[Any] | None = None


class RerankRequest(BaseModel):
    """The Cohere/Jina rerank request vLLM, Infinity, LiteLLM and the ``cohere`` SDK send: a query and documents
    (strings, or Cohere v1's ``{"text": ...}``), the best ``top_n`` (0 or absent: all) back."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    query: str
    documents: list[str | dict[str, Any]]
    top_n: int | None = Field(None, ge=0)
    return_documents: bool = True


class RewardRequest(BaseModel):
    """OpenRLHF's remote reward request: ``query`` (prompt + response as its tokenizer decodes them, special tokens
    included), ``prompts`` and ``labels`` (accepted, unused: the verifier needs no reference), one sample per POST
    in 0.11; or prompts and responses apart."""

    model_config = ConfigDict(extra="ignore")
    query: list[Any] | None = None
    prompts: list[Any]
    responses: list[Any] | None = None
    labels: list[Any] | None = None


def texts(value: str | list[Any] | None, name: str) -> list[str]:
    """A field's texts, each a non-empty string (a LikraError naming the field, answered 422)."""
    values = [value] if isinstance(value, str) else value
    if not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise LikraError(f"{name}: expected a non-empty string or a non-empty list of non-empty strings")
    return values


class Busy(Exception):
    """The queue is full (answered 503)."""


class Rejected(Exception):
    """A request answered with ``status`` and a one-line ``message`` (400 malformed JSON, 413 too many answers)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Batcher:
    """One worker thread scoring every waiting request together (up to ``max_batch`` answers per call)."""

    def __init__(self, verifier: Any, max_batch: int, max_queue: int):
        self.verifier, self.max_batch = verifier, max_batch
        self.jobs: queue.Queue[tuple[list[Row], Future]] = queue.Queue(maxsize=max_queue)
        # scorer calls, requests and answers so far (GET /health reports them: requests/calls is the batching)
        self.calls = self.requests = self.answers = 0
        threading.Thread(target=self._work, name="likra-scorer", daemon=True).start()

    async def score(self, rows: list[Row]) -> list[dict[str, Any]]:
        future: Future = Future()
        try:
            self.jobs.put_nowait((rows, future))
        except queue.Full:
            raise Busy from None
        return await asyncio.wrap_future(future)

    def _work(self) -> None:
        while True:
            batch: list[tuple[list[Row], Future]] = []
            size = 0
            while size < self.max_batch:
                try:
                    rows, future = self.jobs.get(block=not batch)  # waits for a first request, takes those waiting
                except queue.Empty:
                    break
                # a request cancelled while it waited (its caller gave up) is left out: setting its result would
                # raise and end this thread, and every later request would wait forever
                if future.set_running_or_notify_cancel():
                    batch.append((rows, future))
                    size += sum(len(r.answers) for r in rows)
            self._run(batch)

    def _run(self, batch: list[tuple[list[Row], Future]]) -> None:
        try:
            answers = self.verifier.score([row for rows, _ in batch for row in rows])
            self.calls += 1
            self.requests += len(batch)
            self.answers += len(answers)
        except Exception as err:  # a scoring failure answers its request (500, 422 if a LikraError); the worker goes on
            if len(batch) == 1:
                batch[0][1].set_exception(err)
            else:  # one request can fail a whole call: each alone, so that only the culprit gets the error
                for job in batch:
                    self._run([job])
            return
        at = 0
        for rows, future in batch:
            n = sum(len(r.answers) for r in rows)
            future.set_result(answers[at : at + n])
            at += n


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 before it is all read."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await error(413, f"request body over {self.limit} bytes")(scope, receive, send)
        seen = 0

        async def limited() -> dict:  # a chunked body declares no length: counted as it comes
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise Rejected(413, f"request body over {self.limit} bytes")  # answered by the app's handler
            return message

        await self.app(scope, limited, send)


class KeyCheck:
    """ASGI middleware: every request but ``GET /health`` (load balancers probe it) carries ``Authorization: Bearer
    KEY``, as OpenAI-style clients send it, or is answered 401; compared in constant time, so how long a refusal
    takes tells nothing about the key."""

    OPEN = ("/health",)

    def __init__(self, app: Any, key: str):
        self.app, self.expected = app, f"Bearer {key}".encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] not in self.OPEN:
            given = dict(scope.get("headers", [])).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                refusal = error(401, "missing or wrong API key: send 'Authorization: Bearer KEY'")
                refusal.headers["WWW-Authenticate"] = "Bearer"
                return await refusal(scope, receive, send)
        await self.app(scope, receive, send)


def _answer_errors(app: FastAPI) -> None:
    """Every refusal is one exception type answered by one handler, so the endpoints read straight through."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))  # 404, 405: the same one-line shape as ours

    @app.exception_handler(Rejected)
    async def rejected(request: Request, exc: Rejected) -> JSONResponse:
        return error(exc.status, str(exc))

    @app.exception_handler(LikraError)
    async def invalid(request: Request, exc: LikraError) -> JSONResponse:
        return error(422, str(exc))

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> JSONResponse:
        return error(503, "busy: the queue is full, retry later")

    @app.exception_handler(ClientDisconnect)
    async def gone(request: Request, exc: ClientDisconnect) -> Response:
        # the client left mid-body: nobody reads this answer (nginx's 499), and an expected event logs no traceback
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        return error(500, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def create_app(verifier: Any, config: ServeConfig | None = None) -> FastAPI:
    """The FastAPI app serving ``verifier`` (a ``likra.Verifier``, or anything with ``score`` and ``info``)."""
    config = config or ServeConfig()
    app = FastAPI(title="likra verifier", docs_url=None, redoc_url=None)
    batcher = Batcher(verifier, config.max_batch, config.max_queue)
    info = verifier.info()
    app.state.batcher = batcher
    special_tokens = tuple(getattr(verifier, "special_tokens", ()))  # what OpenRLHF's query carries after a response
    calibrated = bool(info.get("calibration"))

    _answer_errors(app)

    async def answers_of(rows: list[Row]) -> list[dict[str, Any]]:
        count = sum(len(r.answers) for r in rows)
        if count > config.max_answers:
            raise Rejected(413, f"{count} answers in one request; at most {config.max_answers}")
        return await batcher.score(rows)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "queued": batcher.jobs.qsize(), "requests": batcher.requests,
                "answers": batcher.answers, "scorer_calls": batcher.calls}  # fmt: skip

    @app.get("/info")
    async def describe() -> dict[str, Any]:
        return info

    @app.post("/score")
    async def score(request: Request) -> dict[str, Any]:
        body = await parse(request, ScoreRequest)
        found = await answers_of(_score_rows(body))
        data = [{"index": i, "object": "score", "score": a["score"], "p_correct": a.get("p_correct"),
                 "likra": {k: a[k] for k in ("loglikelihood", "per_char", "n_chars")}}
                for i, a in enumerate(found)]  # fmt: skip
        return {"id": f"score-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()),
                "model": body.model or info["checkpoint"], "data": data, "mode": info["mode"]}  # fmt: skip

    @app.post("/get_reward")
    async def reward(request: Request) -> dict[str, Any]:
        rows = _reward_rows(await parse(request, RewardRequest), special_tokens)
        found = await answers_of(rows) if rows else []  # OpenRLHF 0.11.0 sends empty lists to its 2nd..nth URLs
        scores = [a["score"] for a in found]
        extra = {"likra_score": scores} | ({"p_correct": [a["p_correct"] for a in found]} if calibrated else {})
        return {"rewards": [a.get("p_correct", a["score"]) for a in found], "scores": scores, "extra_logs": extra}

    @app.post("/rerank")
    @app.post("/v1/rerank")
    @app.post("/v2/rerank")
    async def rerank(request: Request) -> dict[str, Any]:
        body = await parse(request, RerankRequest)
        found = await answers_of([Row("0", texts(body.query, "query")[0], _documents(body.documents), True)])
        return {"id": f"rerank-{uuid.uuid4().hex}", "model": body.model or info["checkpoint"],
                "results": _ranked(found, body.top_n, body.return_documents),
                "usage": {"total_tokens": sum(a["n_tokens"] for a in found)}}  # fmt: skip

    limited = BodyLimit(app, config.max_body)
    return KeyCheck(limited, config.api_key) if config.api_key else limited  # type: ignore[return-value]


async def parse(request: Request, model: type[T]) -> T:
    """The body as ``model``, whatever the Content-Type (clients send JSON as form data too): malformed JSON is
    400, a wrong field 422, each with a one-line message naming the field."""
    try:
        data = load_json(await request.body())
    except BadJSON as err:
        raise Rejected(400, f"malformed JSON ({err})") from None
    field = unencodable_field(data)  # well-formed JSON, so 422 rather than 400
    if field is not None:  # the tokenizer would fail on it, and with it every request batched beside it
        raise Rejected(422, f"{field}: text with a lone surrogate (such as \\ud800), which no tokenizer encodes")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise Rejected(422, f"{where}: {first.get('msg', 'invalid')}") from None


def _score_rows(body: ScoreRequest) -> list[Row]:
    """vLLM's pairing: one question with every answer, or questions and answers pairwise (same length)."""
    given = [pair for pair in SCORE_PAIRS if getattr(body, pair[0]) is not None and getattr(body, pair[1]) is not None]
    if not given:
        raise LikraError(f"give the two sides as {', '.join(' and '.join(p) for p in SCORE_PAIRS)}")
    first, second = given[0]
    one, other = getattr(body, first), getattr(body, second)
    questions, answers = texts(one, first), texts(other, second)
    if isinstance(one, str):
        return [Row(str(i), questions[0], [a], False) for i, a in enumerate(answers)]
    if isinstance(other, str) or len(questions) != len(answers):
        raise LikraError(f"{first} and {second}: a list of questions needs a list of as many answers")
    return [Row(str(i), q, [a], False) for i, (q, a) in enumerate(zip(questions, answers, strict=True))]


def _documents(documents: list[str | dict[str, Any]]) -> list[str]:
    """Rerank documents: strings, or Cohere v1's objects with a ``text``."""
    found = [d.get("text") if isinstance(d, dict) else d for d in documents]
    return texts(found, "documents")  # type: ignore[arg-type]


def _ranked(found: list[dict[str, Any]], top_n: int | None, documents: bool) -> list[dict[str, Any]]:
    """Cohere's results: best first, as ``likra score --candidates`` ranks them, ``p_correct`` (else the score) as
    the relevance, the best ``top_n`` (0 or None: all)."""
    out = []
    for answer in sorted(found, key=lambda a: a["rank"])[: top_n or None]:
        result = {"index": answer["index"], "relevance_score": answer.get("p_correct", answer["score"])}
        out.append(result | ({"document": {"text": answer["answer"]}} if documents else {}))
    return out


def _reward_rows(body: RewardRequest, special_tokens: tuple[str, ...] = ()) -> list[Row]:
    """Each (prompt, response) scored alone; with ``query``, the response is what follows the prompt, less the
    special tokens the policy's tokenizer decoded after it (OpenRLHF decodes with ``skip_special_tokens=False``:
    ``<|im_end|>``, the end of text)."""
    if (body.query is None) == (body.responses is None):
        raise LikraError("give 'query' (prompt + response, as OpenRLHF sends) or 'responses', with 'prompts'")
    if body.prompts == [] and not (body.query or body.responses):
        return []
    prompts = texts(body.prompts, "prompts")
    if body.responses is not None:
        responses = texts(body.responses, "responses")
    else:
        queries = texts(body.query, "query")
        if len(queries) != len(prompts) or any(not q.startswith(p) for q, p in zip(queries, prompts, strict=True)):
            raise LikraError("query: one per prompt, each starting with its prompt (as OpenRLHF builds it)")
        responses = [_strip_special(q[len(p) :], special_tokens) for q, p in zip(queries, prompts, strict=True)]
    if len(responses) != len(prompts) or not all(r.strip() for r in responses):
        raise LikraError("prompts and responses: as many of each, and no empty response")
    return [Row(str(i), p, [r], False) for i, (p, r) in enumerate(zip(prompts, responses, strict=True))]


def _strip_special(response: str, special_tokens: tuple[str, ...]) -> str:
    """``response`` without the special tokens (and spaces) it ends with."""
    response = response.strip()
    while ending := next((t for t in special_tokens if t and response.endswith(t)), None):
        response = response[: -len(ending)].rstrip()
    return response


def run_server(
    config: VerifierConfig,
    serving: ServeConfig,
    *,
    model: str | None = None,
    dtype: str = "auto",
    on_load: OnLoad = quiet,
    log: Callable[[str], None] = print,
) -> None:
    """``likra serve``: the address bound, the checkpoint opened as a verifier, then served until interrupted."""
    sockets = listen(serving)  # before the model loads: a port in use is said at once
    if not serving.api_key and not all(ipaddress.ip_address(s.getsockname()[0]).is_loopback for s in sockets):
        logging.getLogger("likra").warning(f"likra: serving on {serving.host} without --api-key: anyone who reaches "
                                           "this address can use the verifier (set LIKRA_API_KEY)")  # fmt: skip
    verifier = Verifier(config, model=model, dtype=dtype)
    on_load(verifier.loaded)
    log(f"serving {verifier.step} ({config.mode}, w {config.neg_weight:g}) on http://{serving.host}:{serving.port} · "
        "POST /score, /get_reward · GET /health, /info")  # fmt: skip
    serve(verifier, serving, sockets)


def serve(verifier: Verifier, config: ServeConfig, sockets: list[socket.socket] | None = None) -> None:
    """Run the server until interrupted, on ``sockets`` (default: ``listen(config)``)."""
    app = create_app(verifier, config)
    # h11 named, not uvicorn's "auto" (httptools when installed): HTTPProtocol answers what h11 refuses
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, http=HTTPProtocol,
                                           log_level="warning"))  # fmt: skip
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends it quietly, as uvicorn.run does
        server.run(sockets=sockets or listen(config))


def listen(config: ServeConfig) -> list[socket.socket]:
    """Sockets bound to every address ``--host`` names, as uvicorn would bind them, but refusing in one line that
    names the options (uvicorn logs the OSError and exits 3)."""
    sockets: list[socket.socket] = []
    missing: OSError | None = None
    try:
        found = socket.getaddrinfo(config.host, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in dict.fromkeys(found):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart binds beside closing connections
                if family == socket.AF_INET6:  # "::" beside "0.0.0.0", as asyncio binds them
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sockets.append(sock)
            except OSError as err:
                sock.close()
                if err.errno != errno.EADDRNOTAVAIL:
                    raise
                missing = err  # a family this machine lacks (::1 without IPv6) is left out, as asyncio does
        if not sockets and missing:
            raise missing
    except OSError as err:
        for sock in sockets:
            sock.close()
        raise LikraError(f"--host {config.host} --port {config.port}: {(err.strerror or str(err)).lower()}") from None
    return sockets


HEADER_LIMIT = 16 * 1024  # h11's limit on a request line and headers (uvicorn's default)


class _Connection(h11.Connection):
    """h11's server side, keeping the status its last refusal hints (431: headers over the limit, else 400)."""

    hint = 400

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as err:
            self.hint = err.error_status_hint
            raise


class HTTPProtocol(H11Protocol):
    """uvicorn's h11 protocol, answering a request h11 cannot parse with the status h11 hints (431 for headers over
    16 KiB) and a one-line JSON error, then reading what the client still sends until it stops. uvicorn answers 400
    and closes at once: a client still sending its 200 kB header gets a reset (the kernel resets a connection
    closed with data unread) and never reads the answer."""

    LINGER_S = 5.0  # how long a refused client may go on sending before the connection is closed anyway

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _Connection(h11.SERVER, HEADER_LIMIT)
        self.refused = False

    def data_received(self, data: bytes) -> None:
        if not self.refused:  # once refused, the rest of the request is read and dropped
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        status = self.conn.hint
        text = f"request line and headers over {HEADER_LIMIT} bytes" if status == 431 else msg
        body = json.dumps({"error": text}, separators=(",", ":")).encode()  # as JSONResponse writes it
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]  # fmt: skip
        for event in (h11.Response(status_code=status, headers=headers), h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.refused = True
        self.transport.write_eof()  # the answer, then our end; closed once the client closes its own (eof_received)
        self.loop.call_later(self.LINGER_S, self.transport.close)
