#!/usr/bin/env python3
"""The arm tables of docs/arms-experiment.md, from `loopvel report --json`.

    python3 scripts/arms-tables.py [DB]          # default demo/arms.db

Runs `$LOOPVEL report --db DB --json` (LOOPVEL defaults to
`cargo run --release --quiet --`) and prints the Markdown tables the
experiment's page shows: passing, the per-turn pass rate among runs still
going, THRASH by turn, and turn speed (prompt, cache, time to first token).
Every interval is the report's own (95%, tasks then runs resampled); this only
lays them out by arm, so the page's tables can be remade, not retyped.
Standard library only: the README promises a bare python3.
"""

import json
import os
import shlex
import subprocess
import sys


def sig3(x):
    """Three significant figures, as loopvel prints seconds."""
    if x == 0:
        return "0"
    digits = max(0, 2 - int(f"{abs(x):e}".split("e")[1]))
    return f"{x:,.{digits}f}"


def pct(x):
    return f"{100 * x:.1f}"


def est(e, fmt, unit=""):
    """`value (lo–hi)` for a report estimate {"value", "ci"}, with a unit."""
    if e is None or e.get("value") is None:
        return "n/a"
    lo, hi = e["ci"] if e.get("ci") else (None, None)
    v = fmt(e["value"]) + unit
    return v if lo is None else f"{v} ({fmt(lo)}–{fmt(hi)}{unit})"


def arm(name):
    return name.split(" / ", 1)[1] if " / " in name else name


def main():
    db = sys.argv[1] if len(sys.argv) > 1 else "demo/arms.db"
    loopvel = shlex.split(os.environ.get("LOOPVEL", "cargo run --release --quiet --"))
    out = subprocess.run(loopvel + ["report", "--db", db, "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"loopvel report --db {db} --json failed:\n{out.stderr}")
    report = json.loads(out.stdout)
    models = list(report["models"].values())
    arms = [arm(m["model"]) for m in models]
    head = lambda first: f"| {first} | " + " | ".join(f"`{a}`" for a in arms) + " |\n|" + "---|" * (len(arms) + 1)

    print(f"{report['runs']} runs on {report['tasks']} tasks (`loopvel report --db {db}`)\n")
    print("### Passing\n")
    print("| arm | runs | passed | pass rate (task-aware) | first turn | mean time to pass |\n|---|---|---|---|---|---|")
    for a, m in zip(arms, models):
        rate = {"value": m["pass_rate"], "ci": m["pass_rate_ci"]}
        first = {"value": m["one_shot_rate"], "ci": m["one_shot_rate_ci"]}
        mean = {"value": m["mean_time_to_pass_s"], "ci": m["mean_time_to_pass_ci"]}
        print(f"| `{a}` | {m['runs']} | {m['passes']} | {est(rate, pct, '%')} | {est(first, pct, '%')} | {est(mean, sig3, ' s')} |")

    print("\n### Per-turn pass rate among runs still going\n")
    print(head("turn"))
    turns = max(len(m["hazard"]) for m in models)
    later = [[0, 0] for _ in models]
    for t in range(turns):
        cells = []
        for i, m in enumerate(models):
            h = m["hazard"][t] if t < len(m["hazard"]) else None
            if h is None:
                cells.append("")
                continue
            if t > 0:
                later[i][0] += h["passed"]
                later[i][1] += h["at_risk"]
            cell = f"{h['passed']}/{h['at_risk']}"
            if h["passed"]:
                cell += f" {est({'value': h['rate'], 'ci': h['ci']}, pct, '%')}"
            cells.append(cell)
        print(f"| {t + 1} | " + " | ".join(cells) + " |")
    print(f"| turns 2–{turns} | " + " | ".join(f"**{p} of {n}**" for p, n in later) + " |")

    print("\n### THRASH share by turn (fewer tests passing than before, or files back in a state already tried)\n")
    print(head("turn"))
    for t in range(1, max(len(m["by_turn"]) for m in models)):
        cells = [est(m["by_turn"][t]["thrash_share"], pct, "%") if t < len(m["by_turn"]) else "" for m in models]
        print(f"| {t + 1} | " + " | ".join(cells) + " |")
    print("| all turns | " + " | ".join(est(m["thrash_share"], pct, "%") for m in models) + " |")

    print("\n### Turn speed: prompt, cache and time to first token\n")
    print("| turn | " + " | ".join(f"`{a}` prompt, TTFT" for a in arms) + " |\n|" + "---|" * (len(arms) + 1))
    for t in range(max(len(m["by_turn"]) for m in models)):
        cells = []
        for m in models:
            b = m["by_turn"][t] if t < len(m["by_turn"]) else None
            cells.append("" if b is None else f"{int(b['input_tokens'] + 0.5):,} tokens, {est(b['ttft_s'], sig3, ' s')}")
        print(f"| {t + 1} | " + " | ".join(cells) + " |")
    print()
    print("| arm | input tokens, all turns | uncached | cached share | model call per turn (mean) |\n|---|---|---|---|---|")
    for a, m in zip(arms, models):
        c = m["cache"]
        uncached = c["input_tokens"] - (c["cached_input_tokens"] or 0)
        print(
            f"| `{a}` | {c['input_tokens']:,} | {uncached:,} | {est(c['cached_share'], pct, '%')} | "
            f"{est(m['time_split']['model_s'], sig3, ' s')} |"
        )

    print("\n### Fitted p_retry and r (profile likelihood for p_retry, treating runs and turns as independent)\n")
    print("| arm | p_retry | r | ceiling |\n|---|---|---|---|")
    two = lambda x: f"{x:.2f}"
    for a, m in zip(arms, models):
        f = m.get("fit") or {}
        print(f"| `{a}` | {est(f.get('p_retry'), two)} | {est(f.get('r'), two)} | {est(f.get('ceiling'), two)} |")


if __name__ == "__main__":
    main()
