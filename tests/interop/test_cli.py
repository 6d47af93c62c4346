"""`lntune export | import | merge` from the command line: files written, one-line errors with exit status 2."""
from typer.testing import CliRunner

from lntune.cli import app

from .test_peft import _skin

runner = CliRunner()


def test_export_import_merge_commands(tiny_dir, data_dir, tmp_path):
    _, skin = _skin(tiny_dir, data_dir, tmp_path, "ln")
    r = runner.invoke(app, ["export", str(skin), str(tmp_path / "peft"), "--format", "peft"])
    assert r.exit_code == 0 and (tmp_path / "peft" / "adapter_model.safetensors").exists(), r.output
    r = runner.invoke(app, ["import", str(tmp_path / "peft"), str(tmp_path / "back")])
    assert r.exit_code == 0 and (tmp_path / "back" / "skin.json").exists(), r.output
    assert (tmp_path / "back" / "README.md").exists()
    r = runner.invoke(app, ["merge", str(tmp_path / "back"), str(tmp_path / "merged")])
    assert r.exit_code == 0 and (tmp_path / "merged" / "config.json").exists(), r.output
    card = (tmp_path / "merged" / "README.md").read_text()
    assert "library_name: transformers" in card and "- merged" in card
    assert 'AutoModelForSequenceClassification.from_pretrained("PATH")' in card
    assert "Labels by output index: 0 negative, 1 positive." in card
    r = runner.invoke(app, ["merge", str(skin), str(tmp_path / "merged")])
    assert r.exit_code == 2 and "exists; pass --overwrite" in r.output


def test_errors_are_one_line(tiny_dir, data_dir, tmp_path):
    _, skin = _skin(tiny_dir, data_dir, tmp_path, "bitfit")
    r = runner.invoke(app, ["export", str(skin), str(tmp_path / "peft")])
    assert r.exit_code == 2 and "no PEFT format" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["export", str(skin), str(tmp_path / "x"), "--format", "onnx"])
    assert r.exit_code == 2 and "the only format is peft" in r.output
    r = runner.invoke(app, ["import", str(tmp_path), str(tmp_path / "y")])
    assert r.exit_code == 2 and "no adapter_config.json" in r.output
