"""benchmarks/sequential_coverage.py, the registered check of the converged profile's seed rule: it still runs on
today's records and rule, and reproduces the simulation committed before the sweep's first run."""
import importlib.util
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "results" / "paper_cpu_converged" / "sequential_coverage.json"


def _benchmark():
    spec = importlib.util.spec_from_file_location("sequential_coverage", ROOT / "benchmarks" / "sequential_coverage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_it_reproduces_the_committed_first_row():
    bench, committed = _benchmark(), json.loads(COMMITTED.read_text())
    rule = bench.load_config(ROOT / "benchmarks" / "paper_cpu_converged.yaml").sequential
    diffs = bench.v1_differences()
    assert [f"{a} - {b}" for a, b in diffs] == list(dict.fromkeys(r["contrast"] for r in committed["rows"]))
    first = committed["rows"][0]
    (a, b), d = next(iter(diffs.items()))
    got = bench.simulate(d, rule, first["sims"], first["boot_sims"], first["draw"], np.random.default_rng(0))
    assert json.loads(json.dumps(got)) == {k: v for k, v in first.items() if k not in ("contrast", "draw")}
