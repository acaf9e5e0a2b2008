"""What a large vocabulary costs the scorer: Gemma-3-270M's 262k tokens against SmolLM2's 49k (issue 17).

likra's scorer projects hidden states onto the vocabulary only at the positions that predict a continuation token
(``likra.scoring.output_logits``); a forward that returns every position's logits (transformers' default, which
lm-eval uses) projects every token of every request. For each model, on the first N questions of ARC-Challenge
test (0-shot, the same requests as ``likra eval``), this script measures in one process:

* ``score_s``: the scorer's wall time for the N questions (model loaded outside the clock);
* ``head_answer_s``: the output projection and log-softmax alone at the answer positions the scorer uses (random
  hidden states of the same count, in the scorer's batch size), and its share of ``score_s``;
* ``head_all_s``: the same at every position of lm-eval's requests (context + continuation per choice): what
  every-position logits would cost before any of the model's body is run; and the largest batch's float32 logits
  (``batch_tokens`` rows x vocabulary), the memory they would take at once.

Usage:
    python benchmarks/vocab_cost.py --data-dir ../shared/data [--models smollm2-135m,gemma3-270m] [--n 200]
        [--dtype float32] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

import torch


def head_seconds(model: Any, n_positions: int, batch_tokens: int) -> float:
    """Time the output projection + log-softmax over ``n_positions`` hidden states, ``batch_tokens`` at a time."""
    from likra.scoring import output_logits

    width = model.config.hidden_size
    dtype = next(model.parameters()).dtype
    hidden = torch.randn(batch_tokens, width, dtype=dtype)
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, n_positions, batch_tokens):
            rows = min(batch_tokens, n_positions - start)
            torch.log_softmax(output_logits(model, hidden[:rows]), dim=-1)
    return time.perf_counter() - started


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from likra.evaluation import EvalConfig, prepare
    from likra.models import load_model
    from likra.scoring import Scorer

    loaded = load_model(name, dtype=args.dtype)
    requests = prepare(EvalConfig(task="arc_challenge", limit=args.n, data_dir=args.data_dir, shots=0))
    pairs = [pair for r in requests for pair in zip(r.contexts, r.continuations, strict=True)]
    scorer = Scorer(loaded.model, loaded.tokenizer)
    encoded = scorer.encode(pairs)
    answer_tokens = sum(len(continuation) for _, continuation in encoded)
    request_tokens = sum(len(context) + len(continuation) for context, continuation in encoded)
    started = time.perf_counter()
    with torch.inference_mode():
        scorer.loglikelihoods_tokens(encoded)
    score_s = time.perf_counter() - started
    head_answer_s = head_seconds(loaded.model, answer_tokens, scorer.batch_tokens)
    head_all_s = head_seconds(loaded.model, request_tokens, scorer.batch_tokens)
    vocab = loaded.model.get_output_embeddings().weight.shape[0]
    row = {
        "model": name,
        "vocab": vocab,
        "parameters_m": round(sum(p.numel() for p in loaded.model.parameters()) / 1e6, 1),
        "questions": len(requests),
        "answer_tokens": answer_tokens,
        "request_tokens": request_tokens,
        "score_s": round(score_s, 2),
        "head_answer_s": round(head_answer_s, 2),
        "head_answer_share": round(head_answer_s / score_s, 3),
        "head_all_s": round(head_all_s, 2),
        "head_all_over_score": round(head_all_s / score_s, 2),
        "batch_logits_mib": round(scorer.batch_tokens * vocab * 4 / 2**20),
    }
    print(json.dumps(row))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--models", default="smollm2-135m,gemma3-270m")
    parser.add_argument("--n", type=int, default=200, help="the first N questions of ARC-Challenge test")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    rows = [measure(name, args) for name in args.models.split(",")]
    if args.json:
        result = {"dtype": args.dtype, "threads": torch.get_num_threads(), "machine": platform.processor() or
                  platform.machine(), "torch": torch.__version__, "rows": rows}
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
