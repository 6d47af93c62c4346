"""Mixed-skin generation on SmolLM2-135M (CPU): throughput, memory with 1,000 skins, add/remove latency,
and PEFT's own mixed-adapter generation (LoRA, adapter_names) as a reference row.

    python benchmarks/serve_generate.py                 # prints a table, writes benchmarks/results/serve_generate.json

Throughput: 16 prompts over 8 LN skins (2 rows each), 32 new tokens, greedy, every row generating all 32
(ignore_eos), after a warm-up: mixed and one skin 9 times each, interleaved (their ratio is the median of
the 9 back-to-back pairs), separate and PEFT 3 times; tokens/s from the median time:
  mixed      one batch of 16 rows, 8 skins
  one skin   the same 16 rows, all on one skin (the per-row gather is skipped: uniform route)
  separate   8 batches of 2 rows, one per skin (what serving without mixing does)
  PEFT LoRA  8 LoRA adapters (r=8, q/v), one batch of 16 rows with adapter_names (PEFT's mixed batch)
Skins are seeded perturbations of every RMSNorm gain (what LN-tuning trains), saved and loaded as files.
"""
from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

from lntune.method import build_method, prepare
from lntune.model import load_model
from lntune.serve import SkinBank
from lntune.serve.generate import Sampling
from lntune.skin import TENSORS, save_skin

OUT = Path(__file__).parent / "results" / "serve_generate.json"
PROMPTS = [
    "The capital of France is", "Once upon a time, in a small village,", "Write a haiku about the sea:",
    "The three primary colours are", "def fibonacci(n):", "My favourite recipe for soup starts with",
    "Q: What is 12 times 12?\nA:", "The weather today is", "In 1969, the first humans", "A good name for a cat is",
    "The quick brown fox", "To make a cup of tea, first", "Photosynthesis is the process by which",
    "The best way to learn a language is", "Dear hiring manager,", "Translate to French: good morning ->",
]
NEW = 32
REPEATS = 9  # mixed and one-skin pairs


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def make_skins(n: int, out: Path) -> list[Path]:
    lm = load_model("smollm2", "causal-lm")
    tuning = prepare(lm, build_method("ln"))
    base = {id(t): t.param.detach().clone() for t in tuning.all}
    paths = []
    for i in range(n):
        g = torch.Generator().manual_seed(i)
        with torch.no_grad():
            for t in tuning.all:
                t.param.copy_(base[id(t)] + torch.randn(t.param.shape, generator=g) * 0.05)
        paths.append(save_skin(out / f"s{i}", tuning, {"task": {"name": f"t{i}", "head": "causal-lm"}}))
    return paths


def timed(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds of each function per repeat; the repeats are interleaved (a, b, a, b, ...) so that the
    machine's drift (a shared VM's speed moves by 20% within minutes here) hits every function alike."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return times


def throughput(bank: SkinBank, names: list[str], new: int) -> tuple[dict, float]:
    """Tokens/s of each batch (median over repeats) and mixed / one skin as the median of the paired
    per-repeat ratios (each pair ran back to back)."""
    s = Sampling(max_tokens=new, ignore_eos=True)
    rows = [(names[i // 2], p, s) for i, p in enumerate(PROMPTS)]
    tokens = len(rows) * new
    pair = timed({"mixed": lambda: bank.generate(rows),
                  "one skin": lambda: bank.generate([(names[0], p, s) for _, p, s in rows])}, REPEATS)
    alone = timed({"separate": lambda: [bank.generate(rows[i : i + 2]) for i in range(0, len(rows), 2)]}, 3)
    tps = {k: tokens / statistics.median(v) for k, v in {**pair, **alone}.items()}
    return tps, statistics.median(o / m for m, o in zip(pair["mixed"], pair["one skin"]))


def peft_lora(n_adapters: int, new: int) -> float:
    from peft import LoraConfig, get_peft_model

    lm = load_model("smollm2", "causal-lm")
    tok = lm.tokenizer
    tok.padding_side = "left"
    cfg = LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(lm.model, cfg, adapter_name="a0")
    for i in range(1, n_adapters):
        model.add_adapter(f"a{i}", cfg)
    model.eval()
    batch = tok(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    names = [f"a{i // 2}" for i in range(len(PROMPTS))]

    def run():
        with torch.inference_mode():
            model.generate(**batch, adapter_names=names, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                           pad_token_id=tok.pad_token_id)

    return len(PROMPTS) * new / statistics.median(timed({"peft": run}, 3)["peft"])


def scale(bank: SkinBank, template: Path, n: int, tmp: Path) -> dict:
    """n skins loaded: resident memory growth against the skins' tensor bytes; add/remove latency, also while
    a generation runs."""
    from safetensors import safe_open

    with safe_open(template / TENSORS, "pt") as f:
        per_skin = sum(f.get_tensor(k).numel() * f.get_tensor(k).element_size() for k in f.keys())
    copies = []
    for i in range(n):
        copies.append(tmp / f"c{i}")
        shutil.copytree(template, copies[-1])
    gc.collect()
    before, t0 = rss(), time.perf_counter()
    for i, path in enumerate(copies):
        bank.add_skin(f"c{i}", path)
    load_s = time.perf_counter() - t0
    gc.collect()
    grown = rss() - before

    def churn(k: int = 100) -> tuple[list[float], list[float]]:
        adds, removes = [], []
        for j in range(k):
            t = time.perf_counter()
            bank.add_skin("extra", template)
            adds.append(time.perf_counter() - t)
            t = time.perf_counter()
            bank.remove_skin("extra")
            removes.append(time.perf_counter() - t)
        return adds, removes

    idle = churn()
    stop = threading.Event()

    def serve():
        rows = [(f"c{i * 7 % n}", p, Sampling(max_tokens=8, ignore_eos=True)) for i, p in enumerate(PROMPTS)]
        while not stop.is_set():
            bank.generate(rows)

    worker = threading.Thread(target=serve)
    worker.start()
    time.sleep(0.5)
    busy = churn()
    stop.set()
    worker.join()
    ms = lambda xs: {"median_ms": 1000 * statistics.median(xs),  # noqa: E731
                     "p95_ms": 1000 * statistics.quantiles(xs, n=20)[-1], "max_ms": 1000 * max(xs), "n": len(xs),
                     "over_10ms": sum(x > 0.010 for x in xs)}
    return {"skins": n, "tensor_bytes_per_skin": per_skin, "tensor_bytes": n * per_skin, "rss_growth_bytes": grown,
            "rss_growth_over_tensor_bytes": grown / (n * per_skin), "table_bytes": bank.table_bytes(),
            "load_seconds": load_s, "add_idle": ms(idle[0]), "remove_idle": ms(idle[1]),
            "add_while_generating": ms(busy[0]), "remove_while_generating": ms(busy[1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--skins", type=int, default=1000)
    ap.add_argument("--new-tokens", type=int, default=NEW, help="a smaller number for a quick check")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict = {"model": "smollm2 (SmolLM2-135M-Instruct, dequantised GGUF)", "prompts": len(PROMPTS),
                    "new_tokens": args.new_tokens, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = make_skins(8, tmp / "skins")
        bank = SkinBank("smollm2", head="causal-lm")
        for i, p in enumerate(paths):
            bank.add_skin(f"s{i}", p)
        tps, paired = throughput(bank, [f"s{i}" for i in range(8)], args.new_tokens)
        tps["PEFT LoRA (adapter_names)"] = peft_lora(8, args.new_tokens)
        result["tokens_per_second"] = tps
        result["mixed_over_one_skin"] = paired
        result["mixed_over_separate"] = tps["mixed"] / tps["separate"]
        result["scale"] = scale(bank, paths[0], args.skins, tmp / "copies")
    print(f"{'batch':28} {'tokens/s':>9}")
    for k, v in result["tokens_per_second"].items():
        print(f"{k:28} {v:9.1f}")
    print(f"mixed / one skin = {result['mixed_over_one_skin']:.3f} (target >= 0.95); "
          f"mixed / separate = {result['mixed_over_separate']:.2f} (target >= 2)")
    s = result["scale"]
    print(f"{s['skins']} skins: RSS +{s['rss_growth_bytes'] / 2**20:.1f} MiB for {s['tensor_bytes'] / 2**20:.1f} MiB "
          f"of tensors = {s['rss_growth_over_tensor_bytes']:.2f}x (target <= 1.5); loaded in {s['load_seconds']:.1f} s")
    for k in ("add_idle", "remove_idle", "add_while_generating", "remove_while_generating"):
        print(f"{k:24} median {s[k]['median_ms']:.2f} ms, p95 {s[k]['p95_ms']:.2f} ms, max {s[k]['max_ms']:.2f} ms "
              f"of {s[k]['n']}, {s[k]['over_10ms']} over 10 ms (target < 10)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
