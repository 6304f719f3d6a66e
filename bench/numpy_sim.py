#!/usr/bin/env python3
"""A straightforward vectorised NumPy simulation of examples/talk-realistic.toml,
the reference for loopvel simulate's speed benchmark (bench/simulate.sh).

Same model as loopvel's engine for this scenario: per run, p_first and p_retry
drawn from beta distributions (task heterogeneity); per turn, lognormal first
token time, decode speed, reply length and test time; the turn passes with
p_first (first turn) or p_retry; up to 15 turns. Vectorised over runs: each
turn samples arrays for the runs still going.

Usage: python3 bench/numpy_sim.py [RUNS] [SEED]
Prints one JSON line: runs, turns simulated, seconds inside Python, and per
model pass rate, mean and P90 time to pass, so the two engines can be compared.
"""
import json
import math
import sys
import time

import numpy as np

Z90 = 1.2815515655446004


def lognormal(median, p90):
    return math.log(median), math.log(p90 / median) / Z90


def beta(mean, concentration):
    return mean * concentration, (1.0 - mean) * concentration


LOOP = dict(test_s=lognormal(0.3, 0.5), overhead_s=0.2, max_turns=15)
MODELS = {
    "fast": dict(
        ttft=lognormal(0.5, 1.0), tps=lognormal(1000, 1400), out=lognormal(2000, 3000),
        p_first=beta(0.05, 4), p_retry=beta(0.25, 2),
        input_tokens=6000, growth=1500, usd_in=0.25e-6, usd_out=0.75e-6,
    ),
    "frontier": dict(
        ttft=lognormal(4.5, 8.0), tps=lognormal(80, 100), out=lognormal(2000, 3000),
        p_first=beta(0.3, 2), p_retry=beta(0.8, 2),
        input_tokens=6000, growth=1500, usd_in=2.5e-6, usd_out=15e-6,
    ),
}


def simulate(m, runs, rng):
    p_first = rng.beta(*m["p_first"], runs)
    p_retry = rng.beta(*m["p_retry"], runs)
    t = np.zeros(runs)
    usd = np.zeros(runs)
    turns_at_pass = np.zeros(runs, dtype=np.int64)
    active = np.arange(runs)
    turns = 0
    for turn in range(1, LOOP["max_turns"] + 1):
        n = active.size
        if n == 0:
            break
        turns += n
        out = rng.lognormal(*m["out"], n)
        gen = rng.lognormal(*m["ttft"], n) + out / rng.lognormal(*m["tps"], n)
        t[active] += LOOP["overhead_s"] + gen + rng.lognormal(*LOOP["test_s"], n)
        usd[active] += (m["input_tokens"] + m["growth"] * (turn - 1)) * m["usd_in"] + out * m["usd_out"]
        p = p_first[active] if turn == 1 else p_retry[active]
        passed = rng.random(n) < p
        turns_at_pass[active[passed]] = turn
        active = active[~passed]
    ok = turns_at_pass > 0
    times = t[ok]
    return turns, {
        "pass_rate": float(ok.mean()),
        "mean_time_to_pass_s": float(times.mean()),
        "p90_time_to_pass_s": float(np.percentile(times, 90)),
        "median_turns": float(np.median(turns_at_pass[ok])),
        "usd_per_solved": float(usd.sum() / ok.sum()),
    }


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    total_turns = 0
    results = {}
    for name, m in MODELS.items():
        turns, results[name] = simulate(m, runs, rng)
        total_turns += turns
    elapsed = time.perf_counter() - start
    print(json.dumps({"runs": runs, "turns_simulated": total_turns, "elapsed_s": elapsed, "models": results}))


if __name__ == "__main__":
    main()
