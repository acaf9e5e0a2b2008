"""MMLU 5-shot: how many tokens lm-evaluation-harness runs through the model, per subject and in all (issue 21).

lm-eval scores every choice as its own request, context and continuation together, so its work is the sum over
questions and choices of len(context + continuation) in tokens. The requests are likra's (`likra.prepare`: the same
subject line, shots and question format as lm-eval's `mmlu_<subject>` tasks); no model is loaded. Used to scale
lm-eval's time on a few subjects (benchmarks/mmlu_prefix.py) to the whole test, as an estimate.

Usage:
    python benchmarks/mmlu_tokens.py --data-dir ../shared/data [--subjects a,b] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--subjects", help="comma-separated MMLU subjects (default: all)")
    parser.add_argument("--json", help="write the counts here")
    args = parser.parse_args()

    from likra.evaluation import EvalConfig, prepare
    from likra.models import load_tokenizer, resolve_model_path

    tokenizer = load_tokenizer(resolve_model_path(args.model))
    subjects = args.subjects.split(",") if args.subjects else None
    requests = prepare(EvalConfig(task="mmlu", shots=args.shots, data_dir=args.data_dir, subjects=subjects))
    tokens: dict[str, int] = defaultdict(int)
    questions: dict[str, int] = defaultdict(int)
    for request in requests:
        subject = request.item.meta.get("subject", "?")
        questions[subject] += 1
        texts = [c + x for c, x in zip(request.contexts, request.continuations, strict=True)]
        tokens[subject] += sum(len(ids) for ids in tokenizer(texts)["input_ids"])
    total = sum(tokens.values())
    per_subject = {s: {"questions": questions[s], "tokens": tokens[s]} for s in sorted(tokens)}
    for subject, row in sorted(per_subject.items(), key=lambda kv: kv[1]["tokens"]):
        print(f"{subject:40s} {row['questions']:5d} questions {row['tokens']:>10,d} tokens")
    print(f"{'all':40s} {len(requests):5d} questions {total:>10,d} tokens "
          f"({total / len(requests) / 4:.0f} per request on average)")
    if args.json:
        result = {"model": args.model, "shots": args.shots, "questions": len(requests), "tokens": total,
                  "subjects": per_subject}
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
