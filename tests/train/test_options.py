"""One validation of the training options for the CLI, the Python API and sweep YAMLs: every bad value
is refused before anything loads, with one line that names the option and what it accepts."""
import math
from dataclasses import fields

import pytest
import yaml
from typer.testing import CliRunner

from lntune import api
from lntune.cli import app
from lntune.errors import LntuneError, TrainingError
from lntune.spec.train import RULES
from lntune.sweep.config import GRID_OWNED, ConfigError, load_config
from lntune.sweep.grid import expand
from lntune.train import TrainConfig
from lntune.train.validate import model_positions

# (field, value, words of the allowed range): every one of these trained (or crashed) before.
BAD = [
    ("lr", 0.0, "> 0"),
    ("lr", -1e-3, "> 0"),
    ("lr", math.nan, "finite number > 0"),
    ("lr", math.inf, "finite number > 0"),
    ("head_lr", 0.0, "> 0"),
    ("batch_size", 0, ">= 1"),
    ("eval_batch_size", 0, ">= 1"),
    ("max_grad_norm", -1.0, "> 0"),  # the clip coefficient went negative: training went uphill
    ("max_grad_norm", 0.0, "> 0"),
    ("epochs", -1, ">= 0"),
    ("max_steps", 0, ">= 1"),  # silently ignored: trained for --epochs
    ("max_steps", -3, ">= 1"),
    ("eval_every", 0, ">= 1"),  # silently ignored
    ("eval_every", -1, ">= 1"),
    ("patience", 0, ">= 1"),
    ("warmup_ratio", 5.0, "in [0, 1]"),
    ("warmup_ratio", -0.1, "in [0, 1]"),
    ("max_length", 0, ">= 1"),
    ("weight_decay", -0.01, ">= 0"),
    ("mixed_precision", "fp8", "choose no, bf16 or fp16"),
    ("seed", -1, "in [0, 4294967295]"),  # numpy's seed raised a ValueError
]
IDS = [f"{f}={v}" for f, v, _ in BAD]


def flag(field: str) -> str:
    return "--" + field.replace("_", "-")


@pytest.fixture(autouse=True)
def nothing_loads(monkeypatch):
    """Every refusal here comes before data or weights are read."""
    def fail(*a, **k):
        raise AssertionError("loaded data or a model before the options were checked")

    for name in ("load_split", "carve_validation", "load_model", "train"):
        monkeypatch.setattr(api, name, fail)


def run_cli(*args):
    result = CliRunner().invoke(app, ["train", *[str(a) for a in args]])
    return result.exit_code, result.output, result  # click 8.2+: output holds stderr too


def assert_one_line_error(code, out, *words):
    assert code == 2, out
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out
    for w in words:
        assert w in lines[0], out


@pytest.mark.parametrize("field, value, words", BAD, ids=IDS)
def test_api_refuses(field, value, words):
    with pytest.raises(TrainingError) as e:
        TrainConfig(**{field: value})
    assert str(e.value).startswith(f"{flag(field)} ") and words in str(e.value), str(e.value)


@pytest.mark.parametrize("field, value, words", BAD, ids=IDS)
def test_cli_refuses(field, value, words, tmp_path):
    code, out, _ = run_cli(flag(field), value, "--out", tmp_path / "s")
    assert_one_line_error(code, out, flag(field), words)
    assert not (tmp_path / "s").exists()


SWEEP_BAD = [b for b in BAD if b[0] not in GRID_OWNED]


def sweep_yaml(tmp_path, **changes):
    cfg = {"name": "t", "model": "minilm", "seeds": [1], "tasks": ["sst2"], "runs": [{"method": "ln"}],
           "train": {"epochs": 1}}
    cfg.update(changes)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def sweep_error(path) -> str:
    with pytest.raises(LntuneError) as e:
        expand(load_config(path))
    msg = str(e.value)
    assert msg.startswith(f"{path}: "), msg
    return msg


@pytest.mark.parametrize("field, value, words", SWEEP_BAD, ids=[f"{f}={v}" for f, v, _ in SWEEP_BAD])
@pytest.mark.parametrize("where", ["train", "task", "run"])
def test_sweep_yaml_refuses(tmp_path, field, value, words, where):
    if where == "train":
        path, at = sweep_yaml(tmp_path, train={field: value}), f"train.{field}"
    elif where == "task":
        path, at = sweep_yaml(tmp_path, tasks=[{"name": "sst2", field: value}]), f"tasks[0].{field}"
    else:
        path, at = sweep_yaml(tmp_path, runs=[{"method": "ln", field: value}]), f"runs[0].{field}"
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert f"{path}: {at}: " in str(e.value) and words in str(e.value), str(e.value)


@pytest.mark.parametrize("lr", [math.inf, math.nan])
def test_sweep_lr_lists_are_checked_by_the_same_rule(tmp_path, lr):
    msg = sweep_error(sweep_yaml(tmp_path, lrs={"ln": [lr]}))
    assert "runs[0] on sst2: --lr " in msg and "finite number > 0" in msg, msg


def test_sweep_checks_the_fields_together_too(tmp_path):
    msg = sweep_error(sweep_yaml(tmp_path, train={"cache_bottom": "on"}))
    assert "--cache-bottom on needs --frozen-bottom eval" in msg, msg


def test_edges_and_unset_values_are_accepted(tmp_path):
    TrainConfig(epochs=0, max_grad_norm=math.inf, warmup_ratio=0.0, weight_decay=0.0, max_steps=None,
                eval_every=None, patience=None, head_lr=None, seed=0, mixed_precision="bf16")
    TrainConfig(warmup_ratio=1.0, max_steps=1, eval_every=1, patience=1, max_length=1, batch_size=1)
    assert expand(load_config(sweep_yaml(tmp_path, train={"epochs": 0, "max_steps": None, "patience": 2})))


def test_numbers_become_plain_python_numbers():
    np = pytest.importorskip("numpy")
    config = TrainConfig(epochs=np.int64(3), lr=1, batch_size=np.int32(8))
    assert type(config.epochs) is int and type(config.batch_size) is int and type(config.lr) is float


def test_every_field_has_a_rule():
    assert set(RULES) == {f.name for f in fields(TrainConfig)}
    for f in fields(TrainConfig):  # the defaults pass their own rules
        assert RULES[f.name].problem(f.default) is None, f.name


@pytest.mark.parametrize("field, value", [("lr", "1e-3"), ("epochs", 2.5), ("progress", 1), ("batch_size", True)])
def test_wrong_types_are_refused_through_the_api(field, value):
    with pytest.raises(TrainingError, match=flag(field)):
        TrainConfig(**{field: value})


# --- options of a run, checked by train_task before it loads anything --------------------------------

@pytest.mark.parametrize("args, words", [
    (["--dtype", "float64"], "--dtype 'float64': choose float32, bfloat16 or float16"),
    (["--norm-map", '{"norm_a$": mha}'], "--norm-map: not valid JSON"),
    (["--norm-map", '["mha"]'], "--norm-map: expected a JSON object"),
    (["--norm-map", '{"norm_a$": "attention"}'], "choose embeddings, mha, ffn or final"),
    (["--norm-map", '{"(": "mha"}'], "is not a regular expression"),
    (["--train-limit", -5], "--train-limit -5: must be an integer >= 0"),
    (["--eval-limit", -1], "--eval-limit -1: must be an integer >= 0"),
    (["--num-beams", 0], "--num-beams 0: must be an integer >= 1"),
    (["--generate", -2], "--generate -2: must be an integer >= -1"),
])
def test_cli_refuses_run_options(args, words, tiny_dir, tmp_path):
    code, out, _ = run_cli("--model", tiny_dir("bert"), *args, "--out", tmp_path / "s")
    assert_one_line_error(code, out, words)


def test_api_refuses_run_options(tiny_dir, tmp_path):
    model = str(tiny_dir("bert"))
    with pytest.raises(LntuneError, match="--dtype 'int8'"):
        api.train_task("sst2", model, dtype="int8", out=None)
    with pytest.raises(LntuneError, match="label 'attention'"):
        api.train_task("sst2", model, norm_map={"x$": "attention"}, out=None)


def test_max_length_above_the_models_positions(tiny_dir, tmp_path):
    model = tiny_dir("bert")  # 128 positions
    code, out, _ = run_cli("--model", model, "--max-length", 129, "--out", tmp_path / "s")
    assert_one_line_error(code, out, "--max-length 129", "at most 128", "[1, 128]")
    with pytest.raises(LntuneError, match="--max-length 129: model .* takes at most 128 tokens"):
        api.train_task("sst2", str(model), config=TrainConfig(max_length=129), out=None)


def test_max_length_of_the_embedded_minilm(tmp_path):
    assert model_positions("minilm") == 512
    code, out, _ = run_cli("--model", "minilm", "--max-length", 513, "--out", tmp_path / "s")
    assert_one_line_error(code, out, "--max-length 513", "at most 512")


def test_unreadable_configs_skip_the_positions_check(tmp_path):
    assert model_positions("no-such-org/no-such-model") is None  # offline: the model load reports it later
    assert model_positions(str(tmp_path)) is None


def test_model_folder_without_config_json(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    code, out, _ = run_cli("--model", folder, "--out", tmp_path / "s")
    assert_one_line_error(code, out, f"--model {folder}: the folder has no config.json")
    code, out, _ = run_cli("--model", folder / "model.safetensors", "--out", tmp_path / "s")
    assert_one_line_error(code, out, "a file, not a model folder")
    with pytest.raises(LntuneError, match="has no config.json"):
        api.train_task("sst2", str(folder), out=None)
    result = CliRunner().invoke(app, ["eval", "--model", str(folder), "--task", "e2e", "--generate", "2"])
    assert result.exit_code == 2 and "has no config.json" in result.output, result.output


def test_a_built_config_cannot_be_changed_past_its_rules():
    import dataclasses

    config = TrainConfig(lr=1e-3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = -1
    with pytest.raises(TrainingError, match="--lr -1"):
        dataclasses.replace(config, lr=-1)
    assert dataclasses.replace(config, lr=3e-3).lr == 3e-3 and hash(config) == hash(TrainConfig(lr=1e-3))


def test_every_field_is_one_flag_one_yaml_key_and_one_keyword(tmp_path):
    """The CLI's training flags are generated from TrainConfig's fields: each field has exactly one flag (with the
    field's default and help) unless it says it has none, and then the help lists it; each is one YAML key of
    --config and one keyword of TrainConfig (the API)."""
    import inspect

    import yaml

    from lntune.cli import app, train_cmd
    from lntune.spec.config_file import read_train_file

    cli = {p.name: p.default for p in inspect.signature(train_cmd).parameters.values() if hasattr(p.default, "default")}
    for f in fields(TrainConfig):
        if f.metadata["flag"]:
            assert cli[f.name].default == f.default and cli[f.name].help == f.metadata["help"], f.name
        else:
            assert f.name not in cli, f.name
    help_text = " ".join(CliRunner().invoke(app, ["train", "--help"], terminal_width=400).output.split())
    unflagged = [f.name for f in fields(TrainConfig) if not f.metadata["flag"]]
    assert unflagged and f"without a flag (set them in --config YAML or in Python): {', '.join(unflagged)}" in help_text
    assert set(inspect.signature(TrainConfig).parameters) == {f.name for f in fields(TrainConfig)}
    path = tmp_path / "all.yaml"
    every = {f.name: f.default for f in fields(TrainConfig) if f.name != "progress"}  # progress: the terminal's
    path.write_text(yaml.safe_dump(every))
    assert read_train_file(path, fields(TrainConfig)) == every


def test_a_toy_option_is_checked_by_its_rule_and_read_from_yaml(monkeypatch, tmp_path):
    """A field added in one place (a TrainConfig field with option(...)) is checked by its own rule, named by its
    flag, and read from YAML; the CLI flags and sweep roles are derived from the same fields (tests above)."""
    import dataclasses

    from lntune.spec import train as spec_train
    from lntune.spec.rules import Rule

    Toy = dataclasses.make_dataclass(
        "TrainConfig", [("toy_rate", "float", spec_train.option(0.5, Rule(float, 0, 1), "a toy share", sweep="late"))],
        bases=(spec_train.TrainConfig,), frozen=True)
    assert Toy(toy_rate=0.25).toy_rate == 0.25
    with pytest.raises(TrainingError, match=r"--toy-rate 2: must be a finite number in \[0, 1\]"):
        Toy(toy_rate=2)
    toy_field = next(f for f in fields(Toy) if f.name == "toy_rate")
    assert spec_train.flag_of(toy_field) == "--toy-rate"
    path = tmp_path / "toy.yaml"
    path.write_text("toy_rate: 0.75\n")
    from lntune.spec.config_file import read_train_file

    assert read_train_file(path, fields(Toy)) == {"toy_rate": 0.75}

