import pytest
import torch
from conftest import HEAD_NAMES, tiny_config

from lntune.analyse.components import lm_parts
from lntune.analyse.fisher import (
    FisherConfig,
    TaskFisher,
    empirical_fisher,
    fisher_ranking,
    ln_names,
    ln_shares,
    task_fisher,
    vmap_attention,
)
from lntune.data.encode import collate
from lntune.heads import encode, get_head
from lntune.model import wrap

SENTENCES = [
    "a fine film",
    "dull and far too long , with nothing to say",
    "great",
    "not good at all",
    "moving and funny",
]


def examples(head):
    if head == "token-classification":
        return [{"tokens": s.split(), "tags": [i % 3 for i in range(len(s.split()))]} for s in SENTENCES]
    if head == "multiple-choice":
        choices = [["yes", "no, not really at all", "maybe"], ["a long answer with many words", "short", "b"]]
        return [
            {"context": s, "question": "is it good ?", "choices": choices[i % 2], "label": i % 3}
            for i, s in enumerate(SENTENCES)
        ]
    labels = [0, 1, 1, 0, 1] if head == "classification" else [0.5, 4.0, 2.5, 1.0, 3.2]
    return [{"text_a": s, "label": y} for s, y in zip(SENTENCES, labels)]


def reference_ll(logits, label, head):
    """log p(y|x) written out plainly for one example (logits without the batch dimension)."""
    if head == "regression":
        return -0.5 * (logits[0] - label) ** 2
    if head == "token-classification":
        logp = torch.log_softmax(logits, -1)
        return sum(logp[t, y] for t, y in enumerate(label.tolist()) if y != -100)
    return torch.log_softmax(logits, -1)[label]


def brute_force(lm, feats, names):
    """The definition: one example at a time through the model's own forward, mean of squared gradients."""
    params = dict(lm.model.named_parameters())
    total = {n: torch.zeros_like(params[n]) for n in names}
    lm.model.eval()
    for f in feats:
        batch = collate([f], pad_id=lm.tokenizer.pad_token_id)  # a batch of one: no padding across examples
        label = batch.pop("labels")[0]
        ll = reference_ll(lm.model(**batch).logits[0], label, lm.head)
        grads = torch.autograd.grad(ll, [params[n] for n in names], allow_unused=True)
        for n, g in zip(names, grads):
            if g is not None:
                total[n] += g**2
    return {n: t / len(feats) for n, t in total.items()}


def bert_with(head, tokenizer):
    import transformers as tf

    torch.manual_seed(0)
    cls = {"token-classification": tf.BertForTokenClassification, "multiple-choice": tf.BertForMultipleChoice}[head]
    config = tiny_config("bert")
    config.num_labels = 3
    return wrap(cls(config), tokenizer, "tiny-bert", head, HEAD_NAMES["bert"])


@pytest.mark.parametrize(
    "arch,head",
    [
        ("bert", "classification"),
        ("bert", "regression"),
        ("gpt2", "classification"),
        ("llama", "classification"),
        ("bert", "token-classification"),
        ("bert", "multiple-choice"),
    ],
)
def test_per_example_fisher_equals_a_loop_over_examples(make_lm, tokenizer, arch, head):
    lm = bert_with(head, tokenizer) if "-" in head else make_lm(arch, head)
    feats = encode(examples(head), lm.tokenizer, head, 32)  # different lengths: batches are padded
    names = [n for n, _ in lm.base_parameters() if "embed" not in n and ".wte." not in n and ".wpe." not in n]
    got = empirical_fisher(lm, feats, names, batch_size=3, progress=False)
    want = brute_force(lm, feats, names)
    assert set(got) == set(names)
    for n in names:
        torch.testing.assert_close(got[n], want[n], rtol=1e-4, atol=1e-9, msg=n)
    assert sum(float(v.sum()) for v in got.values()) > 0


def test_causal_lm_fisher_sums_target_token_log_probabilities(make_lm):
    lm = make_lm("llama", "causal-lm")
    rows = [
        {"prompt": "name : the mill", "target": "the mill is a pub"},
        {"prompt": "food : thai", "target": "thai food"},
    ]
    feats = encode(rows, lm.tokenizer, "causal-lm", 32)
    names = ln_names(lm)
    got = empirical_fisher(lm, feats, names, batch_size=2, progress=False)
    params = dict(lm.model.named_parameters())
    want = {n: torch.zeros_like(params[n]) for n in names}
    for f in feats:
        ids, labels = torch.tensor([f["input_ids"]]), torch.tensor(f["labels"])
        ll = get_head("causal-lm").log_likelihood(lm.model(input_ids=ids).logits[0], labels)
        # HF's mean token loss times the target count is the same quantity
        assert torch.allclose(-ll, lm.model(input_ids=ids, labels=labels[None]).loss * int((labels[1:] != -100).sum()))
        for n, g in zip(names, torch.autograd.grad(ll, [params[n] for n in names])):
            want[n] += g**2 / len(feats)
    for n in names:
        torch.testing.assert_close(got[n], want[n], rtol=1e-4, atol=1e-9)


def test_vmap_attention_restores_the_models_implementation(make_lm):
    lm = make_lm("bert")
    before = lm.model.config._attn_implementation
    with vmap_attention(lm.model):
        assert lm.model.config._attn_implementation == "lntune_vmap"
    assert lm.model.config._attn_implementation == before


def _result(task, comps):
    rows = [{"component": c, "layer": 0, "term": "weight", "norm": None, "n": n, "sum": s} for c, n, s in comps]
    return TaskFisher(task, "m", "fp", {}, rows, FisherConfig())


def test_ranking_normalises_each_task_by_its_total():
    # task a: means 1 and 3 (shares .25/.75); task b, 100x larger: means 200 and 200 (.5/.5)
    a = _result("a", [("q", 2, 2.0), ("ln", 1, 3.0)])
    b = _result("b", [("q", 1, 200.0), ("ln", 2, 400.0)])
    table = fisher_ranking([a, b])
    assert [r["component"] for r in table] == ["ln", "q"]
    assert table[0]["a"] == pytest.approx(0.75) and table[0]["b"] == pytest.approx(0.5)
    assert table[0]["sum"] == pytest.approx(1.25) and table[1]["sum"] == pytest.approx(0.75)


def test_task_fisher_ln_only_on_real_data(tiny_dir, data_dir):
    config = FisherConfig(examples=6, batch_size=3, ln_only=True, progress=False)
    r = task_fisher("sst2", str(tiny_dir("bert")), config, data_dir)
    assert {x["param"] for x in r.rows} == set(r.ln)
    assert all(x["norm"] is not None for x in r.rows)
    assert r.rows[0]["component"] == "embeddings.LayerNorm" and r.rows[0]["layer"] is None
    shares = ln_shares(r)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert {p for _, p in shares} == {"embeddings", "0", "1", "2", "3"}
    again = task_fisher("sst2", str(tiny_dir("bert")), config, data_dir)
    assert all(torch.equal(r.ln[n], again.ln[n]) for n in r.ln)  # seeded head and subset: repeatable


def test_parts_name_components_relative_to_blocks(make_lm):
    parts = lm_parts(make_lm("bert"))
    q = parts["bert.encoder.layer.2.attention.self.query.weight"]
    assert (q.component, q.layer, q.term, q.norm) == ("attention.self.query", 2, "weight", None)
    ln = parts["bert.encoder.layer.1.attention.output.LayerNorm.bias"]
    assert (ln.component, ln.layer, ln.term, ln.norm) == ("attention.output.LayerNorm", 1, "bias", "mha")
    assert parts["bert.embeddings.word_embeddings.weight"].component == "embeddings.word_embeddings"
    assert parts["bert.pooler.dense.bias"].layer is None and "classifier.weight" not in parts
    gpt = lm_parts(make_lm("gpt2"))
    assert gpt["transformer.h.3.ln_2.weight"].norm == "ffn" and gpt["transformer.ln_f.weight"].component == "ln_f"
