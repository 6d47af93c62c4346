"""Every method x head pair still trains to the recorded losses, metrics and tensors (golden.json).

The values were recorded by tests/golden/record.py from the code before a refactoring; a refactoring
must reproduce them. A failure lists what moved. Re-record only for an intended behaviour change."""
import json
from pathlib import Path

import pytest

from . import cases

GOLDEN = Path(__file__).resolve().parent / "golden.json"


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())["cases"]


def test_the_golden_file_covers_every_case_method_and_head(golden):
    from lntune.heads import HEADS
    from lntune.method import METHODS

    assert sorted(golden) == sorted(cases.case_id(*c) for c in cases.CASES)
    assert set(METHODS) <= set(cases.METHODS), "a registered method has no golden case: add it and re-record"
    assert set(HEADS) <= {head for _, head in cases.MODELS}, "a head has no golden case: add it and re-record"


@pytest.mark.parametrize("arch,head,method", cases.CASES, ids=[cases.case_id(*c) for c in cases.CASES])
def test_outcome_matches_the_recording(golden, arch, head, method):
    differences = cases.compare(golden[cases.case_id(arch, head, method)], cases.run_case(arch, head, method),
                                 head)
    assert not differences, "\n".join(differences)


def test_the_tolerance_still_sees_a_change_of_behaviour(golden):
    """A value moved by 1e-3 (far less than another draw order or one step more moves it) is reported."""
    case = golden["bert/classification/ln"]
    moved = {**case, "losses": [case["losses"][0] * 1.001, *case["losses"][1:]]}
    assert cases.compare(case, case, "classification") == []
    assert cases.compare(case, moved, "classification") == [f"loss 1: recorded {case['losses'][0]!r}, "
                                                            f"now {moved['losses'][0]!r}"]
    name = "bert.encoder.layer.0.output.LayerNorm.weight"
    tensor = {**case["tensors"][name], "norm": case["tensors"][name]["norm"] * 1.001}
    assert cases.compare(case, {**case, "tensors": {**case["tensors"], name: tensor}}, "classification")


@pytest.mark.parametrize("head", ["classification", "multiple-choice"])
def test_the_parameters_left_out_have_no_gradient_in_exact_arithmetic(head):
    """What zero_gradient leaves out gets gradients at rounding level only: float64, one backward pass."""
    import torch

    from lntune.heads import encode
    from lntune.train.loop import eval_loader

    lm = cases.tiny_lm("bert", head)
    model = lm.model.double()
    feats = encode(cases.rows(head, 8, 1), lm.tokenizer, head, cases.MAX_LENGTH)
    batch = next(iter(eval_loader(feats, 8, lm.tokenizer.pad_token_id)))
    model(**batch).loss.backward()
    grads = {n: p.grad.abs().max().item() for n, p in model.named_parameters() if p.grad is not None}
    left_out = [n for n in grads if cases.zero_gradient(n, head)]
    assert left_out and max(grads[n] for n in left_out) < 1e-12 * max(grads.values())
    kept = [n for n in grads if n.endswith(".bias") and not cases.zero_gradient(n, head)]
    assert min(grads[n] for n in kept) > 1e-6 * max(grads.values())  # the others do learn
