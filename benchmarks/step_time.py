"""LN-tuning's training step against its limit, full fine-tuning and PEFT's LN_TUNING, on one CPU.

    python benchmarks/step_time.py            # embedded MiniLM, batch 32 x 128, all cores
    python benchmarks/step_time.py --quick    # smoke test: tiny batch, few repeats

All step rows run in one process on the same batch, interleaved repeat by repeat, after warm-up;
each row is the median. The batch is real SST-2 training sentences padded (or truncated) to the
sequence length (--data random: random token ids, no padding). Every model trains in train mode
with the checkpoint's dropout; no row changes the training algorithm (lntune's fast dropout draws
the same Bernoulli masks from other random numbers; see lntune.train.fast).

  forward (eval)     no-grad forward in eval mode: inference
  forward (train)    no-grad forward of the step (Step.forward, train mode): its forward half, dropout included
  LN step            lntune's step (lntune.train.step.Step, as train() builds it): LN gains and biases
                     plus the head; packed AdamW, fast dropout masks, last block cut to the read row
  LN step, levers off    the same Step with packed=False, fast_dropout=False, cut_last_block=False
  full FT step       the same Step (levers on) with every parameter trainable (and, for reference,
                     with the levers off)
  BitFit step        the same Step (levers on) training every bias and the head: paper 000 sec. 4.3 says
                     LN-tuning trains fastest of the PEFT methods; the sweeps' per-run times share the
                     machine with other runs, so this interleaved row is the controlled comparison
  PEFT LN_TUNING     peft.get_peft_model(LNTuningConfig) on the same LayerNorms, classifier in
                     modules_to_save; plain loop: backward, clip, torch AdamW, schedule
  epochs             train() on --epoch-batches batches for three epochs, the faster of epochs 2
                     and 3 timed (epoch 1 records the cache; evaluation excluded): all-layer LN;
                     top-half LN with frozen_bottom=eval, without and with the frozen-bottom cache
  peak memory        a fresh subprocess per method: the peak resident set size (VmHWM, reset after
                     loading the model and running one no-grad forward of the batch) while setting up
                     training and running 3 steps; "training" is that peak minus the resident size
                     before it: what training adds to inference (kept activations, gradients,
                     optimizer). Measured with glibc's mmap threshold fixed at 64 KiB ("live", the
                     target) and with its default adaptive threshold ("default")

Prints a table and the ratios against the targets; writes benchmarks/results/step_time.json.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

warnings.filterwarnings("ignore", message="Unsupported layer type")  # PEFT on LayerNorm: expected
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")

TARGETS = {  # ratio: (numerator, denominator, target upper bound)
    "LN step / forward (train)": ("ln_step", "forward_train", 2.1),
    "LN step / PEFT LN_TUNING step": ("ln_step", "peft_step", 0.95),
    "LN step / full FT step": ("ln_step", "full_step", 0.5),
    "LN peak memory / full FT (training)": ("ln", "full", 0.6),
    "top-half LN epoch, cache / all-layer LN epoch": ("top_half_cache", "all_layers", 0.4),
}
LABELS = {
    "forward_eval": "forward, no grad (eval)",
    "forward_train": "forward, no grad (train)",
    "ln_step": "LN step (lntune)",
    "ln_step_plain": "LN step, levers off",
    "full_step": "full FT step",
    "full_step_plain": "full FT step, levers off",
    "peft_step": "PEFT LN_TUNING step",
    "bitfit_step": "BitFit step (lntune)",
}


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--epoch-batches", type=int, default=8)
    ap.add_argument("--epoch-repeats", type=int, default=1, help="rounds of the three epoch runs")
    ap.add_argument("--data", choices=["sst2", "random"], default="sst2")
    ap.add_argument("--quick", action="store_true", help="smoke test: batch 4 x 32, 2 repeats, 2 epoch batches")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--out", default="benchmarks/results/step_time.json")
    ap.add_argument("--memory-of", choices=["ln", "full", "peft"], help=argparse.SUPPRESS)  # subprocess mode
    args = ap.parse_args()
    if args.quick:
        args.batch, args.seq, args.repeats, args.warmup, args.epoch_batches = 4, 32, 2, 1, 2
    return args


def examples(args, n: int, tokenizer) -> list[dict]:
    """`n` encoded examples, every one exactly args.seq tokens long (padded), labels 0/1."""
    from lntune.heads import encode

    if args.data == "random":
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(1000, tokenizer.vocab_size, (n, args.seq), generator=g)
        return [{"input_ids": r.tolist(), "token_type_ids": [0] * args.seq, "attention_mask": [1] * args.seq,
                 "labels": i % 2} for i, r in enumerate(ids)]
    from lntune.api import load_split

    rows = load_split("sst2", "train", None, n, 0)
    feats = encode(rows, tokenizer, "classification", args.seq)
    for f in feats:
        pad = args.seq - len(f["input_ids"])
        f["input_ids"] = f["input_ids"] + [tokenizer.pad_token_id] * pad
        f["attention_mask"] = f["attention_mask"] + [0] * pad
        if "token_type_ids" in f:
            f["token_type_ids"] = f["token_type_ids"] + [0] * pad
    return feats


def lntune_step(args, method: str, batch: dict, lr: float, feats: list[dict], loaded=lambda model: None, **config):
    """lntune's Step for `method`, as train() builds it (probes from the data locate the last-block cut);
    `loaded()` runs once the model is in memory, before anything for training is allocated."""
    from functools import partial

    from lntune.data.encode import collate
    from lntune.method import build_method, prepare
    from lntune.model import load_model
    from lntune.train import TrainConfig
    from lntune.train.split import probes
    from lntune.train.step import Step

    lm = load_model(args.model, "classification", 2)
    loaded(lm.model)
    tuning = prepare(lm, build_method(method))
    pad = lm.tokenizer.pad_token_id
    step = Step(tuning, TrainConfig(lr=lr, progress=False, **config), 10**6,
                probes=probes(feats, partial(collate, pad_id=pad), pad))
    step.model.train()
    return step, lambda: step(batch)


def peft_step(args, batch: dict, lr: float, loaded=lambda model: None):
    from peft import LNTuningConfig, TaskType, get_peft_model
    from transformers import get_linear_schedule_with_warmup

    from lntune.model import load_model

    lm = load_model(args.model, "classification", 2)
    loaded(lm.model)
    names = [site.name for site in lm.norms]
    model = get_peft_model(lm.model, LNTuningConfig(task_type=TaskType.SEQ_CLS, target_modules=names))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    sched = get_linear_schedule_with_warmup(opt, 0, 10**6)
    model.train()

    def step():
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    return sum(p.numel() for p in params), step


def forward_rows(step, batch: dict) -> dict:
    """No-grad forwards of the LN model: inference (eval), and the forward half of the step (train)."""
    model = step.model

    @torch.no_grad()
    def forward(training: bool):
        model.train(training)
        step.forward(batch) if training else model(**batch)
        model.train(True)

    return {"forward_eval": lambda: forward(False), "forward_train": lambda: forward(True)}


def time_rows(rows: dict, repeats: int, warmup: int) -> dict[str, list[float]]:
    for fn in rows.values():
        for _ in range(warmup):
            fn()
    samples = {k: [] for k in rows}
    for _ in range(repeats):
        for k, fn in rows.items():  # interleaved: load changes hit every row alike
            start = time.perf_counter()
            fn()
            samples[k].append((time.perf_counter() - start) * 1000)
    return samples


def epochs(args, feats: list[dict]) -> dict[str, float]:
    """Seconds of a cached-phase epoch of train(): the faster of epochs 2 and 3 (epoch 1 records the
    cache), all-layer LN, top-half LN without and with the cache; --epoch-repeats rounds, round-robin,
    median over rounds."""
    from lntune.method import build_method, prepare
    from lntune.model import load_model
    from lntune.train import TrainConfig, train

    runs = {
        "all_layers": ({}, {}),
        "top_half_no_cache": ({"layers": "top-half"}, {"frozen_bottom": "eval", "cache_bottom": "off"}),
        "top_half_cache": ({"layers": "top-half"}, {"frozen_bottom": "eval", "cache_bottom": "on"}),
    }
    seconds, out = {name: [] for name in runs}, {}
    for _ in range(args.epoch_repeats):
        for name, (options, extra) in runs.items():
            lm = load_model(args.model, "classification", 2)
            tuning = prepare(lm, build_method("ln", **options))
            config = TrainConfig(lr=1e-2, epochs=3, batch_size=args.batch, eval_batch_size=args.batch,
                                 max_length=args.seq, progress=False, **extra)
            result = train(tuning, feats, feats[: args.batch], config)
            seconds[name].append(min(result.epoch_seconds[1:]))
            if name == "top_half_cache":
                out["cache_site"] = result.cache["site"]
            print(f"  {name:20s} epochs {', '.join(f'{s:.2f}s' for s in result.epoch_seconds)}", flush=True)
    out.update({name: statistics.median(v) for name, v in seconds.items()})
    return out


def memory_child(args) -> None:
    """Subprocess mode: peak RSS of three training steps of one method."""
    torch.set_num_threads(args.threads)
    from lntune.model.load import resolve
    from transformers import AutoTokenizer

    from lntune.data.encode import collate

    import accelerate  # noqa: F401 - imported before the measurement starts, as training imports them
    import peft  # noqa: F401
    import transformers.optimization  # noqa: F401

    tok = AutoTokenizer.from_pretrained(resolve(args.model))
    feats = examples(args, args.batch, tok)
    batch = collate(feats, tok.pad_token_id)
    mark = {}

    @torch.no_grad()
    def loaded(model):
        # One inference forward first: the libraries' first-call buffers are inference's too. What
        # the peak adds over this is training's: activations kept for backward, gradients, optimizer.
        model.eval()
        model(**batch)
        gc.collect()
        mark["before"], mark["reset"] = _rss_mb("VmRSS"), _reset_peak()

    if args.memory_of == "peft":
        _, step = peft_step(args, batch, 1e-2, loaded)
    else:
        method, lr = ("ln", 1e-2) if args.memory_of == "ln" else ("full", 1e-4)
        _, step = lntune_step(args, method, batch, lr, feats, loaded)
    for _ in range(3):
        step()
    peak = _rss_mb("VmHWM") if mark["reset"] else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"before_mb": mark["before"], "peak_mb": peak, "training_mb": peak - mark["before"],
                      "peak_reset": mark["reset"]}))


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> bool:
    """Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM) of this process."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def memory(args) -> dict:
    """Per method: "live" runs glibc with a fixed 64 KiB mmap threshold, so freed blocks go back to
    the system and the peak resident size follows live memory; "default" keeps glibc's adaptive
    threshold, under which freed blocks of up to 32 MiB stay in the heap and the peak also depends
    on allocation order. The targets use "live"."""
    out = {"live": {}, "default": {}}
    for allocator, env in (("live", {"MALLOC_MMAP_THRESHOLD_": "65536"}), ("default", {})):
        for method in ("ln", "full", "peft"):
            cmd = [sys.executable, __file__, "--memory-of", method, "--model", args.model, "--batch", str(args.batch),
                   "--seq", str(args.seq), "--threads", str(args.threads), "--data", args.data]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, **env})
            out[allocator][method] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  memory {allocator:7s} {method:4s} {out[allocator][method]['training_mb']:.0f} MB", flush=True)
    return out


def ratios(ms: dict, mem: dict, ep: dict) -> dict:
    out = {}
    for name, (num, den, target) in TARGETS.items():
        if num in ms:
            value = ms[num] / ms[den]
        elif num in mem.get("live", {}):
            value = mem["live"][num]["training_mb"] / mem["live"][den]["training_mb"]
        elif num in ep:
            value = ep[num] / ep[den]
        else:
            continue
        out[name] = {"value": round(value, 4), "target": target, "met": value <= target}
    if "forward_eval" in ms:
        out["LN step / forward (eval)"] = {"value": round(ms["ln_step"] / ms["forward_eval"], 4)}
        out["LN step / full FT step, levers off"] = {"value": round(ms["ln_step"] / ms["full_step_plain"], 4)}
        out["LN step, levers off / PEFT LN_TUNING step"] = {"value": round(ms["ln_step_plain"] / ms["peft_step"], 4)}
    if "bitfit_step" in ms:
        out["LN step / BitFit step"] = {"value": round(ms["ln_step"] / ms["bitfit_step"], 4)}
    if "ln" in mem.get("default", {}):
        d = mem["default"]
        out["LN peak memory / full FT (training, default allocator)"] = {
            "value": round(d["ln"]["training_mb"] / d["full"]["training_mb"], 4)}
        out["LN peak memory / PEFT LN_TUNING (training)"] = {
            "value": round(mem["live"]["ln"]["training_mb"] / mem["live"]["peft"]["training_mb"], 4)}
    if "top_half_no_cache" in ep:
        out["top-half LN epoch, cache / no cache"] = {"value": round(ep["top_half_cache"] / ep["top_half_no_cache"], 4)}
    return out


def main() -> None:
    args = parse()
    if args.memory_of:
        return memory_child(args)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from transformers import AutoTokenizer

    from lntune.data.encode import collate
    from lntune.model.load import resolve

    tok = AutoTokenizer.from_pretrained(resolve(args.model))
    feats = examples(args, args.batch * args.epoch_batches, tok)
    batch = collate(feats[: args.batch], tok.pad_token_id)
    print(f"{args.model}, batch {args.batch} x {args.seq} ({args.data}), {args.threads} threads, "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}", flush=True)

    ln, ln_fn = lntune_step(args, "ln", batch, 1e-2, feats)
    _, plain_fn = lntune_step(args, "ln", batch, 1e-2, feats, packed=False, fast_dropout=False, cut_last_block=False)
    full, full_fn = lntune_step(args, "full", batch, 1e-4, feats)
    _, full_plain_fn = lntune_step(args, "full", batch, 1e-4, feats, packed=False, fast_dropout=False,
                                   cut_last_block=False)
    bitfit, bitfit_fn = lntune_step(args, "bitfit", batch, 1e-3, feats)
    peft_count, peft_fn = peft_step(args, batch, 1e-2)
    ours = ln.tuning.counts()["tuned"] + ln.tuning.counts()["head"]
    if ours != peft_count:
        raise SystemExit(f"trainable parameters differ: lntune {ours}, PEFT {peft_count}")
    print(f"trainable: {ours:,} (lntune LN and PEFT LN_TUNING), {full.tuning.counts()['tuned']:,} (full FT); "
          f"last-block cut at {ln.cut}", flush=True)
    rows = {**forward_rows(ln, batch), "ln_step": ln_fn, "ln_step_plain": plain_fn, "full_step": full_fn,
            "full_step_plain": full_plain_fn, "peft_step": peft_fn, "bitfit_step": bitfit_fn}
    print(f"timing {len(rows)} rows x {args.repeats} repeats (+{args.warmup} warm-up) ...", flush=True)
    samples = time_rows(rows, args.repeats, args.warmup)
    ms = {k: statistics.median(v) for k, v in samples.items()}
    del rows, ln_fn, plain_fn, full_fn, full_plain_fn, peft_fn, bitfit_fn

    print("epochs ...", flush=True)
    ep = epochs(args, feats)
    mem = {} if args.no_memory else memory(args)

    print(f"\n{'row':34s} {'median ms':>10s}  samples")
    for k, v in ms.items():
        print(f"{LABELS[k]:34s} {v:10.1f}  {' '.join(f'{x:.0f}' for x in samples[k])}")
    for k in ("all_layers", "top_half_no_cache", "top_half_cache"):
        print(f"{'epoch: ' + k:34s} {ep[k] * 1000:10.1f}")
    for allocator, rows_ in mem.items():
        for k, v in rows_.items():
            print(f"{f'peak memory ({allocator}): {k}':34s} {v['peak_mb']:8.0f} MB (training {v['training_mb']:.0f} MB)")
    result = ratios(ms, mem, ep)
    print(f"\n{'ratio':48s} {'value':>7s} {'target':>7s}")
    for k, r in result.items():
        target = f"<= {r['target']}" if "target" in r else ""
        mark = "" if "met" not in r else ("  met" if r["met"] else "  MISSED")
        print(f"{k:48s} {r['value']:7.3f} {target:>7s}{mark}")
    record = {
        "settings": {**{k: v for k, v in vars(args).items() if k != "memory_of"}, "torch": torch.__version__,
                     "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "trainable": {"lntune_ln": ours, "peft_ln_tuning": peft_count, "full": full.tuning.counts()["tuned"],
                      "bitfit": bitfit.tuning.counts()["tuned"] + bitfit.tuning.counts()["head"]},
        "last_block_cut": ln.cut,
        "median_ms": ms,
        "samples_ms": samples,
        "epoch_seconds": ep,
        "peak_memory_mb": mem,
        "ratios": result,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, out)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
