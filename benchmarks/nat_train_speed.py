"""NAT training speed: trajectories per second and peak memory of ``likra nat train``'s loop on the StrategyQA
trajectories of the NAT release, for the settings that decide it.

StrategyQA trajectories are ~500 tokens. Packing a batch of 8 into one row (Likra's default for short
answers) makes the block-diagonal attention cost quadratic in the row's ~4000 tokens; one trajectory per
forward pass (NAT's default) avoids it; bfloat16 autocast (``--bf16``) speeds up the matrix products. Each
setting trains the first N trajectories (8 per optimiser step, LoRA r16 on every linear layer) in its own
process, so peak resident memory (VmHWM) is its own; loading the model is outside the timings.

Usage (about 4 minutes on 2 CPU cores with the defaults):
    python benchmarks/nat_train_speed.py --data-dir ../shared/data [--n 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SETTINGS = {  # name: (trajectories per forward pass, bfloat16 autocast)
    "packed-8-float32": (8, False),
    "one-float32": (1, False),
    "one-bf16": (1, True),
}


def peak_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run(setting: str, model: str, data_dir: str, n: int) -> dict:
    from likra.models import load_model
    from likra.nat.training import NATConfig, select_trajectories, train_agent

    release = Path(data_dir) / "nat" / "strategyqa" / "strategyqa_gpt-3.5"
    micro, bf16 = SETTINGS[setting]
    config = NATConfig(
        model=model, pos=[f"{release}_positive.json"], neg=[f"{release}_negative.json"], data_dir=data_dir,
        micro_batch_size=micro, bf16=bf16,
    )  # fmt: skip
    data = select_trajectories(config)
    data.trajectories = data.trajectories[:n]
    loaded = load_model(model, dtype="float32")
    Path("/proc/self/clear_refs").write_text("5")  # the peak from here on: training, not loading
    with tempfile.TemporaryDirectory() as out:
        result = train_agent(loaded, config, Path(out) / "run", data=data)
    return {"seconds": result.seconds, "trajectories_per_s": n / result.seconds, "peak_mib": peak_kib() / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--n", type=int, default=16, help="trajectories to train on")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--setting", choices=list(SETTINGS), help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.setting:
        print(json.dumps(run(args.setting, args.model, args.data_dir, args.n)))
        return
    results = {}
    for setting in SETTINGS:
        command = [sys.executable, __file__, "--setting", setting, "--model", args.model]
        command += ["--data-dir", args.data_dir, "--n", str(args.n)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results[setting] = json.loads(out.strip().splitlines()[-1])
        r = results[setting]
        print(f"{setting:>17}: {r['trajectories_per_s']:.2f} trajectories/s, peak RSS {r['peak_mib']:.0f} MiB")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"n": args.n, "model": args.model, "settings": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
