"""`likra serve` under load: N concurrent clients for a bounded time on localhost, against `likra score` offline on
the same inputs, on each endpoint in turn.

The rows are ARC-Challenge test questions, each with its options (one request = one question, its answers scored
on their own). Offline: the rows scored by ``likra.verifier.score_file`` in this process, model loading outside the
timing. Served: a `likra serve` subprocess on the same checkpoint and dtype, behind an API key (so the key check is
in the timing); each client thread sends the rows in turn until the time is up, to each endpoint of
``--endpoints`` one after the other: ``score`` (``POST /score``, vLLM's shape), ``rerank`` (``POST /v1/rerank``,
Cohere's) and ``reward`` (``POST /get_reward``, the options as prompts and responses). Reported per endpoint:
answers per second and their ratio to offline, p50 / p99 latency, failed requests, and the server's resident
memory (VmRSS) sampled through the run.

Usage (about 2 minutes per endpoint on 2 CPU cores with the defaults):
    python benchmarks/serve_load.py --checkpoint out/arc/runs/seed-1/step-1024 --data-dir ../shared/data \
        [--clients 16] [--seconds 60] [--questions 200] [--dtype bfloat16] [--endpoints score,rerank,reward] \
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path


def write_rows(data_dir: str, questions: int, path: Path) -> list[dict]:
    from likra.data import get_task, load_items

    items = load_items(get_task("arc_challenge"), "test", data_dir)[:questions]
    rows = [{"id": i.id, "question": i.question, "candidates": i.choices} for i in items]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def offline(checkpoint: str, dtype: str, rows_path: Path, out: Path) -> dict:
    from likra.verifier import Verifier, score_file

    verifier = Verifier(checkpoint, dtype=dtype)
    start = time.perf_counter()
    answers = score_file(verifier, rows_path, out)
    seconds = time.perf_counter() - start
    return {"answers": answers, "seconds": round(seconds, 2), "answers_per_s": round(answers / seconds, 1)}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


KEY = "serve-load-key"
# endpoint → its path and the body of one row (a question and its options)
REQUESTS = {
    "score": ("/score", lambda row: {"text_1": row["question"], "text_2": row["candidates"]}),
    "rerank": ("/v1/rerank", lambda row: {"query": row["question"], "documents": row["candidates"]}),
    "reward": ("/get_reward", lambda row: {"prompts": [row["question"]] * len(row["candidates"]),
                                           "responses": row["candidates"]}),
}  # fmt: skip


def post(url: str, body: dict) -> int:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    request = urllib.request.Request(url, json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def start_server(checkpoint: str, dtype: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [sys.executable, "-m", "likra", "serve", "--checkpoint", checkpoint, "--dtype", dtype, "--port", str(port)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LIKRA_API_KEY": KEY}
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    while True:
        if process.poll() is not None:
            raise SystemExit("likra serve exited before it answered /health")
        try:
            with urllib.request.urlopen(url + "/health", timeout=5):
                return process, url
        except OSError:
            time.sleep(0.5)


def load(url: str, rows: list[dict], clients: int, seconds: float, pid: int, endpoint: str = "score") -> dict:
    """``clients`` threads sending rows in turn to ``endpoint`` for ``seconds``; latencies, statuses and memory."""
    path, body_of = REQUESTS[endpoint]
    latencies: list[float] = []
    statuses: list[int] = []
    answers = [0]
    lock, stop = threading.Lock(), time.monotonic() + seconds
    memory: list[int] = []

    def client(k: int) -> None:
        i = k
        while time.monotonic() < stop:
            row = rows[i % len(rows)]
            start = time.perf_counter()
            status = post(url + path, body_of(row))
            with lock:
                latencies.append(time.perf_counter() - start)
                statuses.append(status)
                answers[0] += len(row["candidates"]) if status == 200 else 0
            i += clients

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        memory.append(rss_kib(pid))
        time.sleep(1)
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    cuts = statistics.quantiles(latencies, n=100)
    mib = [round(kib / 1024, 1) for kib in memory]
    return {
        "requests": len(statuses),
        "failed": sum(s != 200 for s in statuses),
        "answers": answers[0],
        "seconds": round(wall, 2),
        "answers_per_s": round(answers[0] / wall, 1),
        "latency_p50_s": round(cuts[49], 3),
        "latency_p99_s": round(cuts[98], 3),
        "rss_mib": {"after_warmup": mib[min(5, len(mib) - 1)], "last": mib[-1], "max": max(mib)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data-dir", default=os.environ.get("LIKRA_DATA_DIR", "../shared/data"))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--endpoints", default="score,rerank,reward", help="Comma-separated: score, rerank, reward.")
    parser.add_argument("--json")
    args = parser.parse_args()
    endpoints = args.endpoints.split(",")
    unknown = [e for e in endpoints if e not in REQUESTS]
    if unknown:
        parser.error(f"--endpoints: unknown {', '.join(unknown)} (known: {', '.join(REQUESTS)})")
    with tempfile.TemporaryDirectory() as tmp:
        rows_path = Path(tmp) / "rows.jsonl"
        rows = write_rows(args.data_dir, args.questions, rows_path)
        result = {"offline": offline(args.checkpoint, args.dtype, rows_path, Path(tmp) / "scores.jsonl")}
    process, url = start_server(args.checkpoint, args.dtype)
    result["served"] = {}
    try:
        post(url + "/score", REQUESTS["score"][1](rows[0]))  # warm up
        for endpoint in endpoints:
            served = load(url, rows, args.clients, args.seconds, process.pid, endpoint)
            served["over_offline"] = round(served["answers_per_s"] / result["offline"]["answers_per_s"], 3)
            result["served"][endpoint] = served
        with urllib.request.urlopen(urllib.request.Request(url + "/health")) as response:
            result["server"] = json.loads(response.read())
    finally:
        process.terminate()
        process.wait(timeout=60)
    result["setup"] = {"checkpoint": args.checkpoint, "dtype": args.dtype, "clients": args.clients,
                       "seconds": args.seconds, "questions": args.questions, "cpus": os.cpu_count(),
                       "api_key": True}  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
