#!/usr/bin/env bash
# The three-model local experiment (issue 6): Qwen2.5-Coder 0.5B and 1.5B and
# SmolLM2-135M on every example task, one replicate per pass over the tasks so
# a partial database stays balanced, up to 5 replicates. Resumable: run it
# again and it continues where it stopped (the plan does not include --runs).
#
#   bash scripts/local-experiment.sh [DB]     # default demo/experiment.db
#
# Took 8.2 hours of runs on a 2-core machine (180 runs, demo/README.md).
# Models run one at a time (--concurrency 1), each llama.cpp server on 2 threads.
set -euo pipefail
cd "$(dirname "$0")/.."
db="${1:-demo/experiment.db}"
loopvel="cargo run --release --quiet --"
$loopvel local setup
$loopvel local start
config="$(mktemp)"
trap 'rm -f "$config"' EXIT
$loopvel local config > "$config"
for n in 1 2 3 4 5; do
  $loopvel run --config "$config" --tasks tasks/examples \
    --model qwen-0.5b --model qwen-1.5b --model smollm-135m \
    --runs "$n" --max-turns 6 --max-wall-s 300 --history full --db "$db"
done
