"""Multi-process training on CPU (issue 15): `torchrun --nproc-per-node 2 -m lntune.cli train` trains one model
with DDP over gloo (not two replicas), evaluates each process's share of the dev set and gathers the metrics,
and only the first process writes the skin and prints; the skin equals a single-process run's on the same
global batch (--batch-size is the global batch) to float tolerance."""
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import tiny_config
from safetensors.torch import load_file

from lntune.errors import TrainingError
from lntune.train import TrainConfig
from lntune.train.step import check_batches, multi_cpu_launch

# The launched script: `lntune train`, plus a dump of each process's tuned tensors and evaluation count.
SPY = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path
    from safetensors.torch import save_file
    import lntune.api as api

    dump, rank = Path(os.environ["LNTUNE_TEST_DUMP"]), int(os.environ.get("RANK", "0"))
    real_train, real_save = api.train, api.save_skin

    def train(tuning, *args, **kwargs):
        result = real_train(tuning, *args, **kwargs)
        save_file(tuning.state(), dump / f"rank{rank}.safetensors")
        (dump / f"rank{rank}.json").write_text(json.dumps({"evaluated": getattr(result, "evaluated", None), "best": result.best,
                                                           "losses": result.losses}))
        return result

    def save_skin(*args, **kwargs):
        (dump / f"saved-by-rank{rank}").touch()
        return real_save(*args, **kwargs)

    api.train, api.save_skin = train, save_skin
    from lntune.cli import main
    main()
''')

EVAL = 50  # not a multiple of the 2 x 32 dev shard: the last dev batch is completed with repeats, gathered away


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_dropout_model(tmp_path, tokenizer):
    """A tiny BERT without dropout: runs on different process counts then differ by rounding only."""
    import transformers as tf

    torch.manual_seed(0)
    config = tiny_config("bert")
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    path = tmp_path / "tiny-bert"
    tf.AutoModel.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _train(spy, launcher, model, data_dir, out, dump):
    dump.mkdir()
    args = ["train", "--model", str(model), "--data-dir", str(data_dir), "--train-limit", "32",
            "--eval-limit", str(EVAL), "--epochs", "1", "--batch-size", "8", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "LNTUNE_TEST_DUMP": str(dump)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    done = subprocess.run([*launcher, str(spy), *args], env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def test_two_cpu_processes_train_one_model(no_dropout_model, data_dir, tmp_path):
    spy = tmp_path / "spy.py"
    spy.write_text(SPY)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
                "--master-addr", "127.0.0.1", "--master-port", str(_free_port())]
    two = _train(spy, torchrun, no_dropout_model, data_dir, tmp_path / "two", tmp_path / "dump2")
    _train(spy, [sys.executable], no_dropout_model, data_dir, tmp_path / "one", tmp_path / "dump1")
    dump = tmp_path / "dump2"

    # both processes finished, on the same tensors
    ranks = [load_file(dump / f"rank{r}.safetensors") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    # only the first writes the skin and prints the result (the counts line goes to stderr with --progress)
    assert sorted(p.name for p in dump.glob("saved-by-*")) == ["saved-by-rank0"]
    assert two.stdout.count("dev (best by loss") == 1 and two.stdout.count("skin: ") == 1, two.stdout
    assert two.stderr.count("tuned parameters") == 1, two.stderr[-3000:]
    # the evaluation covered the whole dev set, gathered across the processes, and both know its metrics
    info = [json.loads((dump / f"rank{r}.json").read_text()) for r in (0, 1)]
    meta = json.loads((tmp_path / "two" / "skin.json").read_text())
    assert info[0]["evaluated"] == info[1]["evaluated"] == meta["data"]["dev_size"] == EVAL
    assert info[0]["best"] == info[1]["best"] == meta["metrics"]

    # the same global batch in one process: the same training, to rounding
    single = json.loads((tmp_path / "dump1" / "rank0.json").read_text())
    assert single["evaluated"] == EVAL
    assert info[0]["losses"] == pytest.approx(single["losses"], abs=1e-5)  # each step's global-batch loss
    want, got = load_file(tmp_path / "one" / "tuned.safetensors"), load_file(tmp_path / "two" / "tuned.safetensors")
    assert want.keys() == got.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-5)
    solo = json.loads((tmp_path / "one" / "skin.json").read_text())["metrics"]
    assert meta["metrics"]["accuracy"] == solo["accuracy"]
    assert meta["metrics"]["loss"] == pytest.approx(solo["loss"], abs=1e-5)


def test_a_launched_cpu_job_asks_accelerate_for_ddp(monkeypatch):
    for k in ("LOCAL_RANK", "WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    assert multi_cpu_launch() is False  # a plain process: accelerate's own choice stands
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert multi_cpu_launch() is (not torch.cuda.is_available())


def test_the_global_batch_must_split_evenly():
    check_batches(TrainConfig(batch_size=8, eval_batch_size=64), 2)
    with pytest.raises(TrainingError, match=r"--batch-size 7: with 2 processes .* multiple of 2"):
        check_batches(TrainConfig(batch_size=7), 2)
    with pytest.raises(TrainingError, match="--eval-batch-size 63"):
        check_batches(TrainConfig(eval_batch_size=63), 2)


@pytest.mark.parametrize("arch,head", [("bert", "classification"), ("bert", "regression"), ("gpt2", "causal-lm")])
def test_per_example_losses_add_up_to_the_models_loss(make_lm, arch, head):
    """The multi-process evaluation sums per-example losses (so repeated examples drop out): they must be the
    model's own loss, split by example."""
    from lntune.heads import get_head

    lm = make_lm(arch, head)
    lm.model.eval()
    torch.manual_seed(1)
    ids = torch.randint(1000, 2000, (4, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    if head == "classification":
        labels = torch.tensor([0, 1, 1, 0])
    elif head == "regression":
        labels = torch.tensor([0.1, 2.0, -1.0, 0.5])
    else:
        labels = ids.masked_fill(mask == 0, -100)
    with torch.no_grad():
        out = lm.model(input_ids=ids, attention_mask=mask, labels=labels)
    sums, counts = get_head(head).example_losses(out.logits, labels)
    assert sums.shape == counts.shape == (4,)
    torch.testing.assert_close(sums.sum() / counts.sum(), out.loss.float(), rtol=1e-5, atol=1e-6)
