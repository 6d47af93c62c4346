"""Every method runs on the token-classification and multiple-choice heads (3V refuses them)."""
import pytest
import torch

from conftest import tiny_config
from lntune.errors import MethodError
from lntune.method import build_method, prepare
from lntune.model import wrap
from lntune.train import TrainConfig
from lntune.train.loop import optimizer

METHODS = ["ln", "full", "bitfit", "seq_adapter_ffn", "seq_adapter_mha", "par_adapter_ffn", "prefix", "mam",
           "lora", "random", "prefix+ln", "bitfit+ln"]


def tiny(head, tokenizer):
    import transformers as tf

    torch.manual_seed(0)
    config = tiny_config("bert")
    if head == "token-classification":
        config.num_labels = 5
        model = tf.AutoModelForTokenClassification.from_config(config)
    else:
        model = tf.AutoModelForMultipleChoice.from_config(config)
    return wrap(model, tokenizer, "tiny-bert", head, ("classifier.bias", "classifier.weight"))


def batch(head):
    g = torch.Generator().manual_seed(0)
    if head == "token-classification":
        ids = torch.randint(1000, 3000, (4, 10), generator=g)
        return {"input_ids": ids, "labels": torch.randint(0, 5, (4, 10), generator=g)}
    return {"input_ids": torch.randint(1000, 3000, (4, 3, 10), generator=g), "labels": torch.tensor([0, 1, 2, 0])}


@pytest.mark.parametrize("head", ["token-classification", "multiple-choice"])
@pytest.mark.parametrize("method", METHODS)
def test_method_trains_on_head(tokenizer, head, method):
    lm = tiny(head, tokenizer)
    tuning = prepare(lm, build_method(method))
    lm.model.eval()
    opt = optimizer(tuning, TrainConfig(lr=1e-3 if method == "full" else 1e-2))
    losses = []
    for _ in range(4):
        loss = lm.model(**batch(head)).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("head", ["token-classification", "multiple-choice"])
def test_3v_refuses_token_and_choice_heads(tokenizer, head):
    with pytest.raises(MethodError, match="sequence classification only"):
        prepare(tiny(head, tokenizer), build_method("3v"))
