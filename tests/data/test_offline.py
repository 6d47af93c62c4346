"""Without the files and without the Hub, a task fails in well under a second, quietly, naming the file it
looked for, the layout it expects and how to point lntune at the files (issue 25 #6)."""
import time

import pytest

from lntune.data import get_task
from lntune import offline as task_module
from lntune.errors import DataError

PROBE = task_module.hub_offline  # the real one (fixtures may stand a reachable Hub in)


def _load(name, data_dir, monkeypatch, why):
    monkeypatch.setattr(task_module, "hub_offline", lambda: why)
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("the Hub was tried"))
    began = time.perf_counter()
    with pytest.raises(DataError) as e:
        get_task(name).load("train", data_dir)
    assert time.perf_counter() - began < 2
    return str(e.value)


def test_missing_files_offline_name_the_path_the_layout_and_the_settings(tmp_path, monkeypatch):
    msg = _load("sst2", tmp_path, monkeypatch, "HF_HUB_OFFLINE is set; unset it to download")
    assert f"{tmp_path}/glue/SST-2/train.tsv does not exist" in msg
    assert "DIR/glue/SST-2/train.tsv" in msg and "--data-dir DIR" in msg and "LNTUNE_DATA_DIR" in msg
    assert "HF_HUB_OFFLINE is set" in msg and f"(DIR is now {tmp_path})" in msg


def test_no_data_dir_offline_says_so(monkeypatch):
    msg = _load("sst2", None, monkeypatch, "no network: huggingface.co has no address here")
    assert "no data directory is set" in msg and "DIR/glue/SST-2/train.tsv" in msg


def test_a_hub_only_task_offline_says_it_has_no_offline_files(tmp_path, monkeypatch):
    msg = _load("cola", tmp_path, monkeypatch, "no network: x")
    assert "this task has no offline files" in msg


@pytest.mark.parametrize("env,value,offline", [("HF_HUB_OFFLINE", "1", True), ("HF_DATASETS_OFFLINE", "true", True),
                                               ("HF_HUB_OFFLINE", "0", None)])
def test_the_probe_reads_the_offline_settings_and_skips_behind_a_proxy(monkeypatch, env, value, offline):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(env, value)
    monkeypatch.setattr(task_module, "_no_address", lambda host: None)  # a resolvable Hub
    probe = PROBE
    assert (probe() is not None) == bool(offline)
    monkeypatch.setattr(task_module, "_no_address", lambda host: f"no network: {host}")
    monkeypatch.delenv(env)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert probe() is None  # a direct probe proves nothing behind a proxy
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.org")
    assert probe() == "no network: hub.example.org"
