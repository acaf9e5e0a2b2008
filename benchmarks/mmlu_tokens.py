"""MMLU 5-shot: how many tokens lm-evaluation-harness runs through the model, per subject and in all (issue 21).

lm-eval scores every choice as its own request, context and continuation together, so its work is the sum over
questions and choices of len(context + continuation) in tokens. The requests are likra's (`likra.prepare`: the same
subject line, shots and question format as lm-eval's `mmlu_<subject>` tasks); no model is loaded. Used to scale
lm-eval's time on a few subjects (benchmarks/mmlu_prefix.py) to the whole test, as an estimate.

With --likra, also the tokens likra's scorer runs (padding aside): without shared prefixes each context once with
its choices behind it; with them (its default) each subject's prefix once, then each question's rest and choices.
lm-eval's count over likra's is the speed-up that the work alone allows.

Usage:
    python benchmarks/mmlu_tokens.py --data-dir ../shared/data [--subjects a,b] [--likra] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from types import SimpleNamespace
from typing import Any


def likra_tokens(tokenizer: Any, requests: list) -> tuple[int, int]:
    """Tokens the scorer feeds for these requests, with its default shared prefixes and without: its own rows and
    prefix groups (no model is run); a group's prefix once, then each row's length past it; without, every row
    whole (the rows do not depend on the prefixes, so one encoding serves both counts)."""
    from likra.scoring import Scorer

    no_model = SimpleNamespace(config=SimpleNamespace())
    scorer = Scorer(no_model, tokenizer, max_length=1 << 20)
    encoded = scorer.encode([pair for r in requests for pair in zip(r.contexts, r.continuations, strict=True)])
    rows = scorer._rows(encoded, [[None] * len(encoded)])  # the scorer's own planning, no forward pass
    shared = sum(n + sum(r.length - n for r in group) for n, group in scorer._prefix_groups(rows))
    return shared, sum(r.length for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--subjects", help="comma-separated MMLU subjects (default: all)")
    parser.add_argument("--likra", action="store_true", help="also count the tokens likra's scorer runs")
    parser.add_argument("--json", help="write the counts here")
    args = parser.parse_args()

    from likra.evaluation import EvalConfig, prepare
    from likra.models import load_tokenizer, resolve_model_path

    tokenizer = load_tokenizer(resolve_model_path(args.model))
    subjects = args.subjects.split(",") if args.subjects else None
    requests = prepare(EvalConfig(task="mmlu", shots=args.shots, data_dir=args.data_dir, subjects=subjects))
    tokens: dict[str, int] = defaultdict(int)
    by_subject: dict[str, list] = defaultdict(list)
    for request in requests:
        subject = request.item.meta.get("subject", "?")
        by_subject[subject].append(request)
        texts = [c + x for c, x in zip(request.contexts, request.continuations, strict=True)]
        tokens[subject] += sum(len(ids) for ids in tokenizer(texts)["input_ids"])
    total = sum(tokens.values())
    per_subject = {s: {"questions": len(by_subject[s]), "tokens": tokens[s]} for s in sorted(tokens)}
    for subject, row in sorted(per_subject.items(), key=lambda kv: kv[1]["tokens"]):
        print(f"{subject:40s} {row['questions']:5d} questions {row['tokens']:>10,d} tokens")
    print(f"{'all':40s} {len(requests):5d} questions {total:>10,d} tokens "
          f"({total / len(requests) / 4:.0f} per request on average)")
    result: dict[str, Any] = {"model": args.model, "shots": args.shots, "questions": len(requests), "tokens": total,
                              "subjects": per_subject}  # fmt: skip
    if args.likra:
        for subject, row in per_subject.items():  # groups form within a subject: count one subject at a time
            row["likra_tokens"], row["likra_no_prefix_tokens"] = likra_tokens(tokenizer, by_subject[subject])
        for key in ("likra_tokens", "likra_no_prefix_tokens"):
            result[key] = sum(row[key] for row in per_subject.values())
        print(f"likra: {result['likra_tokens']:,d} tokens with shared prefixes, {result['likra_no_prefix_tokens']:,d} "
              f"without; lm-eval's count is {total / result['likra_tokens']:.1f}x and "
              f"{total / result['likra_no_prefix_tokens']:.1f}x theirs")  # fmt: skip
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
