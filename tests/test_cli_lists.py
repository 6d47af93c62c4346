"""The listing commands a newcomer reads first: tasks (with the spec forms for their own files) and norms."""
from typer.testing import CliRunner

from lntune.cli import app


def test_tasks_lists_the_spec_forms_for_own_files():
    out = CliRunner().invoke(app, ["tasks"]).output
    assert "sst2\tclassification\taccuracy" in out
    for form in ("local:train=PATH,dev=PATH,text=COL", "prompt=COL,target=COL", "question=COL,choices=COL",
                 "conll:DIR"):
        assert form in out, out


def test_norms_never_cuts_module_names(tiny_dir):
    run = CliRunner().invoke(app, ["norms", "--model", str(tiny_dir("bert"))], terminal_width=40)
    assert run.exit_code == 0, run.output
    assert "bert.encoder.layer.0.attention.output.LayerNorm" in run.output and "…" not in run.output, run.output


def test_the_command_list_gives_each_summary_as_one_line():
    import inspect

    run = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "400"})
    assert run.exit_code == 0, run.output
    lines = run.output.splitlines()
    for info in app.registered_commands:
        first = " ".join(inspect.cleandoc(info.callback.__doc__).split("\n\n")[0].split())
        line = next(x for x in lines if x.strip("│ ").startswith(info.name + " "))
        assert first in line, (info.name, line)  # a wide terminal shows it whole, no break inside a sentence
