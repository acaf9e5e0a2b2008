"""Likra's scoring engine against lm-evaluation-harness 0.4: exactness and speed, in one run.

Both tools use the same converted model directory, in float32 on the CPU, and the same local ARC-Challenge
files (lm-eval through `likra.harness.write_local_tasks`: a task YAML that points its `json` loader at them,
with lm-eval's own `arc_challenge` prompt). Model loading is outside both timings.

* 0-shot, first N test questions: lm-eval's `--model hf` against `likra.evaluate` (the full path: data,
  prompts, scoring). Reports the largest per-choice log-likelihood difference, acc and acc_norm of both,
  and the ratio of wall times.
* K-shot, first M questions: lm-eval builds its few-shot contexts; the very (context, continuation)
  requests it logged are scored through `likra.Scorer`; same comparison.
* K-shot, first M questions, likra alone: per-question shots (ARC's default) against the same shots for every
  question (`--fewshot-sampler first_n`), whose shared prefix is scored once.

Usage (about 10 minutes on 2 CPU cores with the defaults):
    python benchmarks/vs_lm_eval.py --data-dir ../shared/data [--n0 100 --nk 20 --shots 25] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def run_lm_eval(lm, task_dir: Path, shots: int, limit: int) -> tuple[list[dict], dict, float]:
    """lm-eval's own evaluation loop; returns its logged samples, its metrics and the wall time."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(task_dir))
    start = time.perf_counter()
    out = simple_evaluate(
        model=lm,
        tasks=["arc_challenge_local"],
        num_fewshot=shots,
        limit=limit,
        log_samples=True,
        task_manager=manager,
        bootstrap_iters=0,
    )
    seconds = time.perf_counter() - start
    samples = sorted(out["samples"]["arc_challenge_local"], key=lambda s: s["doc_id"])
    return samples, out["results"]["arc_challenge_local"], seconds


def lm_eval_lls(samples: list[dict]) -> list[list[float]]:
    return [[float(r[0]) for r in s["filtered_resps"]] for s in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n0", type=int, default=100, help="questions at 0 shots")
    parser.add_argument("--nk", type=int, default=20, help="questions at --shots shots")
    parser.add_argument("--shots", type=int, default=25)
    parser.add_argument("--lm-eval-batch-size", type=int, default=1, help="lm-eval's default is 1")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    import torch
    from lm_eval.models.huggingface import HFLM

    from likra import EvalConfig, Scorer, evaluate, load_model
    from likra.harness import write_local_tasks

    torch.manual_seed(0)
    loaded = load_model(args.model, dtype="float32", device="cpu")
    lm = HFLM(pretrained=loaded.path, dtype="float32", device="cpu", batch_size=args.lm_eval_batch_size)
    task_dir = write_local_tasks(args.data_dir, tempfile.mkdtemp(prefix="likra-lm-eval-"))
    report: dict = {
        "model": loaded.name,
        "model_path": loaded.path,
        "threads": torch.get_num_threads(),
        "lm_eval_batch_size": args.lm_eval_batch_size,
    }

    # --- 0-shot: both full pipelines ---------------------------------------------------------------
    samples, lm_metrics, lm_seconds = run_lm_eval(lm, task_dir, 0, args.n0)
    # The same work as lm-eval first; then with the answer-prior control (acc_calibrated) lm-eval skips.
    config = EvalConfig(task="arc_challenge", limit=args.n0, data_dir=args.data_dir, calibrate=False)
    start = time.perf_counter()
    ours = evaluate(loaded, config)
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    evaluate(loaded, replace(config, calibrate=True))
    calibrated_seconds = time.perf_counter() - start
    reference = lm_eval_lls(samples)
    diff0 = max(
        abs(a - b)
        for item, ref in zip(ours.items, reference, strict=True)
        for a, b in zip(item.loglikelihoods, ref, strict=True)
    )
    ids_match = [s["doc"]["id"] for s in samples] == [i.id for i in ours.items]
    report["zero_shot"] = {
        "n": args.n0,
        "ids_match": ids_match,
        "max_abs_diff": diff0,
        "lm_eval": {"acc": lm_metrics["acc,none"], "acc_norm": lm_metrics["acc_norm,none"], "seconds": lm_seconds},
        "likra": {
            "acc": ours.results["metrics"]["acc"],
            "acc_norm": ours.results["metrics"]["acc_norm"],
            "seconds": ours_seconds,
            "seconds_with_calibration": calibrated_seconds,
        },
        "speedup": lm_seconds / ours_seconds,
        "speedup_with_calibration": lm_seconds / calibrated_seconds,
    }

    # --- K-shot: lm-eval's own contexts through likra's scorer -------------------------------------
    samples, lm_metrics, lm_seconds = run_lm_eval(lm, task_dir, args.shots, args.nk)
    pairs = [tuple(arg) for s in samples for arg in s["arguments"]]
    scorer = Scorer(loaded.model, loaded.tokenizer, batch_tokens=config.batch_tokens)
    start = time.perf_counter()
    values = scorer.loglikelihoods(pairs)
    ours_seconds = time.perf_counter() - start
    flat_ref = [v for row in lm_eval_lls(samples) for v in row]
    diffk = max(abs(v.logprob - r) for v, r in zip(values, flat_ref, strict=True))
    context_tokens = sum(len(loaded.tokenizer(c)["input_ids"]) for c, _ in pairs[::4]) / max(len(samples), 1)
    report["k_shot"] = {
        "shots": args.shots,
        "n": args.nk,
        "max_abs_diff": diffk,
        "mean_context_tokens": round(context_tokens),
        "lm_eval_seconds": lm_seconds,
        "likra_seconds": ours_seconds,
        "speedup": lm_seconds / ours_seconds,
    }

    # --- K-shot, the same shots for every question (--fewshot-sampler first_n) against per-question shots ----
    timings = {}
    for sampler in ("random", "first_n"):
        shot_config = replace(config, limit=args.nk, shots=args.shots, fewshot_sampler=sampler)
        start = time.perf_counter()
        evaluate(loaded, shot_config)
        timings[sampler] = time.perf_counter() - start
    report["k_shot_first_n"] = {"shots": args.shots, "n": args.nk, "likra_seconds_random": timings["random"],
                                "likra_seconds_first_n": timings["first_n"],
                                "speedup": timings["random"] / timings["first_n"]}  # fmt: skip

    z, k, f = report["zero_shot"], report["k_shot"], report["k_shot_first_n"]
    print(f"\n0-shot, first {z['n']} ARC-Challenge test questions (float32, {report['threads']} threads)")
    print(f"  largest |Δ log-likelihood| per choice: {z['max_abs_diff']:.2e}   same items: {z['ids_match']}")
    print(f"  acc      lm-eval {z['lm_eval']['acc']:.4f}   likra {z['likra']['acc']:.4f}")
    print(f"  acc_norm lm-eval {z['lm_eval']['acc_norm']:.4f}   likra {z['likra']['acc_norm']:.4f}")
    print(
        f"  wall: lm-eval {z['lm_eval']['seconds']:.1f} s, likra {z['likra']['seconds']:.1f} s "
        f"→ {z['speedup']:.2f}x faster"
    )
    print(
        f"  likra with its calibration pass (acc_calibrated, which lm-eval does not compute): "
        f"{z['likra']['seconds_with_calibration']:.1f} s → {z['speedup_with_calibration']:.2f}x"
    )
    print(
        f"{k['shots']}-shot, first {k['n']} questions, lm-eval's logged contexts (~{k['mean_context_tokens']} tokens)"
    )
    print(f"  largest |Δ log-likelihood| per choice: {k['max_abs_diff']:.2e}")
    print(
        f"  wall: lm-eval {k['lm_eval_seconds']:.1f} s, likra {k['likra_seconds']:.1f} s → {k['speedup']:.2f}x faster"
    )
    print(f"{f['shots']}-shot, first {f['n']} questions, likra with the same shots for every question (first_n)")
    print(f"  wall: per-question shots {f['likra_seconds_random']:.1f} s, first_n {f['likra_seconds_first_n']:.1f} s "
          f"→ {f['speedup']:.2f}x faster (the shared prefix scored once)")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
