import time

import pytest
import torch

from lntune.errors import LntuneError
from lntune.model import load_model
from lntune.model.fingerprint import fingerprint
from lntune.model.load import resolve


def test_local_path_gets_a_fresh_head_and_a_norm_map(tiny_dir):
    lm = load_model(str(tiny_dir("bert")), "classification", num_labels=3)
    assert lm.head_names == ("classifier.bias", "classifier.weight")
    assert lm.model.classifier.out_features == 3
    assert len(lm.norms) == 1 + 2 * 4
    assert lm.head_count == 32 * 3 + 3


def test_regression_head_has_one_output(tiny_dir):
    lm = load_model(str(tiny_dir("bert")), "regression")
    assert lm.model.classifier.out_features == 1
    assert lm.model.config.problem_type == "regression"


def test_decoder_gets_a_pad_token(tiny_dir):
    lm = load_model(str(tiny_dir("gpt2")), "causal-lm")
    assert lm.head_names == ()
    assert lm.tokenizer.pad_token is not None


def test_fingerprint_ignores_the_head_and_sees_any_weight_change(tiny_dir):
    path = str(tiny_dir("bert"))
    a, b = load_model(path), load_model(path)
    assert a.fingerprint == b.fingerprint  # heads differ (random init), base is the same
    with torch.no_grad():
        b.model.bert.encoder.layer[0].output.dense.weight[0, 0] += 1e-6
    assert fingerprint(b.base_parameters()) != a.fingerprint


def test_hub_ids_pass_through_and_fail_clearly_offline(monkeypatch):
    assert resolve("bert-base-uncased") == "bert-base-uncased"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LntuneError, match="could not load model 'no-such-org/no-such-model'"):
        load_model("no-such-org/no-such-model")


def test_minilm_alias_loads_the_embedded_weights():
    lm = load_model("minilm")
    assert lm.base_count == 22_713_216
    assert [s.label for s in lm.norms].count("mha") == 6
    assert lm.norms.num_layers == 6


def test_smollm2_alias_dequantises_once_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("LNTUNE_CACHE", str(tmp_path))
    lm = load_model("smollm2", "causal-lm")
    assert type(lm.model).__name__ == "LlamaForCausalLM"
    assert lm.norms.num_layers == 30 and len(lm.norms) == 61
    assert not any(s.has_bias for s in lm.norms)
    cached = list(tmp_path.glob("smollm2-*/config.json"))
    assert len(cached) == 1
    start = time.perf_counter()
    again = load_model("smollm2", "causal-lm")
    assert time.perf_counter() - start < 15
    assert again.fingerprint == lm.fingerprint


def test_a_head_transformers_lacks_for_the_model_is_one_clear_error(tiny_dir):
    with pytest.raises(LntuneError, match=r"\(LlamaConfig\) has no multiple-choice head .* need an encoder"):
        load_model(str(tiny_dir("llama")), "multiple-choice")


def test_a_hub_id_offline_fails_in_seconds_naming_why(monkeypatch):
    import time

    monkeypatch.setattr("lntune.offline.hub_offline", lambda: "HF_HUB_OFFLINE is set; unset it to download")
    began = time.perf_counter()
    with pytest.raises(LntuneError, match=r"could not load model 'no-such-org/no-such-model': no such local folder, "
                                          r"not in the Hugging Face cache, and the Hub cannot be reached \(HF_HUB_OFF"):
        load_model("no-such-org/no-such-model")
    assert time.perf_counter() - began < 3  # transformers alone retries for most of a minute
