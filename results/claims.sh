#!/usr/bin/env bash
# Issue 17: the seeds' headline claims, one command each (README "Positives and negatives counted apart" and
# "Base-Likra, diagnosed"). Run from the repository root after `make install` (and `make gemma3-270m` for the last
# step). Every step is resumable: re-run the script after an interruption and it skips what is on disk.
# Heads train in float32; scoring runs in bfloat16 on this 2-core CPU (AMX).
set -euo pipefail
export HF_HUB_OFFLINE=1 LIKRA_DATA_DIR="${LIKRA_DATA_DIR:-$(cd .. && pwd)/shared/data}"
likra=.venv/bin/likra
arc=${OUT:-out}/arc
common=(--hold-out arc_easy:test --dtype bfloat16)
# results/arc/scores/ keeps the curve's per-item scores (gzipped) so that `likra grid` can be re-run without a model.
# On a machine without out/arc, restore them first (step 1 then retrains the runs but scores nothing twice):
#   (cd results/arc/scores && find . -type f) | while read -r f; do mkdir -p "$arc/scores/$(dirname "$f")"
#       case $f in *.gz) gunzip -c "results/arc/scores/$f" > "$arc/scores/${f%.gz}";; *) cp "results/arc/scores/$f" "$arc/scores/$f";; esac; done

# 1. the 3-seed ARC curve to 1024 (results/arc/run.sh's), then the grid of positives x negatives from its scores
$likra curve "${common[@]}" --max-n 1024 --seeds 3 --out "$arc"
$likra grid "$arc" --max-examples 1024 --out "$arc/grid"
# Base-Likra's weight from stored scores (w 0…2), the three seeds' step-1024 items
$likra sweep --items "$(ls "$arc"/scores/arc_challenge-test/seed-*/step-1024.items.jsonl | paste -sd,)" \
    --weights 0:2:0.1 --out "$arc/sweep-negbase"

# 2. the negative head alone at other learning rates (Base-Likra only; 1e-3 is the curve's own)
for lr in 1e-4 3e-4 3e-3; do
    $likra curve "${common[@]}" --max-n 1024 --seeds 1 --methods negbase --lr "$lr" --out "$arc-negative-lr$lr"
done

# the negative head's mass (the paper's Figure 6) on seed 1's checkpoints to 1024 (step 4 adds the later ones)
$likra mass --checkpoint "$arc/runs/seed-1" --out "$arc/mass" --dtype bfloat16

# 3. prefix Likra beside two-head Likra (seed 1, to 1024; p_vs_likra in curve.csv)
$likra curve "${common[@]}" --max-n 1024 --seeds 1 --methods sft,likra,negbase,prefix,prefix_sft --out "$arc" \
    --plot "$arc/prefix.png"

# 4. the whole pool (4221 questions): the curve's runs continued from step-1024, only the new checkpoints scored.
# Where the runs are gone (a new machine with only the restored scores), each is trained again from the start
# (its checkpoints are what continuing would give) and only the new checkpoints are scored. Two processes share
# the work (each takes the pieces the other does not hold): run this line twice at once, each with one thread
# (OMP_NUM_THREADS=1), as was done for seeds 2 and 3.
$likra curve "${common[@]}" --max-n 4221 --seeds 3 --out "$arc"
$likra grid "$arc" --out "$arc/grid-4221"
# the negative head's mass at the whole pool (seed 1; the 8…1024 table is in $arc/mass)
$likra mass --checkpoint "$arc/runs/seed-1/step-4221" --out "$arc/mass-4221" --dtype bfloat16

# 5. HellaSwag: heads on the 3367 train rows we have less the one whose text is also in validation (3366), scored
# on a seeded 1000 of validation
$likra curve --task hellaswag --max-n 3366 --seeds 1 --sample 1000 --dtype bfloat16 --out "${OUT:-out}/hellaswag"

# 6. a second model: Gemma-3-270M (base), the ARC curve to 1024
$likra curve "${common[@]}" --model gemma3-270m --max-n 1024 --seeds 1 --out "${OUT:-out}/gemma3-270m"
