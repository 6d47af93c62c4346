"""/predict under load (issue 24, 13): latency of concurrent small requests, and of small requests sent beside
one large request, against a real `lntune serve` on the embedded MiniLM.

    python benchmarks/serve_load.py                                  # this tree only
    git worktree add /tmp/before <commit> &&
    python benchmarks/serve_load.py --before-src /tmp/before/src     # before (that commit) and after (this tree)
    python benchmarks/serve_load.py --small 40 --large 32 --beside 3  # smoke run

Scenarios, each against a fresh server process on one skin (seeded perturbation of every LN gain/bias and a random
head, saved with save_skin, so loading is real; no training: latency does not depend on the values):
  alone        one small request (one SST-2 dev sentence) at a time, `--repeats` times: the floor
  concurrent   `--small` small requests sent at once; latency of each, from its send to its answer
  beside       one large request (`--large` inputs of about `--tokens` tokens), then `--beside` small requests one
               second apart while it runs; latency of each small one, and of the large one

The server runs in its own process (the client's threads would otherwise share its interpreter), with
`--threads` torch threads; the figures depend on what else runs on the machine, which the result records.
Prints a table and writes benchmarks/results/serve_load.json.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

from lntune.analyse.files import write_json
from lntune.api import load_split
from lntune.method import build_method, prepare
from lntune.model import load_model
from lntune.skin import save_skin

SRC = Path(__file__).resolve().parents[1] / "src"
TARGET_BESIDE_S = 1.0  # a small request beside a large one, answered within (the target, on 2 cores)


def make_skin(model: str, out: Path) -> Path:
    lm = load_model(model, "classification", 2)
    tuning = prepare(lm, build_method("ln"))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in tuning.all:
            t.param.add_(0.05 * torch.randn(t.param.shape, generator=g))
    task = {"name": "sst2", "head": "classification", "labels": ["negative", "positive"], "metric": "accuracy"}
    return save_skin(out / "sst2", tuning, {"task": task})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(src: Path, skin: Path, threads: int) -> tuple[subprocess.Popen, str]:
    """`lntune serve` from the package under `src`, so that before and after run the same command."""
    port = free_port()
    cmd = [sys.executable, "-c", "from lntune.cli import app; app()", "serve", "--skin", f"sst2={skin}",
           "--port", str(port), "--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(threads)}
    env.pop("LNTUNE_API_KEY", None)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server from {src} exited:\n{proc.stderr.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"the server from {src} did not answer /health within 300 s")


async def post(client: httpx.AsyncClient, texts: list[str], delay: float = 0.0) -> float:
    """Seconds from send to a 200 answer."""
    await asyncio.sleep(delay)
    start = time.perf_counter()
    r = await client.post("/predict", json={"inputs": [{"task": "sst2", "text": t} for t in texts]})
    if r.status_code != 200:
        raise SystemExit(f"/predict answered {r.status_code}: {r.text[:300]}")
    return time.perf_counter() - start


def at_once(url: str, bodies: list[list[str]], delays: list[float]) -> list[float]:
    """Each body sent `delays[k]` seconds after the start, from one event loop (a thread per request would take
    the server's CPU); their latencies."""
    async def run() -> list[float]:
        limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
        async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
            return list(await asyncio.gather(*(post(client, b, d) for b, d in zip(bodies, delays))))

    return asyncio.run(run())


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50_s": pct(values, 50), "p99_s": pct(values, 99), "max_s": max(values),
            "mean_s": statistics.fmean(values)}


def measure(src: Path, skin: Path, args, small: list[str], long_text: str) -> dict:
    proc, url = start_server(src, skin, args.threads)
    try:
        for _ in range(args.warmup):
            at_once(url, [small[:1], [long_text]], [0.0, 0.0])
        alone = [at_once(url, [[small[k % len(small)]]], [0.0])[0] for k in range(args.repeats)]
        concurrent = at_once(url, [[small[k % len(small)]] for k in range(args.small)], [0.0] * args.small)
        bodies = [[long_text] * args.large] + [[small[k % len(small)]] for k in range(args.beside)]
        beside = at_once(url, bodies, [0.0] + [1.0 + k for k in range(args.beside)])
    finally:
        proc.terminate()
        proc.wait(30)
    return {"alone": summary(alone), "concurrent": summary(concurrent), "beside_small": summary(beside[1:]),
            "beside_large_s": beside[0], "raw": {"alone": alone, "concurrent": concurrent, "beside": beside}}


def commit_of(src: Path) -> str:
    r = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--", "."], capture_output=True,
                           text=True).stdout.strip()
    return r.stdout.strip() + ("+uncommitted" if dirty else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--small", type=int, default=200, help="concurrent small requests")
    ap.add_argument("--large", type=int, default=256, help="inputs of the large request")
    ap.add_argument("--tokens", type=int, default=350, help="about this many tokens per large input")
    ap.add_argument("--beside", type=int, default=10, help="small requests sent while the large one runs")
    ap.add_argument("--repeats", type=int, default=30, help="small requests alone")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="the server's torch threads")
    ap.add_argument("--before-src", type=Path, default=None, help="src/ of a tree to measure as 'before'")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="benchmarks/results/serve_load.json")
    args = ap.parse_args()

    small = [e["text_a"] for e in load_split("sst2", "dev", args.data_dir, 200, 42)]
    tok = load_model(args.model, "classification", 2).tokenizer
    words, long_text = " ".join(small).split(), ""
    while len(tok(long_text)["input_ids"]) < args.tokens:
        long_text = " ".join(words[: len(long_text.split()) + 10])
    trees = {"after": SRC} if args.before_src is None else {"before": args.before_src, "after": SRC}
    result = {"setup": {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                        "commits": {k: commit_of(v) for k, v in trees.items()},
                        "large_input_tokens": len(tok(long_text)["input_ids"]),
                        "torch": torch.__version__, "cpu_count": os.cpu_count(),
                        "machine": platform.processor() or platform.machine(),
                        "load_average_at_start": os.getloadavg()},
              "target_beside_s": TARGET_BESIDE_S}
    with tempfile.TemporaryDirectory() as tmp:
        skin = make_skin(args.model, Path(tmp))
        for name, src in trees.items():
            print(f"measuring {name} ({src}) ...", flush=True)
            result[name] = measure(src, skin, args, small, long_text)
    result["setup"]["load_average_at_end"] = os.getloadavg()
    print(f"{args.model}, server on {args.threads} torch thread(s), load average {os.getloadavg()[0]:.2f}:")
    for name in trees:
        r = result[name]
        print(f"  {name:6s} alone p50 {r['alone']['p50_s'] * 1e3:7.1f} ms"
              f" | {args.small} at once p50 {r['concurrent']['p50_s']:6.2f} s p99 {r['concurrent']['p99_s']:6.2f} s"
              f" | beside {args.large}x{result['setup']['large_input_tokens']} tokens: small p50"
              f" {r['beside_small']['p50_s']:6.2f} s max {r['beside_small']['max_s']:6.2f} s,"
              f" large {r['beside_large_s']:6.1f} s")
    print(f"wrote {write_json(args.out, result)}")


if __name__ == "__main__":
    main()
