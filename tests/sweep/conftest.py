"""A tiny saved BERT and a tiny sweep config shared by the sweep tests."""
import pytest
import torch
import yaml

TIMING = {"finished_at", "machine", "train_seconds", "best_seconds", "efficiency", "commit", "in_flight", "load"}  # differ run to run


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_thread):  # every sweep test runs single-threaded (tests/conftest.py)
    yield


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tokenizer) -> str:
    """A 4-layer, 32-wide BERT without a head, saved like a pretrained checkpoint."""
    import transformers as tf

    torch.manual_seed(0)
    config = tf.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=128, initializer_range=0.2)
    path = tmp_path_factory.mktemp("tiny") / "bert"
    tf.AutoModel.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def tiny_sweep(model: str, data_dir, **changes) -> dict:
    """Two seeds of LN (two lrs), BitFit, prefix+LN and Fisher/random masks on tiny SST-2 and RTE subsets."""
    cfg = {
        "name": "tiny", "model": model, "seeds": [1, 2], "workers": 2, "lr_budget": 1, "data_dir": str(data_dir),
        "train_limit": 32, "val_limit": 16, "eval_limit": 32,
        "train": {"epochs": 1, "batch_size": 16, "eval_batch_size": 32, "max_length": 32, "patience": 2},
        "tasks": ["sst2", "rte"],
        "runs": [
            {"method": "ln", "lrs": [1e-2, 1e-3], "lr_budget": 2, "tasks": ["sst2"]},
            {"method": "bitfit", "row": "BitFit", "group": "timed"},
            {"method": "ln", "mask": {"kind": ["individual", "cv", "random"], "fraction": 0.5}, "tasks": ["sst2"],
             "seeds": [1]},
        ],
        "fisher": {"examples": 8, "batch_size": 4, "max_length": 32},
        "efficiency": {"task": "sst2", "groups": ["timed"], "batch_size": 4, "seq_len": 16, "steps": 2, "warmup": 1},
    }
    cfg.update(changes)
    return cfg


def write_yaml(path, cfg: dict):
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def comparable(records: list) -> dict:
    """key -> record (as a dict) without the fields that change from run to run (timings, machine, clock)."""
    return {r.key: {k: v for k, v in r.model_dump().items() if k not in TIMING} for r in records}


@pytest.fixture(scope="session")
def reference(tiny_model, data_dir, tmp_path_factory):
    """The tiny sweep run once, uninterrupted, on local workers: (config path, results folder, records)."""
    from lntune.sweep.config import load_config
    from lntune.sweep.driver import run_sweep
    from lntune.sweep.store import read_records

    folder = tmp_path_factory.mktemp("reference")
    path = write_yaml(folder / "tiny.yaml", tiny_sweep(tiny_model, data_dir))
    report = run_sweep(load_config(path), folder / "results", progress=False)
    assert report.ok, report.failed
    return path, folder / "results", read_records(folder / "results")


def finished(run, score: float = 0.5):
    """The store's record of `run` as if it scored `score` on validation and test (sweep/driver.make_record)."""
    from lntune.sweep.driver import make_record

    counts = {"tuned": 10, "head": 2, "base": 1000, "tuned_pct": 1.0, "tuned_with_head_pct": 1.2}
    result = {"val": {run.metric: score}, "test": {run.metric: score}, "counts": counts, "steps": 1,
              "train_seconds": 1.0}
    return make_record(run, result, "unit", None)
