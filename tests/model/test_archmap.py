import pytest
from torch import nn

from conftest import L, tiny_model
from lntune.errors import ArchitectureError
from lntune.model import map_norms


def labelled(model):
    return [(s.name, s.label, s.layer) for s in map_norms(model)]


def test_bert_post_ln_labels():
    sites = labelled(tiny_model("bert"))
    expected = [("bert.embeddings.LayerNorm", "embeddings", None)]
    for i in range(L):
        expected += [(f"bert.encoder.layer.{i}.attention.output.LayerNorm", "mha", i),
                     (f"bert.encoder.layer.{i}.output.LayerNorm", "ffn", i)]
    assert sites == expected


def test_gpt2_pre_ln_labels():
    sites = labelled(tiny_model("gpt2", "causal-lm"))
    expected = []
    for i in range(L):
        expected += [(f"transformer.h.{i}.ln_1", "mha", i), (f"transformer.h.{i}.ln_2", "ffn", i)]
    assert sites == expected + [("transformer.ln_f", "final", None)]


def test_llama_rmsnorm_labels_and_no_bias():
    norms = map_norms(tiny_model("llama", "causal-lm"))
    expected = []
    for i in range(L):
        expected += [(f"model.layers.{i}.input_layernorm", "mha", i),
                     (f"model.layers.{i}.post_attention_layernorm", "ffn", i)]
    assert [(s.name, s.label, s.layer) for s in norms] == expected + [("model.norm", "final", None)]
    assert norms.num_layers == L
    assert not any(s.has_bias for s in norms)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.mix = nn.Linear(8, 8)
        self.norm_a = nn.LayerNorm(8)
        self.norm_b = nn.LayerNorm(8)


class Odd(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block(), Block()])


def test_unknown_architecture_error_says_how_to_map():
    with pytest.raises(ArchitectureError, match=r"norm_map=.*--norm-map"):
        map_norms(Odd())


def test_mapping_labels_unknown_architecture():
    norms = map_norms(Odd(), norm_map={r"norm_a$": "mha", r"norm_b$": "ffn"})
    assert [(s.name, s.label, s.layer) for s in norms] == [
        ("blocks.0.norm_a", "mha", 0), ("blocks.0.norm_b", "ffn", 0),
        ("blocks.1.norm_a", "mha", 1), ("blocks.1.norm_b", "ffn", 1),
    ]


def test_mapping_rejects_unknown_label():
    with pytest.raises(ArchitectureError, match="not one of"):
        map_norms(Odd(), norm_map={r"norm_a$": "attention"})


def test_model_without_norms_is_refused():
    with pytest.raises(ArchitectureError, match="no list of transformer blocks"):
        map_norms(nn.Sequential(nn.Linear(2, 2)))
