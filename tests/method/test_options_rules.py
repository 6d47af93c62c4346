"""Every method option has a type and a range on its config field, checked in one path (the config's
construction) whatever built it: -o, YAML, a sweep, the API or a skin's rebuild options. Generated values
either build a method whose options meet their rules, or raise MethodError; nothing else escapes, and prepare
on a tiny model raises nothing but LntuneError either."""
from dataclasses import fields

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lntune.cli import app
from lntune.errors import LntuneError, MethodError
from lntune.method import METHODS, build_method, prepare

VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                   st.text(max_size=12), st.sampled_from(["0", "1", "all", "both", "nan", "inf", "-1", "0-1", ""]))


def test_every_option_of_every_method_has_a_rule():
    missing = [f"{name}.{f.name}" for name, m in METHODS.items() for f in fields(m.Config) if "rule" not in f.metadata]
    assert missing == []


@pytest.mark.parametrize("name", sorted(METHODS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_options_are_built_or_refused_never_a_traceback(name, data, make_lm):
    options = {f.name: data.draw(VALUES, label=f.name) for f in fields(METHODS[name].Config)
               if data.draw(st.booleans(), label=f"set {f.name}")}
    try:
        method = build_method(name, **options)
    except MethodError:
        return
    for f in fields(method.config):  # what was accepted meets its rule
        assert f.metadata["rule"].problem(getattr(method.config, f.name)) is None, (f.name, options)
    if name == "3v" or data.draw(st.booleans(), label="prepare"):  # 3V needs a classification head: make_lm has one
        try:
            prepare(make_lm("bert"), method)
        except LntuneError:
            pass


@pytest.mark.parametrize("option,words", [
    ("-o layers=3", None),  # JSON's 3 read as the layer range "3": valid
    ("-o r=-3", "method lora: r -3: must be an integer >= 1"),
    ("-o scale=nan", "method par_adapter_ffn: scale 'nan': must be a finite number"),
])
def test_the_cli_refuses_bad_values_in_one_line(option, words, tiny_dir, data_dir, tmp_path):
    method = {"-o layers=3": "ln", "-o r=-3": "lora", "-o scale=nan": "par_adapter_ffn"}[option]
    args = ["train", "--model", str(tiny_dir("bert")), "--method", method, *option.split(), "--epochs", "1",
            "--train-limit", "16", "--eval-limit", "16", "--no-progress", "--data-dir", str(data_dir),
            "--out", str(tmp_path / "skin")]
    run = CliRunner().invoke(app, args)
    if words is None:
        assert run.exit_code == 0, run.output
    else:
        assert run.exit_code == 2 and words in run.output and "Traceback" not in run.output, run.output
