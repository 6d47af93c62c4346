"""Does the converged profile's sequential seed rule keep its CI's coverage near 95%? (issue 23, item 5)

    python benchmarks/sequential_coverage.py [--sims 2000] [--boot-sims 300]

Stopping when a CI is narrow enough can make CIs too short: a run of seeds that happen to agree stops
early. This simulates the rule exactly as the sweep runs it (lntune.report.sequential.contrast_stop, the
settings of benchmarks/paper_cpu_converged.yaml) on v1's paired differences (docs/results/paper_cpu): per
task, the true mean is v1's task mean and new seeds draw v1's centred differences with replacement
(rescaled by sqrt(n / (n - 1)) so their variance is the sample variance), or from a normal with v1's
task SD. Each simulated contrast starts with 9 seeds per task, adds blocks of 3 while the t half-width
exceeds 1.5, stops at 16, and is scored by whether its final interval holds the true stratified mean. The
t-interval is what the rule reads; the same draws analysed at a fixed 9 and 16 seeds (no rule) tell the
rule's effect apart from that of the differences' shape; the report's bootstrap CI is checked on fewer
simulations (it costs ~50 ms each). Prints a table and writes docs/results/paper_cpu_converged/
sequential_coverage.json, where `lntune report` shows it beside the contrasts it checks.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lntune.report import claims as C
from lntune.report.aggregate import aggregate, load_records
from lntune.report.paired import bootstrap_ci, stratified_t
from lntune.sweep.config import load_config
from lntune.report.sequential import contrast_stop

ROOT = Path(__file__).resolve().parents[1]


def v1_differences() -> dict[tuple[str, str], dict[str, list[float]]]:
    """(A, B) -> v1's paired differences per task, for the converged profile's sequential contrasts."""
    records = load_records(ROOT / "docs/results/paper_cpu")
    cells = aggregate(records)
    rule = load_config(ROOT / "benchmarks/paper_cpu_converged.yaml").sequential
    out = {}
    for a, b in rule.contrasts:
        sa, sb = (C.side(row, cells, records, C.Design()) for row in (a, b))
        out[(a, b)] = C.differences(sa, sb)
    return out


class _Scored(NamedTuple):
    """The two fields of a record the rule reads (lntune.report.sequential._points): a simulated run."""

    score: float
    metric: str = "accuracy"


def simulate(diffs: dict[str, list[float]], rule, sims: int, boot_sims: int, draw: str, rng) -> dict:
    tasks = sorted(diffs)
    mu = {t: float(np.mean(diffs[t])) for t in tasks}
    truth = float(np.mean(list(mu.values())))
    resid = {t: (np.asarray(diffs[t]) - mu[t]) * math.sqrt(len(diffs[t]) / (len(diffs[t]) - 1)) for t in tasks}
    sd = {t: float(np.std(diffs[t], ddof=1)) for t in tasks}
    seeds = list(range(1, rule.max + 1))
    covered, boot_covered, stops, halves = 0, 0, [], []
    fixed = {rule.start: 0, rule.max: 0}  # the same draws analysed at a fixed seed count: no stopping rule
    for i in range(sims):
        runs = {}
        for t in tasks:
            draws = (mu[t] + rng.choice(resid[t], rule.max) if draw == "resample"
                     else rng.normal(mu[t], sd[t], rule.max))
            for s, d in zip(seeds, draws):  # A - B = d in points: B at 0.5, A at 0.5 + d / 100
                runs[("A", t, s)] = _Scored(0.5 + d / 100)
                runs[("B", t, s)] = _Scored(0.5)
        stop = contrast_stop(rule, "A", "B", tasks, seeds, runs)
        final = {t: [(runs[("A", t, s)].score - 0.5) * 100 for s in seeds[:stop.seeds]] for t in tasks}
        mean, half, _ = stratified_t(final, rule.level)
        covered += abs(mean - truth) <= half
        for n in fixed:
            m, h, _ = stratified_t({t: v[:n] for t, v in
                                    ((t, [(runs[("A", t, s)].score - 0.5) * 100 for s in seeds]) for t in tasks)},
                                   rule.level)
            fixed[n] += abs(m - truth) <= h
        stops.append(stop.seeds)
        halves.append(half)
        if i < boot_sims:
            low, high = bootstrap_ci(final, rule.level, n_resamples=2000, seed=i)
            boot_covered += low <= truth <= high
    counts = {n: stops.count(n) for n in sorted(set(stops))}
    return {"truth": truth, "coverage_t": covered / sims,
            "coverage_t_fixed": {str(n): c / sims for n, c in fixed.items()}, "coverage_bootstrap": boot_covered / max(boot_sims, 1),
            "sims": sims, "boot_sims": boot_sims, "stopped_at": counts, "mean_half_width": float(np.mean(halves)),
            "v1_pairs": {t: len(diffs[t]) for t in tasks}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sims", type=int, default=2000)
    ap.add_argument("--boot-sims", type=int, default=300)
    ap.add_argument("--out", type=Path, default=ROOT / "docs/results/paper_cpu_converged/sequential_coverage.json")
    args = ap.parse_args()
    rule = load_config(ROOT / "benchmarks/paper_cpu_converged.yaml").sequential
    rng = np.random.default_rng(0)
    rows = []
    print(f"{'contrast':28} {'draw':9} {'truth':>6} {'t cover':>8} {'fixed 9/16':>11} {'boot cover':>10} {'half':>5}  "
          "stopped at (seeds: sims)")
    for (a, b), diffs in v1_differences().items():
        for draw in ("resample", "normal"):
            r = simulate(diffs, rule, args.sims, args.boot_sims, draw, rng)
            rows.append({"contrast": f"{a} - {b}", "draw": draw, **r})
            fx = "/".join(f"{v:.3f}" for v in r["coverage_t_fixed"].values())
            print(f"{a + ' - ' + b:28} {draw:9} {r['truth']:+6.2f} {r['coverage_t']:8.3f} {fx:>11} "
                  f"{r['coverage_bootstrap']:10.3f} {r['mean_half_width']:5.2f}  {r['stopped_at']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rule": {"start": rule.start, "block": rule.block, "max": rule.max,
                                             "half_width": rule.half_width, "level": rule.level},
                                    "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
