"""Every baseline method on tiny BERT, GPT-2 and Llama: what trains, counts, step 0, learning, skins."""
import pytest
import torch

from conftest import H, L
from lntune.errors import MethodError
from lntune.method import METHODS as REGISTRY
from lntune.method import build_method, prepare
from lntune.method.options import paper_preset, parse_assignments
from lntune.train import TrainConfig
from lntune.train.loop import optimizer

ARCHS = [("bert", "classification"), ("gpt2", "causal-lm"), ("llama", "causal-lm")]
METHODS = [*REGISTRY, "lora+ln", "prefix+ln"]  # every registered method, and two composites
KV = 16  # tiny Llama: one key/value head of size H / 2


def batch(lm, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 3000, (4, 10), generator=g)
    labels = torch.tensor([0, 1, 0, 1]) if lm.head == "classification" else ids
    return {"input_ids": ids, "labels": labels}


def steps(lm, tuning, n=5, lr=1e-2):
    lm.model.eval()  # no dropout: the loss on a fixed batch must fall step by step
    opt = optimizer(tuning, TrainConfig(lr=lr))
    losses = []
    for _ in range(n):
        loss = lm.model(**batch(lm)).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


NOTHING_TO_TUNE = {("llama", "bitfit"): "Llama has no bias terms",
                   ("causal-lm", "head"): "a causal LM has no task head: head-only tunes nothing"}


def applicable(arch, head, method):
    parts = method.split("+")
    if any((arch, p) in NOTHING_TO_TUNE or (head, p) in NOTHING_TO_TUNE for p in parts):
        return False
    return all(REGISTRY[p].heads is None or head in REGISTRY[p].heads for p in parts)


CASES = [(a, h, m) for a, h in ARCHS for m in METHODS if applicable(a, h, m)]


@pytest.mark.parametrize("arch,head,method", CASES)
def test_only_the_methods_tensors_train_and_the_loss_drops(make_lm, arch, head, method):
    lm = make_lm(arch, head)
    before = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    tuning = prepare(lm, build_method(method))
    owned = {id(t.param): t for t in tuning.all}
    losses = steps(lm, tuning, lr=1e-3 if method == "full" else 1e-2)
    assert losses[-1] < losses[0]
    for n, p in lm.model.named_parameters():
        t = owned.get(id(p))
        if t is None:
            assert n not in before or torch.equal(p, before[n]), n
            assert p.grad is None, n
        elif t.mask is not None:
            assert torch.equal(p[~t.mask], before[n][~t.mask]), n


@pytest.mark.parametrize("arch,head", ARCHS)
@pytest.mark.parametrize("method", ["seq_adapter_ffn", "seq_adapter_mha", "par_adapter_ffn", "lora"])
def test_zero_initialised_additions_leave_the_model_unchanged(make_lm, arch, head, method):
    lm = make_lm(arch, head)
    lm.model.eval()
    inputs = {"input_ids": batch(lm)["input_ids"]}
    with torch.no_grad():
        expected = lm.model(**inputs).logits
        prepare(lm, build_method(method))
        assert torch.equal(lm.model(**inputs).logits, expected)


def adapter_count(blocks, hidden, size):
    return blocks * (2 * hidden * size + size + hidden)


@pytest.mark.parametrize("arch,head", ARCHS)
def test_counts_match_closed_forms(make_lm, arch, head):
    def count(method, **options):
        return prepare(make_lm(arch, head), build_method(method, **options)).counts()["tuned"]

    lm = make_lm(arch, head)
    assert count("full") == lm.base_count
    for m in ("seq_adapter_ffn", "seq_adapter_mha", "par_adapter_ffn"):
        assert count(m, size=8) == adapter_count(L, H, 8)
    # LoRA: r (in + out) per target; Llama's v_proj maps H -> one KV head
    lora = {"bert": 2 * 8 * (H + H), "gpt2": 8 * (H + 3 * H), "llama": 8 * (H + H) + 8 * (H + KV)}[arch]
    assert count("lora", r=8) == L * lora
    ln = count("ln")
    assert count("random") == ln
    assert count("random", count=123) == 123
    if arch == "bert":
        # biases: embeddings LN; per block q,k,v,attn-out, attn LN, intermediate, output, output LN; pooler
        biases = H + L * (3 * H + H + H + 64 + H + H) + H
        assert count("bitfit") == biases
        assert count("bitfit+ln") == biases + ln // 2  # LN biases are shared, counted once
    assert count("lora+ln") == count("lora") + ln
    assert count("seq_adapter_mha+ln", ln={"terms": "gain"}) == adapter_count(L, H, 16) + ln // (2 if arch != "llama" else 1)


def test_random_subset_is_reproducible_from_its_seed(make_lm):
    def masks(seed):
        t = prepare(make_lm("bert"), build_method("random", seed=seed))
        return {x.name: x.mask for x in t.tuned}

    a, b, c = masks(1), masks(1), masks(2)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert a.keys() != c.keys() or any(not torch.equal(a[k], c[k]) for k in a)


def test_random_subset_scope_blocks_draws_from_the_blocks_only(make_lm):
    lm = make_lm("bert")
    t = prepare(lm, build_method("random", seed=1, scope="blocks"))
    ln = sum(p.numel() for n, p in lm.model.named_parameters() if "LayerNorm" in n)
    assert t.counts()["tuned"] == ln  # as many as LN-tuning's default selection
    assert t.tuned and all(x.name.startswith("bert.encoder.layer.") for x in t.tuned)
    everywhere = prepare(make_lm("bert"), build_method("random", seed=1, scope="all"))
    assert any(x.name.startswith("bert.embeddings.") for x in everywhere.tuned)  # word embeddings are most weights
    with pytest.raises(MethodError, match="scope 'layers'"):
        prepare(make_lm("bert"), build_method("random", scope="layers"))


def test_head_only_trains_the_head_alone(make_lm):
    lm = make_lm("bert")
    t = prepare(lm, build_method("head"))
    assert t.tuned == [] and {x.name for x in t.head} == {"classifier.bias", "classifier.weight"}
    assert {n for n, p in lm.model.named_parameters() if p.requires_grad} == {"classifier.bias", "classifier.weight"}
    assert t.counts()["tuned"] == 0


def test_composite_options_and_errors():
    m = build_method("seq_adapter_mha+ln", seq_adapter_mha={"size": 4}, ln={"terms": "bias"})
    assert m.name == "seq_adapter_mha+ln"
    assert m.options()["seq_adapter_mha"]["size"] == 4 and m.options()["ln"]["terms"] == "bias"
    with pytest.raises(MethodError, match="a part appears twice"):
        build_method("ln+ln")
    with pytest.raises(MethodError, match="not a part"):
        build_method("bitfit+ln", lora={})
    with pytest.raises(MethodError, match="its options are: size, scale, seed"):
        build_method("seq_adapter_ffn", width=3)


def test_cli_option_assignments():
    assert parse_assignments("prefix+ln", ["prefix.length=8", "ln.terms=bias", "ln.mask=null"]) == {
        "prefix": {"length": 8}, "ln": {"terms": "bias", "mask": None}}
    assert parse_assignments("lora", ["r=4", "targets=query,key"]) == {"lora": {"r": 4, "targets": "query,key"}}
    with pytest.raises(MethodError, match="name the part"):
        parse_assignments("bitfit+ln", ["terms=bias"])
    with pytest.raises(MethodError, match="KEY=VALUE"):
        parse_assignments("ln", ["terms"])


def test_paper_presets():
    from transformers import BertConfig, GPT2Config

    base, large = BertConfig(), BertConfig(hidden_size=1024, num_hidden_layers=24)
    assert paper_preset("prefix", base) == {"prefix": {"length": 16}}
    assert paper_preset("par_adapter_ffn+ln", large) == {"par_adapter_ffn": {"size": 24}}
    assert paper_preset("mam", large) == {"mam": {"length": 8, "size": 16}}
    assert paper_preset("mam", GPT2Config(n_embd=1024, n_layer=24)) == {"mam": {"length": 8, "size": 8}}
    with pytest.raises(MethodError, match="BERT-base, BERT-large and GPT-2 medium"):
        paper_preset("prefix", BertConfig(hidden_size=384, num_hidden_layers=6))


FAST = TrainConfig(lr=1e-2, epochs=1, batch_size=16, eval_batch_size=32, progress=False)


@pytest.mark.parametrize("arch,task,method", [("bert", "sst2", m) for m in METHODS + ["bitfit+ln", "head"]]
                         + [("llama", "e2e", m) for m in ("par_adapter_ffn", "lora+ln")])
def test_every_method_round_trips_as_a_skin(tiny_dir, data_dir, tmp_path, arch, task, method):
    from safetensors.torch import load_file

    from lntune.api import evaluate_skin, train_task
    from lntune.skin import load_skin

    base = tiny_dir(arch, causal=task == "e2e")
    config = TrainConfig(**{**FAST.__dict__, "max_steps": 2 if task == "e2e" else None})
    rec = train_task(task, str(base), method, {}, config, tmp_path / "s", data_dir, 48, 32)
    tuning, meta = load_skin(tmp_path / "s")
    saved = load_file(str(tmp_path / "s" / "tuned.safetensors"))
    loaded = tuning.state()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert meta.counts["tuned"] == tuning.counts()["tuned"]
    assert evaluate_skin(tmp_path / "s", data_dir) == {k: v for k, v in rec.metrics.items() if k not in ("step", "epoch")}


@pytest.mark.parametrize("arch,head", ARCHS)
def test_mam_is_prefix_plus_parallel_adapter(make_lm, arch, head):
    def count(method, **options):
        return prepare(make_lm(arch, head), build_method(method, **options)).counts()["tuned"]

    mam = count("mam", length=4, size=8)
    assert mam == count("prefix", length=4) + count("par_adapter_ffn", size=8)
    assert count("mam+ln", mam={"length": 4, "size": 8}) == mam + count("ln")
    lm = make_lm(arch, head)
    before = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    tuning = prepare(lm, build_method("mam", length=4, size=8))
    losses = steps(lm, tuning)
    assert losses[-1] < losses[0]
    owned = {id(t.param) for t in tuning.all}
    assert all(torch.equal(p, before[n]) for n, p in lm.model.named_parameters() if id(p) not in owned and n in before)


def test_a_method_that_tunes_nothing_is_refused_when_prepared(make_lm):
    """Head-only on a causal LM (no task head): one clear error, not torch's "does not require grad" in training."""
    with pytest.raises(MethodError, match="method head tunes nothing on this causal-lm model"):
        prepare(make_lm("gpt2", "causal-lm"), build_method("head"))
