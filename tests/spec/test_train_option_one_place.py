"""A training option is one field (issue 22): add a line to TrainConfig in a copy of the package, and nothing
else, and the option reaches `lntune train --help` and its rule, a --config YAML, a sweep YAML and its grid (out
of the run key while it holds its default), both JSON Schemas and the Python API."""
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import DATA_DIR

SRC = Path(__file__).resolve().parents[2] / "src" / "lntune"
ANCHOR = "    # What \"better\" means on validation, for the kept state and for patience alike.\n"
FIELD = ('    toy_rate: float = option(0.5, Rule(float, 0, 1), "a toy share, for the test", sweep="late")\n')

CHECKS = textwrap.dedent('''
    import copy, sys
    from pathlib import Path

    import lntune
    assert Path(lntune.__file__).parent == Path(sys.argv[1]), lntune.__file__  # the copy, not the checkout
    from typer.testing import CliRunner
    from lntune.cli import app

    help = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    assert "--toy-rate" in help and "a toy share, for the test" in help, help
    bad = CliRunner().invoke(app, ["train", "--toy-rate", "2"])
    assert bad.exit_code == 2 and "--toy-rate 2" in bad.output, bad.output

    from lntune import TrainConfig
    assert TrainConfig().toy_rate == 0.5 and TrainConfig(toy_rate=0.25).toy_rate == 0.25
    try:
        TrainConfig(toy_rate=2)
        raise SystemExit("the rule did not refuse toy_rate=2")
    except lntune.errors.TrainingError as e:
        assert "--toy-rate 2" in str(e), e

    run = Path(sys.argv[2]) / "run.yaml"
    run.write_text("toy_rate: 0.75\\n")
    assert TrainConfig.from_file(run).toy_rate == 0.75

    from lntune.spec.train import train_file_schema
    from lntune.sweep.schema import sweep_file_schema
    assert train_file_schema()["properties"]["toy_rate"]["maximum"] == 1
    assert "toy_rate" in sweep_file_schema()["properties"]["train"]["properties"]

    from lntune.sweep.config import parse_config
    from lntune.sweep.grid import expand
    base = {"name": "t", "model": "minilm", "seeds": [1], "lr_budget": 1, "train_limit": 32, "val_limit": 16,
            "eval_limit": 32, "train": {"epochs": 1}, "tasks": ["sst2"], "runs": [{"method": "ln"}]}
    plain = expand(parse_config(copy.deepcopy(base), Path("s.yaml")), sys.argv[3])
    base["train"]["toy_rate"] = 0.75
    toy = expand(parse_config(copy.deepcopy(base), Path("s.yaml")), sys.argv[3])
    assert [r.spec.train["toy_rate"] for r in toy] == [0.75] and "toy_rate" not in plain[0].spec.train
    assert toy[0].key != plain[0].key  # set: in the key; at its default: out of it, so committed keys survive
    print("reached every entry point")
''')


def test_one_new_field_reaches_every_entry_point(tmp_path):
    copy = tmp_path / "pkg" / "lntune"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    train = copy / "spec" / "train.py"
    text = train.read_text()
    assert text.count(ANCHOR) == 1, "the anchor line moved: update ANCHOR"
    train.write_text(text.replace(ANCHOR, FIELD + ANCHOR))
    script = tmp_path / "checks.py"
    script.write_text(CHECKS)
    r = subprocess.run([sys.executable, str(script), str(copy), str(tmp_path), str(DATA_DIR)], capture_output=True,
                       text=True, timeout=300, env={"PYTHONPATH": str(copy.parent), "HF_HUB_OFFLINE": "1",
                                                    "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0 and "reached every entry point" in r.stdout, r.stdout + r.stderr[-3000:]
