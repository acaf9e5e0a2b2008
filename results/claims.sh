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
# results/<name>/scores/ keeps each curve's per-item scores (gzipped): `likra grid` and the tables need no model, and
# a curve begun on another machine scores only what is left there (its runs are trained again from the start: a
# run's checkpoints are not kept in git; training is deterministic on one machine and thread count, and close but
# not bit-identical across them, docs/results.md "The whole pool").
restore() {  # results/$1/scores → $OUT/$1/scores, the files not there yet
    local from="results/$1/scores" to="${OUT:-out}/$1/scores" f target
    [ -d "$from" ] || return 0
    (cd "$from" && find . -type f) | while read -r f; do
        target="$to/${f%.gz}"
        [ -e "$target" ] && continue
        mkdir -p "$(dirname "$target")"
        case $f in *.gz) gunzip -c "$from/$f" > "$target.part" ;; *) cp "$from/$f" "$target.part" ;; esac
        mv "$target.part" "$target"
    done
}
for name in arc hellaswag gemma3-270m; do restore "$name"; done

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
# (close to the first run, see above) and only the new checkpoints are scored. Two processes share
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
# the negative head's mass on the second model (does it tell plausible wrong answers apart there?)
$likra mass --checkpoint "${OUT:-out}/gemma3-270m/runs/seed-1/step-1024" --out "${OUT:-out}/gemma3-270m/mass" \
    --dtype bfloat16
