"""MMLU 5-shot: likra with shared prefixes (its default) against likra without them and lm-evaluation-harness 0.4,
exactness and speed in one run (issue 21).

lm-eval's MMLU puts one subject line and the same five dev questions before every question of a subject, so most
of a context's tokens are shared by all of that subject's questions; likra runs them once per subject. Every tool
gets the same converted model directory, float32 on the CPU, and the same local files: lm-eval through task YAMLs
written here (lm-eval's own `mmlu_<subject>_continuation` layout, over one subject's rows of the local MMLU files
each, in a temporary folder), likra through `likra.evaluate`. Model loading is outside every clock.

Reports per tool the wall time and acc / acc_norm, the largest per-choice log-likelihood difference of likra against
lm-eval and against likra without prefixes, and the ratios of wall times.

Usage (--limit for a quick look; whole subjects by default):
    python benchmarks/mmlu_prefix.py --data-dir ../shared/data --subjects astronomy,virology [--limit 20]
        [--lm-eval-batch-sizes 1,8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

TASK_YAML = """\
task: mmlu_{subject}_local
dataset_path: json
dataset_kwargs:
  data_files:
    test: {folder}/test.jsonl
    dev: {folder}/dev.jsonl
output_type: multiple_choice
test_split: test
fewshot_split: dev
fewshot_config:
  sampler: first_n
description: "The following are questions (with answers) about {words}.\\n\\n"
doc_to_text: "Question: {{{{question.strip()}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""


def write_tasks(data_dir: str, subjects: list[str], out: Path) -> None:
    """One lm-eval task per subject over its rows of the local MMLU test and dev files."""
    for subject in subjects:
        folder = out / subject
        folder.mkdir(parents=True)
        for split in ("test", "dev"):
            text = (Path(data_dir) / "mmlu" / f"mmlu_{split}.jsonl").read_text()
            lines = [line for line in text.split("\n") if line]  # not splitlines: rows hold U+2028
            mine = [line for line in lines if json.loads(line)["subject"] == subject]
            (folder / f"{split}.jsonl").write_text("\n".join(mine) + "\n")
        words = " ".join(subject.split("_"))
        (out / f"{subject}.yaml").write_text(TASK_YAML.format(subject=subject, folder=folder, words=words))


def run_lm_eval(lm, task_dir: Path, subjects: list[str], shots: int, limit: int | None) -> tuple[list, dict, float]:
    """lm-eval's own loop over the subjects; its per-choice log-likelihoods in likra's item order, acc, seconds."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    tasks = [f"mmlu_{s}_local" for s in subjects]
    start = time.perf_counter()
    out = simple_evaluate(model=lm, tasks=tasks, num_fewshot=shots, limit=limit, log_samples=True,
                          task_manager=TaskManager(include_path=str(task_dir)), bootstrap_iters=0)  # fmt: skip
    seconds = time.perf_counter() - start
    lls, hits, hits_norm = [], [], []
    for task in tasks:
        for sample in sorted(out["samples"][task], key=lambda s: s["doc_id"]):
            lls.append([float(r[0]) for r in sample["filtered_resps"]])
            hits.append(sample["acc"])
            hits_norm.append(sample["acc_norm"])
    return lls, {"acc": sum(hits) / len(hits), "acc_norm": sum(hits_norm) / len(hits_norm)}, seconds


def run_likra(loaded, config) -> tuple[list, dict, float]:
    from likra import evaluate

    start = time.perf_counter()
    result = evaluate(loaded, config)
    seconds = time.perf_counter() - start
    metrics = result.results["metrics"]
    return [i.loglikelihoods for i in result.items], {"acc": metrics["acc"], "acc_norm": metrics["acc_norm"]}, seconds


def cpu_name() -> str:
    """The CPU's model name, and whether it has AMX (bfloat16 and float32 speeds differ by CPU; say which)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    return (name or platform.processor() or platform.machine()) + (" (AMX)" if "amx_bf16" in info else "")


def largest_difference(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(x - y) for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--subjects", required=True, help="comma-separated MMLU subjects")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--limit", type=int, help="the first N questions of each subject (default: all)")
    parser.add_argument("--lm-eval-batch-sizes", default="1,8", help="lm-eval's default is 1; empty: skip lm-eval")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    import torch
    from lm_eval.models.huggingface import HFLM

    from likra import EvalConfig, load_model

    subjects = args.subjects.split(",")
    loaded = load_model(args.model, dtype="float32", device="cpu")
    report: dict = {"model": loaded.name, "cpu": cpu_name(), "threads": torch.get_num_threads(),
                    "subjects": subjects, "shots": args.shots, "limit": args.limit}  # fmt: skip
    # likra's items are in file order, all subjects together; lm-eval's per subject: the same order when each
    # subject is limited apart, so --limit runs likra one subject at a time
    configs = [EvalConfig(task="mmlu", subjects=[s], limit=args.limit, shots=args.shots, data_dir=args.data_dir,
                          calibrate=False) for s in subjects]  # fmt: skip
    run_likra(loaded, replace(configs[0], limit=2))  # warm-up (first-call costs), outside the clocks
    runs = {}
    # likra as a user gets it (its default --shared-prefix), then without shared prefixes
    for name, changes in (("likra", {}), ("likra_no_prefix", {"shared_prefix": 0})):
        parts = [run_likra(loaded, replace(c, **changes)) for c in configs]
        lls = [row for p in parts for row in p[0]]
        n = len(lls)
        runs[name] = {"seconds": sum(p[2] for p in parts), "n": n,
                      **{k: sum(p[1][k] * len(p[0]) for p in parts) / n for k in ("acc", "acc_norm")}}  # fmt: skip
        runs[name]["lls"] = lls
    report["max_abs_diff_vs_no_prefix"] = largest_difference(runs["likra"]["lls"], runs["likra_no_prefix"]["lls"])
    with tempfile.TemporaryDirectory(prefix="likra-mmlu-") as tmp:
        write_tasks(args.data_dir, subjects, Path(tmp))
        for size in [int(s) for s in args.lm_eval_batch_sizes.split(",") if s]:
            lm = HFLM(pretrained=loaded.path, dtype="float32", device="cpu", batch_size=size)
            lls, metrics, seconds = run_lm_eval(lm, Path(tmp), subjects, args.shots, args.limit)
            runs[f"lm_eval_bs{size}"] = {"seconds": seconds, "n": len(lls), **metrics}
            report[f"max_abs_diff_vs_lm_eval_bs{size}"] = largest_difference(runs["likra"]["lls"], lls)
    for run in runs.values():
        run.pop("lls", None)
    report["runs"] = runs
    ours = runs["likra"]["seconds"]
    report["speedup"] = {name: run["seconds"] / ours for name, run in runs.items() if name != "likra"}
    print(f"MMLU {args.shots}-shot, {', '.join(subjects)} ({runs['likra']['n']} questions, float32, "
          f"{report['threads']} threads)")  # fmt: skip
    for name, run in runs.items():
        print(f"  {name:16s} {run['seconds']:8.1f} s   acc {run['acc']:.4f}   acc_norm {run['acc_norm']:.4f}"
              + (f"   likra {report['speedup'][name]:.1f}x faster" if name != "likra" else ""))  # fmt: skip
    for key in [k for k in report if k.startswith("max_abs_diff")]:
        print(f"  {key}: {report[key]:.2e}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
