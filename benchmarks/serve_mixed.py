"""Mixed-task serving throughput: one batch spread over 8 LN skins vs the same batch on one skin
vs 8 separate single-skin batches, in one run, on the embedded MiniLM.

    python benchmarks/serve_mixed.py                      # 64 SST-2 dev sentences, 8 skins
    python benchmarks/serve_mixed.py --rows 16 --repeats 3  # smoke run

Configurations (each timed on the same pre-tokenised rows; forward passes only):
  single    the plain model with one skin applied the normal way (load_skin: native fused
            layer_norm with affine) on the whole batch: the honest baseline
  mixed     the SkinBank on the whole batch, rows spread round-robin over the skins
  separate  the SkinBank on one batch per skin (each padded to its own longest row)
  separate_full_width  the same, but each padded to the whole batch's width: the cost of
            splitting the batch alone, without the padding that smaller batches save

The skins are made without training (seeded perturbations of every LN gain/bias and a random
head, saved with save_skin, so loading them is real). Exactness is checked in the same run:
each row of the mixed batch against its skin applied alone on a fresh base. Also records what
PEFT does when two LN_TUNING adapters are asked for per row with `adapter_names`.
Prints a table and writes benchmarks/results/serve_mixed.json.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from tqdm import tqdm

from lntune.analyse.files import write_json
from lntune.api import load_split
from lntune.method import build_method, prepare
from lntune.model import load_model
from lntune.serve import SkinBank
from lntune.skin import load_skin, save_skin

TARGET_RATIO = 0.95  # mixed / single throughput
TARGET_DIFF = 1e-5  # max |mixed - alone| of the logits, float32


def make_skins(model: str, out: Path, n: int, scale: float) -> list[Path]:
    lm = load_model(model, "classification", 2)
    tuning = prepare(lm, build_method("ln"))
    base = [t.param.detach().clone() for t in tuning.all]
    task = {"name": "sst2", "head": "classification", "labels": ["negative", "positive"], "metric": "accuracy"}
    record = {"task": task}
    dirs = []
    for i in tqdm(range(n), desc="making skins"):
        g = torch.Generator().manual_seed(i)
        with torch.no_grad():
            for t, b in zip(tuning.all, base):
                t.param.copy_(b + scale * torch.randn(b.shape, generator=g))
        dirs.append(save_skin(out / f"skin{i}", tuning, record))
    return dirs


def time_once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def peft_check(model: str) -> dict:
    """Two LN_TUNING adapters, one request per row with adapter_names: what does PEFT do?"""
    import warnings

    import peft
    from peft import LNTuningConfig, get_peft_model

    lm = load_model(model, "classification", 2)
    config = dict(task_type="SEQ_CLS", target_modules=["LayerNorm"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = get_peft_model(lm.model.eval(), LNTuningConfig(**config), adapter_name="a")
        pm.add_adapter("b", LNTuningConfig(**config))
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "ln_tuning_layers.b." in name:
                p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    pm.eval()
    batch = dict(lm.tokenizer(["a fine film .", "a dull film ."], return_tensors="pt"))
    with torch.inference_mode():
        pm.set_adapter("b")
        only_b = pm(**batch).logits
        pm.set_adapter("a")
        only_a = pm(**batch).logits
        try:
            mixed = pm(**batch, adapter_names=["a", "b"]).logits
        except Exception as e:  # noqa: BLE001 - recording whatever PEFT does is the point
            return {"peft": peft.__version__, "behaviour": "raised", "error": f"{type(e).__name__}: {e}"[:300]}
    row1 = "adapter b (mixed per row)" if torch.allclose(mixed[1], only_b[1], atol=1e-5) else (
        "adapter a (adapter_names ignored)" if torch.equal(mixed[1], only_a[1]) else "neither")
    return {"peft": peft.__version__, "behaviour": "ran", "row_asking_for_b_got": row1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--skins", type=int, default=8)
    ap.add_argument("--rows", type=int, default=64, help="rows of the batch (SST-2 dev sentences)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: as torch chose)")
    ap.add_argument("--scale", type=float, default=0.05, help="std of the perturbation of gains/biases/head")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-peft", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/serve_mixed.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rows % args.skins:
        ap.error("--rows must be a multiple of --skins (the same number of rows per skin)")

    texts = [e["text_a"] for e in load_split("sst2", "dev", args.data_dir, args.rows, args.seed)]
    with tempfile.TemporaryDirectory() as tmp:
        dirs = make_skins(args.model, Path(tmp), args.skins, args.scale)
        bank = SkinBank(args.model, batch_size=args.rows)
        names = [f"skin{i}" for i in range(args.skins)]
        for name, d in zip(names, dirs):
            bank.add_skin(name, d)
        plain = load_skin(dirs[0], model=args.model)[0].lm.model.eval()
        references = {n: load_skin(d, model=args.model)[0].lm.model.eval() for n, d in zip(names, dirs)}
    row_skin = [names[i % args.skins] for i in range(args.rows)]
    feats = bank.encode(texts)
    batch = bank.collate(feats)
    groups = {n: [i for i, s in enumerate(row_skin) if s == n] for n in names}
    group_batches = {n: bank.collate([feats[i] for i in idx]) for n, idx in groups.items()}
    full_width = {n: {k: v[idx] for k, v in batch.items()} for n, idx in groups.items()}

    # exactness, in the same run
    got = bank.logits(row_skin, batch)
    diff = 0.0
    with torch.inference_mode():
        for n, idx in groups.items():
            want = references[n](**group_batches[n]).logits
            diff = max(diff, float((torch.stack([got[i][1] for i in idx]) - want).abs().max()))
    del references

    runs = {
        "single": lambda: plain(**batch),
        "mixed": lambda: bank.logits(row_skin, batch),
        "separate": lambda: [bank.logits([n] * len(groups[n]), group_batches[n]) for n in names],
        "separate_full_width": lambda: [bank.logits([n] * len(groups[n]), full_width[n]) for n in names],
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    with torch.inference_mode():
        for r in tqdm(range(args.warmup + args.repeats), desc="timing"):
            for k, fn in runs.items():  # interleaved, so drift on a shared machine hits all alike
                t = time_once(fn)
                if r >= args.warmup:
                    times[k].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: args.rows / v for k, v in med.items()}
    result = {
        "setup": {**vars(args), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                  "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
                  "tokens_per_row_mean": sum(len(f["input_ids"]) for f in feats) / len(feats),
                  "padded_width": int(batch["input_ids"].shape[1])},
        "rows_per_s": rate,
        "median_s": med,
        "rows_per_s_best": {k: args.rows / min(v) for k, v in times.items()},  # less noisy on a shared machine
        "ratios_best": {"mixed_vs_single": min(times["single"]) / min(times["mixed"]),
                        "mixed_vs_separate": min(times["separate"]) / min(times["mixed"])},
        "ratios": {"mixed_vs_single": rate["mixed"] / rate["single"],
                   "mixed_vs_separate": rate["mixed"] / rate["separate"],
                   "mixed_vs_separate_full_width": rate["mixed"] / rate["separate_full_width"]},
        "max_abs_diff_mixed_vs_alone": diff,
        "targets": {"mixed_vs_single_ge": TARGET_RATIO, "max_abs_diff_le": TARGET_DIFF},
        "met": {"throughput": rate["mixed"] / rate["single"] >= TARGET_RATIO, "exactness": diff <= TARGET_DIFF},
        "times_s": times,
    }
    if not args.no_peft:
        result["peft_adapter_names"] = peft_check(args.model)
    print(f"{args.rows} rows over {args.skins} skins, {args.model}, {torch.get_num_threads()} torch thread(s), "
          f"median of {args.repeats}:")
    for k in runs:
        print(f"  {k:19s} {rate[k]:9.1f} rows/s  ({med[k] * 1e3:.1f} ms)")
    print(f"  mixed / single   {result['ratios']['mixed_vs_single']:.3f}  (target >= {TARGET_RATIO})")
    print(f"  mixed / separate {result['ratios']['mixed_vs_separate']:.3f}"
          f"  (each padded to the batch width: {result['ratios']['mixed_vs_separate_full_width']:.3f})")
    print(f"  max |mixed - alone| {diff:.2e}  (target <= {TARGET_DIFF:g})")
    if "peft_adapter_names" in result:
        print(f"  PEFT {result['peft_adapter_names']}")
    print(f"wrote {write_json(args.out, result)}")


if __name__ == "__main__":
    main()
