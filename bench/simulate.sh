#!/usr/bin/env bash
# Speed of `loopvel simulate` against a straightforward vectorised NumPy version
# of the same scenario (bench/numpy_sim.py), side by side, process start included.
#
#   bash bench/simulate.sh [RUNS] [REPEATS]
#
# Reference scenario: examples/talk-realistic.toml (lognormal times, beta task
# heterogeneity, max_turns 15), RUNS runs of each of its two models.
# NumPy comes from a venv under ${XDG_CACHE_HOME:-~/.cache}/loopvel/bench-venv
# (created on first use), so nothing is installed into the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1000000}
repeats=${2:-5}

cargo build --release --quiet
venv="${XDG_CACHE_HOME:-$HOME/.cache}/loopvel/bench-venv"
if ! "$venv/bin/python" -c "import numpy" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet numpy
fi

# Wall time of one command, process start included, in seconds; its stdout goes to $2.
timed() {
  local start end
  start=$(date +%s.%N)
  "${@:3}" > "$2"
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l > "$1"
}

best() { sort -g | head -1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for i in $(seq "$repeats"); do
  timed "$tmp/lv.$i" "$tmp/out-lv.json" ./target/release/loopvel simulate examples/talk-realistic.toml --runs "$runs" --json
  timed "$tmp/np.$i" "$tmp/out-np.json" "$venv/bin/python" bench/numpy_sim.py "$runs"
done
lv_s=$(cat "$tmp"/lv.* | best)
np_s=$(cat "$tmp"/np.* | best)
lv_turns=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['turns_simulated'])" "$tmp/out-lv.json")
np_turns=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['turns_simulated'])" "$tmp/out-np.json")

python3 - "$runs" "$lv_s" "$lv_turns" "$np_s" "$np_turns" "$tmp/out-lv.json" "$tmp/out-np.json" "$repeats" <<'PY'
import json, sys
runs, lv_s, lv_turns, np_s, np_turns = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
lv, np_ = json.load(open(sys.argv[6])), json.load(open(sys.argv[7]))
repeats = sys.argv[8]
print(f"Reference scenario: examples/talk-realistic.toml, {runs:,} runs x 2 models, best of {repeats}, process start included")
print(f"{'engine':<22}{'wall s':>9}{'runs/s':>14}{'turns/s':>14}{'turns':>13}")
for name, s, turns in [("loopvel simulate", lv_s, lv_turns), ("NumPy (bench/)", np_s, np_turns)]:
    print(f"{name:<22}{s:>9.3f}{2 * runs / s:>14,.0f}{turns / s:>14,.0f}{turns:>13,}")
print(f"turns/s ratio loopvel / NumPy: {(lv_turns / lv_s) / (np_turns / np_s):.1f}x (floor asked: 10x)")
print("Same answers (pass rate, mean time to pass s):")
for m in ("fast", "frontier"):
    a, b = lv["models"][m], np_["models"][m]
    print(f"  {m:<9} loopvel {a['pass_rate']:.4f} {a['mean_time_to_pass_s']:.2f}   NumPy {b['pass_rate']:.4f} {b['mean_time_to_pass_s']:.2f}")
print(f"loopvel used {lv['threads']} threads; NumPy one.")
PY
