"""Record the golden outputs: run only deliberately, BEFORE a change that is meant to alter behaviour.

    PYTHONPATH=src python tests/golden/record.py      # from the repository root

golden.json holds, for every method x head case of tests/golden/cases.py, the first training losses,
the kept state's dev metrics, the parameter counts and per-tensor summaries of the tuned tensors, or
the error a refused pair raises. tests/golden/test_golden.py recomputes every case with the same code
(cases.run_case) and fails on any difference beyond rounding: a refactoring that must not change
behaviour is checked by it. Do NOT re-record to make that test pass after a refactoring; re-record
only when a behaviour change is intended (and say so in the commit), from the code before the change
when the point is to prove the change kept everything else equal.

The script prints which lntune it imported (check it is the tree you mean), and what it wrote.
"""
from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: the golden package, as pytest imports it

from golden import cases  # noqa: E402

OUT = HERE / "golden.json"


def _source(package_file: str) -> dict:
    """The commit (and whether the tree differs from it) of the lntune that was imported."""
    root = Path(package_file).resolve().parents[2]  # <root>/src/lntune/__init__.py

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {"lntune": str(Path(package_file).resolve()), "commit": git("rev-parse", "HEAD") or None,
            "src_modified": bool(git("status", "--porcelain", "--", "src"))}


def main() -> None:
    import torch
    import transformers

    import lntune

    source = _source(lntune.__file__)
    print(f"lntune from {source['lntune']} (commit {source['commit']}, src modified: {source['src_modified']})")
    start = time.perf_counter()
    outcomes = {}
    for case in cases.CASES:
        outcomes[cases.case_id(*case)] = cases.run_case(*case)
    seconds = time.perf_counter() - start
    meta = {**source, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "machine": platform.machine(),
            "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    OUT.write_text(json.dumps({"meta": meta, "cases": outcomes}, indent=1, sort_keys=True) + "\n")
    refused = {k: v for k, v in outcomes.items() if "refused" in v}
    print(f"wrote {OUT}: {len(outcomes)} cases in {seconds:.1f} s, {len(outcomes) - len(refused)} trained, "
          f"{len(refused)} refused")
    for k, v in refused.items():
        print(f"  refused {k}: {v['refused']} at {v['stage']}")
    for k, v in outcomes.items():
        if k not in refused:
            print(f"  {k}: losses {', '.join(f'{x:.6f}' for x in v['losses'])}; dev loss {v['metrics']['loss']:.6f}; "
                  f"{len(v['tensors'])} tensors, {v['counts']['tuned']:,} tuned")


if __name__ == "__main__":
    main()
