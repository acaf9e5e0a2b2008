"""Likra's training loop against the reference recipe (transformers ``Trainer`` + ``DataCollatorForSeq2Seq``,
full logits), on the same data in one run: examples per second and peak memory.

Both train one LoRA head (r=8, alpha=8, dropout 0 on gate/up/down_proj; AdamW, constant lr 1e-3, batch 8,
1 epoch) on the same (question, correct answer) pairs of ARC, tokenised identically, with the question masked
out of the loss. The reference pads each batch to its longest example and computes vocabulary logits at every
position; Likra packs each batch into one row without padding and computes logits at answer positions only.
Each recipe runs in its own process, so peak resident memory (VmHWM, reset once the model is loaded) is its
own; model loading is outside the timings and the peak. Likra's time includes writing its checkpoints (8, 16,
32, ... examples); the reference saves none.

Usage (about 6 minutes on 2 CPU cores with the defaults):
    python benchmarks/train_speed.py --data-dir ../shared/data [--n 256] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def memory_kib(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak() -> None:
    """Start the peak (VmHWM) afresh, so loading the model does not count as training memory (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def load(model: str, data_dir: str, n: int, seed: int):
    from likra.models import load_model
    from likra.training import TrainConfig, build_training_set, encode_examples

    loaded = load_model(model, dtype="float32")
    for parameter in loaded.model.parameters():  # page in the memory-mapped weights, so they count as loaded
        parameter.data.sum()
    config = TrainConfig(model=model, n=n, heads="positive", data_dir=data_dir, seed=seed)
    data = build_training_set(config)
    return loaded, config, data, encode_examples(loaded.tokenizer, data.positive, config.max_length)


def run_likra(model: str, data_dir: str, n: int, seed: int) -> dict:
    from likra.training import train

    loaded, config, data, _ = load(model, data_dir, n, seed)
    reset_peak()
    rss_loaded = memory_kib("VmRSS")
    with tempfile.TemporaryDirectory() as out:
        result = train(loaded, config, Path(out) / "run", data=data)
        log = (Path(out) / "run" / "train_log.jsonl").read_text().splitlines()
        loss = sum(json.loads(line)["loss"]["positive"] for line in log) / len(log)  # mean of step losses, as Trainer
    return {"seconds": result.seconds, "rss_loaded_kib": rss_loaded, "peak_kib": memory_kib("VmHWM"), "loss": loss}


def run_reference(model: str, data_dir: str, n: int, seed: int) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    loaded, config, _, encoded = load(model, data_dir, n, seed)
    rows = [{"input_ids": c + a, "labels": [-100] * len(c) + a} for c, a in encoded]
    lora = LoraConfig(r=8, lora_alpha=8, lora_dropout=0.0, target_modules=config.target_modules, task_type="CAUSAL_LM")
    model_ = get_peft_model(loaded.model, lora)
    reset_peak()
    rss_loaded = memory_kib("VmRSS")
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=8,
            num_train_epochs=1,
            learning_rate=config.lr,
            lr_scheduler_type="constant",
            weight_decay=0.0,
            optim="adamw_torch",
            save_strategy="no",
            report_to=[],
            logging_steps=10_000,
            use_cpu=True,
            seed=seed,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        collator = DataCollatorForSeq2Seq(loaded.tokenizer, padding=True, label_pad_token_id=-100)
        trainer = Trainer(model=model_, args=args, train_dataset=rows, data_collator=collator)
        start = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "rss_loaded_kib": rss_loaded,
        "peak_kib": memory_kib("VmHWM"),
        "loss": result.training_loss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--n", type=int, default=256, help="training questions")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--recipe", choices=["likra", "reference"], help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.recipe:
        run = run_likra if args.recipe == "likra" else run_reference
        print(json.dumps(run(args.model, args.data_dir, args.n, args.seed)))
        return

    results = {}
    for recipe in ("reference", "likra"):
        command = [sys.executable, __file__, "--recipe", recipe, "--model", args.model]
        command += ["--data-dir", args.data_dir, "--n", str(args.n), "--seed", str(args.seed)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results[recipe] = json.loads(out.strip().splitlines()[-1])
        results[recipe]["examples_per_s"] = args.n / results[recipe]["seconds"]
        mib = {k: v / 1024 for k, v in results[recipe].items() if k.endswith("_kib")}
        print(
            f"{recipe:>9}: {results[recipe]['seconds']:.1f} s, {results[recipe]['examples_per_s']:.2f} examples/s, "
            f"peak RSS {mib['peak_kib']:.0f} MiB ({mib['peak_kib'] - mib['rss_loaded_kib']:.0f} MiB over the "
            f"loaded model), loss {results[recipe]['loss']:.4f}"
        )
    ratio = results["likra"]["examples_per_s"] / results["reference"]["examples_per_s"]
    print(f"speed-up: {ratio:.2f}x")
    summary = {"n": args.n, "model": args.model, "batch_size": 8, "recipes": results, "speedup": round(ratio, 3)}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
