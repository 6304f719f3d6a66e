#!/usr/bin/env bash
# The loop-design experiment (issue 20): qwen-1.5b (then qwen-0.5b) on every
# example task under three arms, one replicate per pass over the tasks so a
# partial database stays balanced, up to 3 replicates, 6 turns, 300 s:
#   raw   the loop as it always was (trimmed raw output, whole conversation, every file again)
#   lean  only the failing tests fed back, a fresh prompt each turn (history last)
#   tgt   failures + the last edit's diff and the score's move, restart after 2 turns without improvement
# Resumable: run it again and it continues where it stopped (the plan does not include --runs).
#
#   bash scripts/arms-experiment.sh [DB] [MODEL...]   # default demo/arms.db qwen-1.5b
#
# Estimated from the three-model experiment (qwen-1.5b: 180 s a run): ~5 hours
# for qwen-1.5b's 108 runs on a 2-core machine, one run at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
db="${1:-demo/arms.db}"
shift || true
models=("${@:-qwen-1.5b}")
# LOOPVEL=/path/to/loopvel runs a fixed binary (so later edits to the tree do not
# change the loop halfway through the experiment).
loopvel="${LOOPVEL:-cargo run --release --quiet --}"
$loopvel local setup "${models[@]}"
$loopvel local start "${models[@]}"
config="$(mktemp)"
trap 'rm -f "$config"' EXIT
$loopvel local config "${models[@]}" > "$config"
cat >> "$config" <<'TOML'

[arms.lean]
feedback = "failures"
history = "last"

[arms.tgt]
feedback = "targeted"
restart_after = 2
TOML
model_flags=()
for m in "${models[@]}"; do model_flags+=(--model "$m"); done
for n in 1 2 3; do
  $loopvel run --config "$config" --tasks tasks/examples "${model_flags[@]}" \
    --arm raw --arm lean --arm tgt --runs "$n" --max-turns 6 --max-wall-s 300 --shuffle --db "$db"
done
