"""One run per method on an SST-2 subset with the embedded MiniLM: #Para. %, dev accuracy, time.

    python benchmarks/methods_sst2.py --train-limit 1000 --epochs 1

Prints a Markdown table and writes it, with the raw records, to benchmarks/results/.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from lntune.api import train_task
from lntune.method import METHODS
from lntune.train import TrainConfig

# Paper 000, section 4.1: LN-tuning prefers 1e-2; other methods 1e-3; full fine-tuning its own.
LR = {"ln": 1e-2, "full": 1e-4, "3v": 1e-2, "random": 1e-2}
DEFAULT = ["full", "bitfit", "ln", "random", "seq_adapter_ffn", "seq_adapter_mha", "par_adapter_ffn", "prefix",
           "mam", "lora", "3v", "prefix+ln", "bitfit+ln", "seq_adapter_mha+ln", "par_adapter_ffn+ln", "mam+ln"]


def lr_for(method: str) -> float:
    parts = method.split("+")
    return LR["ln"] if "ln" in parts else LR.get(parts[0], 1e-3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default=",".join(DEFAULT))
    ap.add_argument("--train-limit", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default="benchmarks/results/methods_sst2")
    args = ap.parse_args()
    rows = []
    for method in args.methods.split(","):
        if not all(p in METHODS for p in method.split("+")):
            print(f"skip {method}: not registered")
            continue
        config = TrainConfig(lr=lr_for(method), epochs=args.epochs, seed=args.seed, progress=False)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            rec = train_task("sst2", "minilm", method, {}, config, tmp, train_limit=args.train_limit)
        c = rec["counts"]
        rows.append({"method": method, "lr": config.lr, "tuned": c["tuned"], "tuned_pct": c["tuned_pct"],
                     "head": c["head"], "accuracy": rec["metrics"]["accuracy"], "loss": rec["metrics"]["loss"],
                     "seconds": time.perf_counter() - start})
        r = rows[-1]
        print(f"{method:22s} #Para. {r['tuned']:>10,} = {r['tuned_pct']:8.4f}%  acc {r['accuracy']:.4f}  {r['seconds']:.0f}s",
              flush=True)
        write(rows, args)  # after every run, so an interrupted benchmark keeps what it measured
    print(write(rows, args))


def write(rows: list[dict], args) -> str:
    table = ["| method | lr | #Para. | #Para. % | dev acc | seconds |", "|---|---|---|---|---|---|"]
    table += [f"| {r['method']} | {r['lr']:g} | {r['tuned']:,} | {r['tuned_pct']:.4f}% | {r['accuracy']:.4f} | "
              f"{r['seconds']:.0f} |" for r in rows]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"SST-2, embedded MiniLM, {args.train_limit} training sentences, {args.epochs} epoch(s), seed {args.seed}, "
              "full dev set (872)\n\n")
    out.with_suffix(".md").write_text(header + "\n".join(table) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    return "\n".join(table)


if __name__ == "__main__":
    main()
