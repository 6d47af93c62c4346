"""SkinBank: which skins it takes, what it refuses, and the Python predict API."""
from __future__ import annotations

import json
import math

import pytest
import torch

from lntune.errors import LntuneError, SkinError
from lntune.serve import BadInput, InputTooLong, SkinBank, SkinExists, UnknownSkin

from .conftest import TEXTS, make_skin, reference_logits


@pytest.fixture
def bank_and_skins(bert_bank):
    return bert_bank(("all", "three", "reg"))


def test_predict_answers_labels_probabilities_and_values(bank_and_skins):
    bank, base, skins = bank_and_skins
    out = bank.predict([("all", TEXTS[0]), ("reg", TEXTS[2]), ("three", TEXTS[1])])
    assert [o["task"] for o in out] == ["all", "reg", "three"]
    want = reference_logits(bank, skins["all"], base, [TEXTS[0]])[0]
    assert out[0]["label"] == ["negative", "positive"][int(want.argmax())]
    assert out[0]["logits"] == pytest.approx(want.tolist(), abs=1e-5)
    assert math.isclose(sum(out[0]["probabilities"].values()), 1.0, rel_tol=1e-6)
    assert set(out[2]["probabilities"]) == {"a", "b", "c"}
    want = float(reference_logits(bank, skins["reg"], base, [TEXTS[2]])[0, 0])
    assert out[1]["value"] == pytest.approx(want, abs=1e-5)
    assert "label" not in out[1]


def test_chunked_batches_give_the_same_answers(bank_and_skins):
    bank, _, _ = bank_and_skins
    rows = [(["all", "three", "reg"][i % 3], TEXTS[i % len(TEXTS)]) for i in range(10)]
    whole = bank.predict(rows)
    bank.batch_size = 3
    for a, b in zip(whole, bank.predict(rows)):
        assert a.get("logits", [a.get("value")]) == pytest.approx(b.get("logits", [b.get("value")]), abs=1e-5)


def test_unknown_skins_and_bad_inputs_are_refused(bank_and_skins):
    bank, _, _ = bank_and_skins
    with pytest.raises(UnknownSkin, match=r"unknown task/skin 'nope'; loaded skins: all, reg, three"):
        bank.predict([("all", "x"), ("nope", "y")])
    with pytest.raises(BadInput, match="no inputs"):
        bank.predict([])
    with pytest.raises(BadInput, match="input 1"):
        bank.predict([("all", "x"), ("all", 3)])
    with pytest.raises(BadInput, match="input 0: expected"):
        bank.predict(["just text"])


def test_over_long_inputs_are_refused_not_truncated(bank_and_skins):
    bank, base, _ = bank_and_skins
    limit = bank.lm.model.config.max_position_embeddings  # 128 in the tiny BERT
    assert bank.max_tokens == limit
    ok = " ".join(["word"] * (limit - 2))  # + [CLS] and [SEP]
    bank.predict([("all", ok)])
    with pytest.raises(InputTooLong, match=f"input 0 has more than {limit} tokens; this server takes at most {limit}"):
        bank.predict([("all", ok + " word")])
    small = SkinBank(str(base), max_tokens=8)
    with pytest.raises(InputTooLong, match="at most 8"):
        small.encode([("one two three", "four five six")])
    with pytest.raises(LntuneError, match="reads at most 128 positions"):
        SkinBank(str(base), max_tokens=1000)


def test_skins_are_added_and_removed(bank_and_skins):
    bank, base, skins = bank_and_skins
    assert [s["name"] for s in bank.skins()] == ["all", "three", "reg"]
    before = bank.predict([("three", TEXTS[3])])[0]["logits"]
    bank.remove_skin("all")  # slots shift: "three" must still be "three"
    assert bank.predict([("three", TEXTS[3])])[0]["logits"] == pytest.approx(before, abs=1e-6)
    with pytest.raises(UnknownSkin):
        bank.predict([("all", "x")])
    with pytest.raises(UnknownSkin):
        bank.remove_skin("all")
    bank.add_skin("all", skins["all"])
    with pytest.raises(SkinExists, match="remove it first"):
        bank.add_skin("all", skins["top"])
    bank.add_skin("all", skins["top"], replace=True)
    want = reference_logits(bank, skins["top"], base, [TEXTS[1]])[0]
    assert bank.predict([("all", TEXTS[1])])[0]["logits"] == pytest.approx(want.tolist(), abs=1e-5)
    with pytest.raises(BadInput, match="skin name"):
        bank.add_skin("a/b", skins["top"])


def test_non_ln_skins_other_bases_and_other_heads_are_refused(bank_and_skins, tiny_dir, tmp_path):
    bank, base, skins = bank_and_skins
    bitfit = make_skin(base, tmp_path / "bitfit", seed=3, method="bitfit")
    with pytest.raises(SkinError, match="method 'bitfit'; mixed serving takes LN-tuning skins only"):
        bank.add_skin("bitfit", bitfit)
    other = make_skin(tiny_dir("bert", seed=1), tmp_path / "other", seed=3)
    with pytest.raises(SkinError, match="trained on .* but the bank's model"):
        bank.add_skin("other", other)
    meta = json.loads((skins["top"] / "skin.json").read_text())
    meta["base"]["head"] = "token-classification"
    (skins["top"] / "skin.json").write_text(json.dumps(meta))
    with pytest.raises(SkinError, match="a token-classification skin, but this bank serves classification skins"):
        bank.add_skin("tags", skins["top"])
    meta["base"]["head"] = "seq2seq"
    (skins["top"] / "skin.json").write_text(json.dumps(meta))
    with pytest.raises(SkinError, match="not a valid skin record: base.head"):
        bank.add_skin("tags", skins["top"])
    with pytest.raises(SkinError, match="no skin.json"):
        bank.add_skin("missing", tmp_path / "nowhere")
    assert [s["name"] for s in bank.skins()] == ["all", "three", "reg"]  # refusals change nothing


def test_low_precision_banks_are_refused_with_the_fix(tiny_dir):
    with pytest.raises(LntuneError, match="float32 models only; use --dtype float32"):
        SkinBank(str(tiny_dir("bert")), dtype="bfloat16")


def test_a_model_is_served_by_one_bank_and_only_unchanged(bank_and_skins, tiny_dir):
    from lntune.errors import ArchitectureError
    from lntune.model import load_model
    from lntune.skin import load_skin

    bank, base, skins = bank_and_skins
    with pytest.raises(ArchitectureError, match="another SkinBank serves this model"):
        SkinBank(bank.lm)
    tuning, _ = load_skin(skins["all"], model=str(base))
    with pytest.raises(LntuneError, match="weights changed since loading"):
        SkinBank(tuning.lm)
    SkinBank(load_model(str(base)))  # a fresh one is fine


def test_adding_and_removing_a_skin_leaves_the_others_rows_alone(bank_and_skins):
    bank, _, skins = bank_and_skins
    live = sorted(bank._slots.values())
    tables = [n.gain[[0, *live]].clone() for n in bank.norms]
    bank.add_skin("extra", skins["top"])
    slot = bank._slots["extra"]
    bank.remove_skin("extra")
    assert all(torch.equal(a, n.gain[[0, *live]]) for a, n in zip(tables, bank.norms))
    bank.add_skin("again", skins["all"])
    assert bank._slots["again"] == slot  # the freed row is reused: tables do not grow with churn
