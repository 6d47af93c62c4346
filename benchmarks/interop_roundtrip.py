"""Round trips of skins through PEFT, transformers and merging: the max |logit difference| of each, on the
embedded MiniLM (LN and LoRA skins with perturbed tensors) and on a tiny Llama built from a config (an LN gain
skin, causal LM). Prints a table and writes benchmarks/results/interop.json.

    python benchmarks/interop_roundtrip.py
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
import transformers as tf
from peft import PeftModel

from lntune.interop.merge import merge_skin
from lntune.interop.peft import export_peft, import_peft
from lntune.method import build_method, prepare
from lntune.model import load_model
from lntune.model.load import resolve
from lntune.skin import load_skin, save_skin

TEXTS = ["a great film with a fine cast", "an awful plot", "music", "the story was neither good nor bad at all"]
OUT = Path(__file__).parent / "results" / "interop.json"


def logits(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


def perturbed_skin(model: str, head: str, method: str, options: dict, out: Path, labels: list[str]) -> Path:
    lm = load_model(model, head, max(len(labels), 1), seed=0)
    tuning = prepare(lm, build_method(method, **options))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in tuning.all:
            t.param.add_(torch.randn(t.param.shape, generator=g) * 0.05)
    return save_skin(out, tuning, {"task": {"name": "roundtrip", "head": head, "labels": labels}})


def auto(model_dir: str, head: str):
    if head == "causal-lm":
        return tf.AutoModelForCausalLM.from_pretrained(model_dir)
    return tf.AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)


def trips(name: str, skin: Path, model_dir: str, head: str, tmp: Path) -> dict:
    batch = tf.AutoTokenizer.from_pretrained(model_dir)(TEXTS, padding=True, return_tensors="pt")
    if head == "causal-lm":
        batch.pop("token_type_ids", None)
    want = logits(load_skin(skin)[0].lm.model, batch)
    peft_dir = export_peft(skin, tmp / f"{name}-peft")
    out = {"peft_from_pretrained": (logits(PeftModel.from_pretrained(auto(model_dir, head), peft_dir), batch) - want)}
    plain = auto(model_dir, head)
    plain.load_adapter(str(peft_dir))
    out["transformers_load_adapter"] = logits(plain, batch) - want
    back = load_skin(import_peft(peft_dir, tmp / f"{name}-back"))[0]
    out["import_back_to_skin"] = logits(back.lm.model, batch) - want
    merged = merge_skin(skin, tmp / f"{name}-merged")
    out["merge_plain_transformers"] = logits(auto(str(merged), head), batch) - want
    return {k: v.abs().max().item() for k, v in out.items()}


def tiny_llama(tmp: Path) -> str:
    torch.manual_seed(0)
    cfg = tf.LlamaConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                         num_key_value_heads=1, intermediate_size=64, max_position_embeddings=128, pad_token_id=0)
    path = tmp / "tiny-llama"
    tf.AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    tok = tf.AutoTokenizer.from_pretrained(resolve("minilm"))
    tok.eos_token = "[SEP]"
    tok.save_pretrained(path)
    return str(path)


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        labels = ["negative", "positive"]
        skin = perturbed_skin("minilm", "classification", "ln", {}, tmp / "minilm-ln", labels)
        results["MiniLM, LN skin"] = trips("minilm-ln", skin, resolve("minilm"), "classification", tmp)
        skin = perturbed_skin("minilm", "classification", "lora", {"r": 8}, tmp / "minilm-lora", labels)
        results["MiniLM, LoRA skin (r 8)"] = trips("minilm-lora", skin, resolve("minilm"), "classification", tmp)
        llama = tiny_llama(tmp)
        skin = perturbed_skin(llama, "causal-lm", "ln", {"terms": "gain"}, tmp / "llama-ln", [])
        results["tiny Llama, LN gain skin (causal LM)"] = trips("llama-ln", skin, llama, "causal-lm", tmp)
    for name, r in results.items():
        print(f"{name}: " + ", ".join(f"{k} {v:.2e}" for k, v in r.items()))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"command": "python benchmarks/interop_roundtrip.py", "max_abs_logit_diff": results},
                              indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
