"""Tiny models built from configs, with the embedded MiniLM tokenizer, for fast tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from lntune.model import wrap  # noqa: E402
from lntune.model.load import resolve  # noqa: E402

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
H, L = 32, 4  # tiny hidden size and depth


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models spend more on thread hand-offs than on maths, badly so on a busy shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert DATA_DIR.is_dir(), f"the shared data folder is expected at {DATA_DIR}"
    return DATA_DIR


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve("minilm"))
    tok.eos_token = "[SEP]"  # decoders below need an end-of-sequence token
    return tok


def tiny_config(arch: str, head: str = "classification"):
    import transformers as tf

    vocab = 30522
    if arch == "bert":
        return tf.BertConfig(vocab_size=vocab, hidden_size=H, num_hidden_layers=L, num_attention_heads=2,
                             intermediate_size=64, max_position_embeddings=128, num_labels=2,
                             initializer_range=0.2)
    if arch == "gpt2":
        return tf.GPT2Config(vocab_size=vocab, n_embd=H, n_layer=L, n_head=2, n_positions=128, num_labels=2,
                             pad_token_id=0)
    if arch == "llama":
        return tf.LlamaConfig(vocab_size=vocab, hidden_size=H, num_hidden_layers=L, num_attention_heads=2,
                              num_key_value_heads=1, intermediate_size=64, max_position_embeddings=128,
                              num_labels=2, pad_token_id=0)
    raise ValueError(arch)


def tiny_model(arch: str, head: str = "classification", seed: int = 0):
    import transformers as tf

    torch.manual_seed(seed)
    config = tiny_config(arch)
    if head == "causal-lm":
        return tf.AutoModelForCausalLM.from_config(config)
    if head == "regression":
        config.num_labels, config.problem_type = 1, "regression"
    return tf.AutoModelForSequenceClassification.from_config(config)


HEAD_NAMES = {"bert": ("classifier.bias", "classifier.weight"), "gpt2": ("score.weight",), "llama": ("score.weight",)}


@pytest.fixture
def make_lm(tokenizer):
    """make_lm(arch, head) -> LoadedModel around a tiny randomly initialised model."""

    def make(arch: str = "bert", head: str = "classification", seed: int = 0):
        model = tiny_model(arch, head, seed)
        heads = () if head == "causal-lm" else HEAD_NAMES[arch]
        return wrap(model, tokenizer, f"tiny-{arch}", head, heads)

    return make


@pytest.fixture
def tiny_dir(tmp_path, tokenizer):
    """save a tiny model without its head (like a pretrained checkpoint) to a folder."""

    def make(arch: str = "bert", seed: int = 0, causal: bool = False) -> Path:
        import transformers as tf

        torch.manual_seed(seed)
        base = tiny_model(arch, "causal-lm", seed) if causal else tf.AutoModel.from_config(tiny_config(arch))
        path = tmp_path / f"{arch}-{seed}-{'lm' if causal else 'base'}"
        base.save_pretrained(path)
        tokenizer.save_pretrained(path)
        return path

    return make
