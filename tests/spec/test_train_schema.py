"""`lntune schema`: the JSON Schema of a `lntune train --config` file agrees with the rules TrainConfig checks."""
import json
from dataclasses import fields
from pathlib import Path

import jsonschema
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lntune.cli import app
from lntune.spec.train import TrainConfig, train_file_schema

SCHEMA = train_file_schema()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def schema_accepts(doc: dict) -> bool:
    try:
        jsonschema.validate(doc, SCHEMA)
        return True
    except jsonschema.ValidationError:
        return False


def test_the_cli_prints_a_valid_schema_with_every_key_a_file_may_hold():
    printed = json.loads(CliRunner().invoke(app, ["schema"]).output)
    jsonschema.Draft202012Validator.check_schema(printed)
    assert set(printed["properties"]) == {f.name for f in fields(TrainConfig)} - {"progress"}
    assert all(p["description"] for p in printed["properties"].values())


def test_the_example_file_and_the_defaults_validate_and_unknown_keys_do_not():
    assert schema_accepts(yaml.safe_load((EXAMPLES / "run.yaml").read_text()))
    assert schema_accepts({k: p["default"] for k, p in SCHEMA["properties"].items() if "default" in p})
    assert not schema_accepts({"learning_rate": 1e-3})


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 2**33), st.floats(allow_nan=False, allow_infinity=False),
                   st.sampled_from(["no", "bf16", "loss", "score", "tensorboard,wandb", "wandb,wandb", "x", "auto"]))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([f.name for f in fields(TrainConfig) if f.name != "progress"]), VALUES)
def test_one_value_is_accepted_by_the_schema_exactly_when_the_rule_accepts_it(name, value):
    rule = next(f for f in fields(TrainConfig) if f.name == name).metadata["rule"]
    if rule.several and isinstance(value, str) and len(set(value.split(","))) < len(value.split(",")):
        return  # a tracker named twice: the rule refuses it, a pattern cannot say it
    if rule.kind is int and isinstance(value, float) and value.is_integer():
        return  # JSON Schema counts 2.0 as an integer; the rule does not
    if rule.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # TrainConfig converts an integer where a float goes (field_problems)
    assert schema_accepts({name: value}) == rule.accepts(value), (name, value)
