"""Likra's verifier over HTTP: ``likra serve`` (FastAPI app, uvicorn server).

Endpoints: ``POST /score`` in vLLM's shape (``{"text_1": question, "text_2": [answers]}`` → ``{"data": [{"index",
"score"}], ...}``, with Likra's per-head numbers and ``p_correct`` beside), ``POST /get_reward`` in the shape
OpenRLHF's remote reward model is called (``{"query": [prompt + response], "prompts": [prompt]}`` or
``{"prompts", "responses"}`` → ``{"rewards": [...]}``), ``GET /health``, ``GET /info``.

Requests are batched: handlers put their rows on a bounded queue, and one worker thread takes every request
waiting (up to ``max_batch`` answers) into a single scorer call (the engine is fastest on many answers at once,
and one thread owns the model). A full queue is answered 503, a body over ``max_body`` bytes 413, malformed
JSON 400, wrong fields 422, each with a one-line JSON error; nothing a client sends stops the server.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from likra.configs import ServeConfig, VerifierConfig
from likra.errors import LikraError
from likra.progress import OnLoad, quiet
from likra.verifier import Row, Verifier

T = TypeVar("T", bound=BaseModel)


class ScoreRequest(BaseModel):
    """vLLM's score request: one question and its answers, or questions and answers pairwise."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    text_1: str | list[Any]
    text_2: str | list[Any]


class RewardRequest(BaseModel):
    """OpenRLHF's remote reward request (``query`` is prompt + response), or prompts and responses apart."""

    model_config = ConfigDict(extra="ignore")
    query: list[Any] | None = None
    prompts: list[Any]
    responses: list[Any] | None = None


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
            batch = [self.jobs.get()]
            size = sum(len(r.answers) for r in batch[0][0])
            while size < self.max_batch:
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                batch.append(job)
                size += sum(len(r.answers) for r in job[0])
            self._run(batch)

    def _run(self, batch: list[tuple[list[Row], Future]]) -> None:
        try:
            answers = self.verifier.score([row for rows, _ in batch for row in rows])
            self.calls += 1
            self.requests += len(batch)
            self.answers += len(answers)
        except Exception as err:  # a scoring failure answers its requests (500) and the worker goes on
            for _, future in batch:
                future.set_exception(err)
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

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await error(413, f"request body over {self.limit} bytes")(scope, receive, send)


class _TooLarge(Exception):
    pass


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
        found = await answers_of(_reward_rows(await parse(request, RewardRequest)))
        rewards = [a.get("p_correct", a["score"]) for a in found]
        return {"rewards": rewards, "scores": [a["score"] for a in found]}

    return BodyLimit(app, config.max_body)  # type: ignore[return-value]


async def parse(request: Request, model: type[T]) -> T:
    """The body as ``model``, whatever the Content-Type (clients send JSON as form data too): malformed JSON is
    400, a wrong field 422, each with a one-line message naming the field."""
    try:
        data = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise Rejected(400, f"malformed JSON ({err})") from None
    except RecursionError:  # nested deeper than Python's parser goes
        raise Rejected(400, "malformed JSON (nested too deeply)") from None
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise Rejected(422, f"{where}: {first.get('msg', 'invalid')}") from None


def _score_rows(body: ScoreRequest) -> list[Row]:
    """vLLM's pairing: one question with every answer, or questions and answers pairwise (same length)."""
    questions, answers = texts(body.text_1, "text_1"), texts(body.text_2, "text_2")
    if isinstance(body.text_1, str):
        return [Row(str(i), questions[0], [a], False) for i, a in enumerate(answers)]
    if isinstance(body.text_2, str) or len(questions) != len(answers):
        raise LikraError("text_1 and text_2: a list of questions needs a list of as many answers")
    return [Row(str(i), q, [a], False) for i, (q, a) in enumerate(zip(questions, answers, strict=True))]


def _reward_rows(body: RewardRequest) -> list[Row]:
    """Each (prompt, response) scored alone; with ``query``, the response is what follows the prompt."""
    if (body.query is None) == (body.responses is None):
        raise LikraError("give 'query' (prompt + response, as OpenRLHF sends) or 'responses', with 'prompts'")
    prompts = texts(body.prompts, "prompts")
    if body.responses is not None:
        responses = texts(body.responses, "responses")
    else:
        queries = texts(body.query, "query")
        if len(queries) != len(prompts) or any(not q.startswith(p) for q, p in zip(queries, prompts, strict=True)):
            raise LikraError("query: one per prompt, each starting with its prompt")
        responses = [q[len(p) :].lstrip() for q, p in zip(queries, prompts, strict=True)]
    if len(responses) != len(prompts) or not all(r.strip() for r in responses):
        raise LikraError("prompts and responses: as many of each, and no empty response")
    return [Row(str(i), p, [r], False) for i, (p, r) in enumerate(zip(prompts, responses, strict=True))]


def run_server(
    config: VerifierConfig,
    serving: ServeConfig,
    *,
    model: str | None = None,
    dtype: str = "auto",
    on_load: OnLoad = quiet,
    log: Callable[[str], None] = print,
) -> None:
    """``likra serve``: the checkpoint opened as a verifier, then served until interrupted."""
    verifier = Verifier(config, model=model, dtype=dtype)
    on_load(verifier.loaded)
    log(f"serving {verifier.step} ({config.mode}, w {config.neg_weight:g}) on http://{serving.host}:{serving.port} · "
        "POST /score, /get_reward · GET /health, /info")  # fmt: skip
    serve(verifier, serving)


def serve(verifier: Verifier, config: ServeConfig) -> None:
    """Run the server until interrupted."""
    import uvicorn

    uvicorn.run(create_app(verifier, config), host=config.host, port=config.port, log_level="warning")
