import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_step_time_benchmark_runs_quick_on_a_tiny_model(tiny_dir, tmp_path):
    out = tmp_path / "step_time.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "step_time.py"), "--quick", "--no-memory", "--threads", "1",
           "--model", str(tiny_dir("bert")), "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(out.read_text())
    assert set(record["median_ms"]) == {"forward_eval", "forward_train", "ln_step", "ln_step_plain", "full_step",
                                        "full_step_plain", "peft_step", "bitfit_step"}
    assert record["trainable"]["lntune_ln"] == record["trainable"]["peft_ln_tuning"]
    assert record["last_block_cut"] == "bert.encoder.layer.3.attention.output"
    assert record["epoch_seconds"]["cache_site"] == "bert.encoder.layer.2.attention.output.LayerNorm"
    assert "LN step / PEFT LN_TUNING step" in record["ratios"] and "ratio" in done.stdout
    assert "LN step / BitFit step" in record["ratios"] and record["trainable"]["bitfit"] > record["trainable"]["lntune_ln"]
