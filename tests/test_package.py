"""The package's front (issue 16): `import lntune.cli` stays light (no torch, accelerate, transformers or scipy),
so `lntune --help` starts fast; every public name resolves lazily and has a docstring with a short example,
and the examples that need no download or training run as doctests."""
import doctest
import subprocess
import sys

import pytest

import lntune

HEAVY = ("torch", "accelerate", "transformers", "scipy", "matplotlib", "fastapi", "datasets")


def test_cli_import_stays_light():
    code = f"import sys, lntune.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_runs_without_heavy_imports():
    code = ("import sys; from lntune.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "assert 'train' in r.output and 'serve' in r.output; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_names_resolve_and_train_stays_the_function():
    import lntune.train.loop  # noqa: F401 - importing the subpackage must not hide the function

    assert callable(lntune.train) and lntune.train.__module__ == "lntune.train.loop"
    assert set(dir(lntune)) >= set(lntune.__all__)
    for name in lntune.__all__:
        assert getattr(lntune, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lntune.nope  # noqa: B018


@pytest.mark.parametrize("name", lntune.__all__)
def test_public_name_has_a_docstring_with_an_example(name):
    obj = getattr(lntune, name)
    doc = obj.__doc__ or ""
    assert len(doc.split("\n\n")[0]) > 20, f"{name}: no summary line"
    assert ">>> " in doc and name in doc.split(">>>", 1)[1], f"{name}: no example that uses it"


@pytest.mark.parametrize("name", lntune.__all__)
def test_examples_run(name):
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(getattr(lntune, name), name, module=False, globs={}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0
