"""`lntune schema sweep`: the JSON Schema editors get agrees with the sweep reader on every key it lists."""
import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

from lntune.sweep.config import ConfigError, load_config
from lntune.sweep.schema import SECTIONS, sweep_file_schema

from .conftest import write_yaml

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = jsonschema.Draft202012Validator(sweep_file_schema())

# One valid file that sets every key of every section the reader reads (test_every_key_is_exercised keeps it so).
EVERYTHING = {
    "name": "all", "seeds": [0, 1, 2], "workers": 1, "threads": 1, "devices": None, "data_dir": "/nowhere",
    "results": "out", "resources": {"num_cpus": 1, "num_gpus": 0}, "lr_seed": 0, "lr_budget": 2,
    "lrs": {"ln": [1e-2, 3e-3], "other": ["1e-3"]}, "batch_sizes": {"ln": 16, "default": 8},
    "train_limit": 100, "val_limit": 0.1, "eval_limit": 0,
    "train": {"epochs": 2, "batch_size": 16, "patience": 2, "select": "score"},
    "models": [{"name": "minilm", "tasks": ["sst2", "rte"], "batch_sizes": {"sst2": {"bitfit": 8}},
                "efficiency_task": "sst2"}],
    "tasks": ["rte", {"name": "sst2", "train_limit": 50, "val_limit": 20, "eval_limit": 40, "test_split": "dev",
                      "lrs": [1e-3], "batch_sizes": {"ln": 8}, "generate": 0, "num_beams": 1, "metric": "accuracy",
                      "epochs": 3}],
    "runs": [
        {"method": "ln", "row": "LN", "group": "main", "options": {"terms": "both"}, "lrs": {"sst2": [1e-2, 3e-3]},
         "lr_budget": 2, "tasks": ["sst2", "rte"], "models": ["minilm"], "seeds": [0, 1, 2], "preset": "paper",
         "warmup_ratio": 0.1},
        {"method": "bitfit", "row": "BitFit"},
        {"method": "ln", "row": "LN 16", "lr_from": "LN", "curve": [1, 2], "tasks": ["sst2"]},
        {"method": "ln", "row": "mask {kind} {fraction}", "mask": {"kind": ["random"], "fraction": [0.5], "seed": 3},
         "tasks": ["sst2"]},
    ],
    "efficiency": {"task": "sst2", "groups": ["main"], "batch_size": 8, "seq_len": 32, "steps": 2, "warmup": 1,
                   "seed": 1, "threads": 1, "repeats": 1},
    "fisher": {"examples": 8, "batch_size": 4, "max_length": 32, "seed": 1, "tasks": ["sst2"]},
    "analysis": {"margin": 1.5, "majority_margin": 2.0, "min_r": 0.2, "level": 0.95, "gate": 0.2,
                 "families": {"primary": ["LN - BitFit"]}, "gate_rows": ["LN"]},
    "lr_growth": {"steps": 2},
    "sequential": {"contrasts": [["LN", "BitFit"]], "start": 1, "block": 1, "max": 2, "half_width": 1.5,
                   "level": 0.95},
    "registered": {"note": "anything"},
}


def sections(cfg: dict):
    """(where, mapping) for every mapping of the file that a section of the reader reads."""
    yield "", cfg
    yield "models[]", cfg["models"][0]
    yield "tasks[]", cfg["tasks"][1]
    for run in cfg["runs"]:
        yield "runs[]", run
    for name in ("efficiency", "fisher", "analysis", "lr_growth", "sequential"):
        yield name, cfg[name]


def mapping_of(spec: dict) -> dict:
    """The object among a property's options (a section that may also be null)."""
    return spec if spec.get("type") == "object" else next(o for o in spec["anyOf"] if o.get("type") == "object")


def reader_accepts(tmp_path, cfg) -> bool:
    try:
        load_config(write_yaml(tmp_path / "s.yaml", cfg))
    except ConfigError:
        return False
    return True


def test_schema_is_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(sweep_file_schema())


def test_the_full_file_passes_both(tmp_path):
    assert reader_accepts(tmp_path, EVERYTHING)
    assert not list(VALIDATOR.iter_errors(EVERYTHING))


def test_every_key_is_exercised():
    """Each schema key of each section is set somewhere in EVERYTHING: a new field fails here until it is."""
    schema = sweep_file_schema()
    used: dict[str, set] = {}
    for where, mapping in sections(EVERYTHING):
        used.setdefault(where, set()).update(mapping)
    used[""].add("model")  # the other spelling of models: (test_model_or_models)
    sub = {"": schema, "models[]": schema["properties"]["models"]["anyOf"][1],
           "tasks[]": schema["properties"]["tasks"]["items"]["anyOf"][1],
           "runs[]": schema["properties"]["runs"]["items"]}
    for name in ("efficiency", "fisher", "analysis", "lr_growth", "sequential"):
        sub[name] = mapping_of(schema["properties"][name])
    from lntune.sweep.config import train_fields

    for where, cls in SECTIONS.items():
        listed = set(sub[where]["properties"]) - set(train_fields())  # train fields: one or two as samples
        assert listed <= used[where], f"{where or 'top level'} ({cls.__name__}): unset {sorted(listed - used[where])}"


@pytest.mark.parametrize("where", list(SECTIONS))
def test_an_unknown_key_fails_both(tmp_path, where):
    cfg = copy.deepcopy(EVERYTHING)
    dict(sections(cfg))[where]["colour"] = "red"  # the last mapping of that kind
    assert not reader_accepts(tmp_path, cfg)
    assert list(VALIDATOR.iter_errors(cfg))


@pytest.mark.parametrize("where, key, value", [
    ("", "seeds", ["one"]), ("", "workers", "two"), ("", "lrs", {"ln": ["fast"]}), ("", "train", {"epochs": "x"}),
    ("tasks[]", "num_beams", "wide"), ("tasks[]", "batch_sizes", {"ln": "big"}), ("runs[]", "curve", ["end"]),
    ("runs[]", "mask", {"kind": ["best"], "fraction": [0.5]}), ("runs[]", "mask", {"kind": ["random"]}),
    ("sequential", "contrasts", [["LN"]]), ("fisher", "examples", "many"), ("analysis", "families", ["LN"]),
    ("", "resources", {"num_cpus": "all"}), ("", "name", ""), ("", "runs", {"method": "ln"}), ("", "tasks", []),
])
def test_a_wrong_value_fails_both(tmp_path, where, key, value):
    cfg = copy.deepcopy(EVERYTHING)
    dict(sections(cfg))[where][key] = value
    assert not reader_accepts(tmp_path, cfg)
    assert list(VALIDATOR.iter_errors(cfg)), f"the schema took {where}.{key}: {value!r}"


@pytest.mark.parametrize("path", sorted(ROOT.glob("benchmarks/*.yaml")) + [ROOT / "examples" / "tiny_sweep.yaml"],
                         ids=lambda p: p.name)
def test_committed_sweeps_pass_the_schema(path):
    load_config(path)
    errors = [f"{list(e.path)}: {e.message}" for e in VALIDATOR.iter_errors(yaml.safe_load(path.read_text()))]
    assert not errors


def test_descriptions_come_from_the_field_comments():
    run = sweep_file_schema()["properties"]["runs"]["items"]["properties"]
    assert run["lr_from"]["description"].startswith("run at the lr the sweep chose")
    gate = mapping_of(sweep_file_schema()["properties"]["analysis"])["properties"]["gate"]["description"]
    assert "its verdicts are withheld" in gate  # a comment continued on the next line


@pytest.mark.parametrize("change, ok", [
    (lambda c: c.update(model=c.pop("models")[0]["name"]), True),
    (lambda c: c.update(model={"name": "minilm"}) or c.pop("models"), True),
    (lambda c: c.update(model="minilm"), False),
    (lambda c: c.pop("models"), False),
])
def test_model_or_models(tmp_path, change, ok):
    cfg = copy.deepcopy(EVERYTHING)
    change(cfg)
    assert reader_accepts(tmp_path, cfg) == ok
    assert (not list(VALIDATOR.iter_errors(cfg))) == ok


def test_lntune_schema_sweep_prints_it():
    import json

    from typer.testing import CliRunner

    from lntune.cli import app

    assert json.loads(CliRunner().invoke(app, ["schema", "sweep"]).output) == sweep_file_schema()
    wrong = CliRunner().invoke(app, ["schema", "sweeps"])
    assert wrong.exit_code == 2 and "give train or sweep" in wrong.output
