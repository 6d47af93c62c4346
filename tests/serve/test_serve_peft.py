"""What PEFT does with several LN_TUNING adapters and `adapter_names` (the per-row mixing of other PEFT
methods): it ignores it, and every row gets the active adapter. This is why lntune serve exists."""
from __future__ import annotations

import pytest
import torch

peft = pytest.importorskip("peft")


@pytest.mark.filterwarnings("ignore:Unsupported layer type")
def test_peft_ln_tuning_does_not_mix_adapters_per_row():
    import transformers as tf
    from peft import LNTuningConfig, get_peft_model

    torch.manual_seed(0)
    config = tf.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, num_labels=2)
    model = get_peft_model(tf.BertForSequenceClassification(config).eval(),
                           LNTuningConfig(task_type="SEQ_CLS", target_modules=["LayerNorm"]), adapter_name="a")
    model.add_adapter("b", LNTuningConfig(task_type="SEQ_CLS", target_modules=["LayerNorm"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln_tuning_layers.b." in name:
                p.add_(torch.randn_like(p))
    model.eval()
    ids = torch.randint(1, 100, (2, 6))
    with torch.no_grad():
        model.set_adapter("b")
        only_b = model(input_ids=ids).logits
        model.set_adapter("a")
        only_a = model(input_ids=ids).logits
        assert not torch.allclose(only_a, only_b)  # the adapters differ
        try:
            mixed = model(input_ids=ids, adapter_names=["a", "b"]).logits
        except (ValueError, TypeError):  # a later PEFT may refuse instead of ignoring: also no mixing
            return
    assert torch.equal(mixed, only_a)  # adapter_names ignored: row 1 did not get adapter b
    assert not torch.allclose(mixed[1], only_b[1])
