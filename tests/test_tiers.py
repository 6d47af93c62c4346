"""The test-tier tables of tests/conftest.py name real tests, and modules that look like they start
processes or load an embedded model have an entry (so `pytest -m fast` stays in process and light)."""
import re
from pathlib import Path

from conftest import TIER_FIXTURES, TIER_MARKERS, TIER_TESTS

TESTS = Path(__file__).resolve().parent

# Signs that a module starts processes or loads real weights; a module showing one needs an entry.
PROCESS_SIGNS = re.compile(r"\bsubprocess\b|Popen|torch\.distributed\.run|torchrun|ray\.init|run_sweep\(|LocalBackend|"
                           r"\bmultiprocessing\b")
MODEL_SIGNS = re.compile(r"""(load_model|SkinBank|make_skin|resolve|from_pretrained)\(\s*["'](minilm|smollm2)["']""")


def test_every_entry_names_a_module_folder_or_function():
    for key, tier in TIER_TESTS.items():
        assert tier in TIER_MARKERS, key
        path, _, name = key.partition("::")
        assert (TESTS / path).exists(), f"tests/conftest.py TIER_TESTS: {path} is gone; remove or rename the entry"
        if name:
            assert re.search(rf"^(async )?def {re.escape(name)}\(", (TESTS / path).read_text(), re.M), (
                f"tests/conftest.py TIER_TESTS: {key} is gone; remove or rename the entry")
    for fixture in TIER_FIXTURES:
        defined = any(re.search(rf"^def {fixture}\(", p.read_text(), re.M) for p in TESTS.rglob("*.py"))
        assert defined, f"tests/conftest.py TIER_FIXTURES: no fixture {fixture} any more"


def test_modules_that_start_processes_or_load_real_models_have_an_entry():
    listed = {key.partition("::")[0] for key in TIER_TESTS}
    uses_fixture = re.compile(r"\b(" + "|".join(map(re.escape, TIER_FIXTURES)) + r")\b")
    missing = []
    for path in sorted(TESTS.rglob("test_*.py")):
        rel = path.relative_to(TESTS).as_posix()
        if path.name == "test_tiers.py" or rel in listed or any(rel.startswith(f"{d}/") for d in listed):
            continue
        text = path.read_text()
        if (PROCESS_SIGNS.search(text) or MODEL_SIGNS.search(text)) and not uses_fixture.search(text):
            missing.append(rel)
    assert not missing, (f"{missing} look like they start processes or load an embedded model: list those tests "
                         "in TIER_TESTS of tests/conftest.py (or mark them), so that `pytest -m fast` skips them")
