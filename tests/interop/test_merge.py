"""`lntune merge` (issue 16): LN, BitFit, full and LoRA skins become save_pretrained folders that plain transformers
loads with the skin's outputs (LoRA folded into W, also through GPT-2's transposed Conv1D); adapters and prefix
get a clear error and nothing is written."""
import pytest
import transformers as tf

from lntune.errors import LntuneError
from lntune.interop.merge import merge_skin
from lntune.skin import load_skin

from .test_peft import _batch, _logits, _skin


@pytest.mark.parametrize("method, options, arch", [
    ("ln", None, "bert"), ("bitfit", None, "bert"), ("full", None, "bert"), ("lora", {"r": 4}, "bert"),
    ("lora", {"r": 2, "alpha": 8.0}, "gpt2"), ("lora+ln", None, "bert"),
])
def test_merged_folder_loads_in_plain_transformers(tiny_dir, data_dir, tmp_path, method, options, arch):
    model_dir, skin = _skin(tiny_dir, data_dir, tmp_path, method, options, arch=arch)
    batch = _batch(model_dir)
    batch.pop("token_type_ids", None) if arch == "gpt2" else None
    want = _logits(load_skin(skin)[0].lm.model, batch)
    out = merge_skin(skin, tmp_path / "merged")
    plain = tf.AutoModelForSequenceClassification.from_pretrained(out)
    diff = (_logits(plain, batch) - want).abs().max().item()
    assert diff <= (1e-5 if "lora" in method else 0.0)
    assert plain.config.id2label == {0: "negative", 1: "positive"}
    assert not any("lora" in k for k in plain.state_dict())
    # the comparison can fail: the base with a fresh head differs
    base = tf.AutoModelForSequenceClassification.from_pretrained(model_dir)
    assert (_logits(base, batch) - want).abs().max().item() > 1e-4


@pytest.mark.parametrize("method", ["seq_adapter_ffn", "prefix"])
def test_unmergeable_methods_are_refused(tiny_dir, data_dir, tmp_path, method):
    _, skin = _skin(tiny_dir, data_dir, tmp_path, method)
    with pytest.raises(LntuneError, match=f"a {method} skin adds modules .* cannot be merged"):
        merge_skin(skin, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_existing_output_needs_overwrite(tiny_dir, data_dir, tmp_path):
    _, skin = _skin(tiny_dir, data_dir, tmp_path, "ln")
    (tmp_path / "merged").mkdir()
    with pytest.raises(LntuneError, match="exists; pass --overwrite"):
        merge_skin(skin, tmp_path / "merged")
    assert merge_skin(skin, tmp_path / "merged", overwrite=True).joinpath("config.json").exists()
