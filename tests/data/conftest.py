"""Tests here that stand a fake in for datasets.load_dataset simulate a Hub that answers: the offline probe
(lntune.offline.hub_offline) must not short-cut them on this machine, which has no network."""
import pytest


@pytest.fixture(autouse=True)
def hub_answers(monkeypatch):
    monkeypatch.setattr("lntune.offline.hub_offline", lambda: None)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
