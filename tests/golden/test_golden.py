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
    differences = cases.compare(golden[cases.case_id(arch, head, method)], cases.run_case(arch, head, method))
    assert not differences, "\n".join(differences)
