"""The `lntune` command line."""
from __future__ import annotations

import inspect
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from lntune.errors import LntuneError, LntuneWarning
from lntune.heads import DEFAULT, HEADS
from lntune.plugins import PluginError, load_plugins

try:  # before any help text below reads a registry: a plugin's heads, methods and tasks show in it
    load_plugins()
    _PLUGIN_ERROR: PluginError | None = None
except PluginError as e:  # said by main() as one line, like every other error, rather than as a traceback
    _PLUGIN_ERROR = e

if TYPE_CHECKING:
    from lntune.spec.results import RunResult  # pydantic: not imported for --help

app = typer.Typer(add_completion=False, no_args_is_help=True, help="LayerNorm tuning and friends.")


def _say(e: LntuneError) -> None:
    typer.secho(f"error: {e}", fg="red", err=True)


def _fail(e: LntuneError) -> None:
    _say(e)
    raise typer.Exit(2)


def train_cmd(
    ctx: typer.Context,
    task: str = typer.Option("sst2", help="task name (see lntune tasks)"),
    model: str = typer.Option("minilm", help="alias (minilm, smollm2), local path or Hugging Face id"),
    method: str = typer.Option("ln", help="tuning method, or parts joined by + (e.g. prefix+ln); see lntune methods"),
    option: list[str] = typer.Option([], "--option", "-o", help="method option PART.FIELD=VALUE, repeatable"),
    preset: Optional[str] = typer.Option(None, help="paper: the papers' prefix length / adapter size for this model"),
    ln_terms: Optional[str] = typer.Option(None, help="LN: gain | bias | both (default both)"),
    ln_modules: Optional[str] = typer.Option(None, help="LN: subset of embeddings,mha,ffn,final (default all)"),
    ln_layers: Optional[str] = typer.Option(None, help="LN: all | top-half | bottom-half | ranges like 0-5,8"),
    ln_mask: Optional[Path] = typer.Option(None, help="LN: safetensors file of boolean element masks"),
    dtype: str = typer.Option("float32", help="weights of the frozen model: float32 | bfloat16 | float16"),
    train_limit: int = typer.Option(3000, help="seeded training subset; 0 for the whole split"),
    eval_limit: int = typer.Option(0, help="seeded dev subset; 0 for the whole split"),
    data_dir: Optional[Path] = typer.Option(None, envvar="LNTUNE_DATA_DIR", help="folder with the upstream files"),
    out: Optional[Path] = typer.Option(None, help="skin directory (default runs/TASK-METHOD, or runs/TASK-METHOD-2, "
                                                  "-3, ... when taken)"),
    overwrite: bool = typer.Option(False, help="replace a skin already at --out (otherwise refused before training)"),
    norm_map: Optional[str] = typer.Option(None, help='JSON {"name regex": "mha|ffn|embeddings|final"}'),
    config_file: Optional[Path] = typer.Option(
        None, "--config", help="YAML of training options (the keys of a sweep's train: section, lr, seed); "
                               "options given on the command line win"),
    generate: int = typer.Option(
        0, help="generation tasks: after training, BLEU/ROUGE/... on N unique dev inputs (-1 all)"),
    num_beams: int = typer.Option(1, help="beams for --generate (1: greedy)"),
    resume: Optional[Path] = typer.Option(
        None, metavar="RUN_DIR", help="continue the interrupted run in RUN_DIR from its last checkpoint, with its "
                                      "settings (only --data-dir and --progress may be given)"),
    checkpoint: bool = typer.Option(
        True, help="write OUT/checkpoint/ at each evaluation, for --resume (removed when the skin is saved)"),
    **train: object,  # one flag per TrainConfig field that has one: see _with_train_flags
) -> None:
    """Tune a model on a task and save a skin (default: LN-tuning of MiniLM on SST-2)."""
    from lntune.api import train_task
    from lntune.train.step import is_main_process
    from lntune.train.validate import parse_norm_map

    if resume is not None:
        return _resume(ctx, resume, data_dir, train)
    try:
        options = _method_options(method, option, terms=ln_terms, modules=ln_modules, layers=ln_layers,
                                  mask=str(ln_mask) if ln_mask else None)
        config = _train_config(ctx, train, config_file)
        rec = train_task(
            task, model, method, options, config,
            out or _default_out(task, method, overwrite), data_dir, train_limit or None, eval_limit or None, dtype,
            parse_norm_map(norm_map), preset, generate, num_beams, overwrite=overwrite, checkpoint=checkpoint,
        )
    except LntuneError as e:
        _fail(e)
    _echo_result(rec, method, model, config.progress, is_main_process())


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the user typed the option (typer vendors click: its ParameterSource is compared by name)."""
    return getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"


def _resume(ctx: typer.Context, run_dir: Path, data_dir: Path | None, train: dict) -> None:
    """lntune train --resume RUN_DIR: every setting comes from the run's checkpoint, so no other may be typed."""
    from lntune.api import train_task
    from lntune.train.checkpoint import run_args
    from lntune.train.step import is_main_process

    extra = [p for p in ctx.command.params
             if p.name not in ("resume", "data_dir", "progress", "checkpoint") and _given(ctx, p.name)]
    if extra:
        _fail(LntuneError(f"--resume takes every setting from the run's checkpoint; drop {extra[0].opts[0]}"))
    try:
        kwargs = run_args(run_dir, data_dir, train["progress"] if _given(ctx, "progress") else None)
        rec = train_task(**kwargs)
    except LntuneError as e:
        _fail(e)
    _echo_result(rec, kwargs["method"], kwargs["model"], kwargs["config"].progress, is_main_process())


def _method_options(method: str, assignments: list[str], **ln: str | None) -> dict:
    """The method's options from -o PART.FIELD=VALUE and the --ln-* shortcuts (which need the ln method)."""
    from lntune.method.options import for_build, merge, parse_assignments
    from lntune.method.paper import LN, has_ln

    ln = {k: v for k, v in ln.items() if v is not None}
    if ln and not has_ln(method):
        raise LntuneError(f"--ln-* options need the {LN} method; --method is {method}")
    return for_build(method, merge({LN: ln} if ln else {}, parse_assignments(method, assignments)))


def _train_config(ctx: typer.Context, train: dict, config_file: Path | None):
    """The TrainConfig of the flags, with a --config YAML's values where the flag was not typed."""
    from dataclasses import fields

    from lntune.spec.config_file import read_train_file
    from lntune.spec.train import TrainConfig

    values = dict(train)
    if config_file is not None:
        known = read_train_file(config_file, fields(TrainConfig))
        values.update({k: v for k, v in known.items() if k not in values or not _given(ctx, k)})
    return TrainConfig(**values)


def _default_out(task: str, method: str, overwrite: bool) -> Path:
    """The default skin folder, said at the start when another run already holds runs/TASK-METHOD."""
    from lntune.api import default_out
    from lntune.train.step import is_main_process

    out, base = default_out(task, method, overwrite), default_out(task, method, overwrite=True)
    if out != base and is_main_process():
        resumable = (base / "checkpoint").is_dir() and not (base / "skin.json").exists()
        hint = f"; {base} holds an interrupted run: lntune train --resume {base} continues it" if resumable else ""
        typer.echo(f"skin folder: {out} ({base} is taken; --out names the folder{hint})", err=True)
    return out


def _with_train_flags(command):
    """`command`'s signature with one typer option per TrainConfig field that has a flag, in field order after
    the method options: type, default and help come from the field, so none is written twice."""
    import inspect
    import typing
    from dataclasses import fields

    from lntune.spec.train import FLAGGED, TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    params = [p for p in inspect.signature(command).parameters.values() if p.kind is not p.VAR_KEYWORD]
    at = [p.name for p in params].index("ln_mask") + 1
    flags = [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=hints[f.name],
                               default=typer.Option(f.default, help=f.metadata["help"])) for f in FLAGGED]
    command.__signature__ = inspect.Signature(params[:at] + flags + params[at:])
    unflagged = [f.name for f in fields(TrainConfig) if not f.metadata["flag"]]
    command.__doc__ += f"\n\nTraining options without a flag (set them in --config YAML or in Python): {', '.join(unflagged)}."
    return command


train_cmd = app.command("train")(_with_train_flags(train_cmd))


def _echo_result(rec: RunResult, method: str, model: str, progress: bool, main: bool) -> None:
    """What lntune train prints at the end: once, by the main process of a multi-process launch."""
    from lntune.api import describe_counts

    if not main:
        return
    if not progress:
        typer.echo(describe_counts(method, model, rec.counts.model_dump()))
    best = ", ".join(f"{k} {v:.4f}" for k, v in rec.metrics.items() if isinstance(v, float))
    split = ("validation slice carved from train (it chose the kept state; add dev=PATH for an unbiased score)"
             if rec.data.carved else "dev")
    typer.echo(f"{split} (best by {rec.train.get('select', 'loss')}, step {rec.metrics['step']}): {best}")
    if rec.generation is not None:
        _echo_generation(rec.generation.model_dump())
    typer.echo(f"skin: {rec.out}")


def _echo_generation(gen: dict, saved: dict | None = None) -> None:
    s = gen["settings"]
    typer.echo(f"generation on {s['inputs']} dev inputs (beams {s['num_beams']}, "
               f"max {s['max_new_tokens']} new tokens):")
    for k, v in gen["metrics"].items():
        note = ""
        if saved is not None:
            note = " (same as saved)" if saved.get(k) == v else f" (saved {saved.get(k)})"
        typer.echo(f"{k}: " + ("unavailable: " + gen["unavailable"][k] if v is None else f"{v:.6f}{note}"))


@app.command("eval")
def eval_cmd(
    skin: Optional[str] = typer.Option(None, help="skin directory written by lntune train, or a Hub repo id "
                                                  "user/name[@revision]"),
    model: Optional[str] = typer.Option(None, help="base model (default: the one recorded in the skin)"),
    data_dir: Optional[Path] = typer.Option(None, envvar="LNTUNE_DATA_DIR"),
    generate: Optional[int] = typer.Option(
        None, help="generation metrics on N unique dev inputs (-1 all, 0 none; default: as saved in the skin)"),
    num_beams: Optional[int] = typer.Option(None, help="beams for generation (default: as saved, else 1 = greedy)"),
    predictions: Optional[Path] = typer.Option(None, help="write prompt, prediction and references as JSON lines"),
    task: Optional[str] = typer.Option(
        None, help="with --skin: evaluate on this task (same head and labels) instead of the one the skin names; "
                   "without --skin: score the untuned --model on it"),
) -> None:
    """Evaluate a skin on its dev split and compare with the metrics it saved; without --skin,
    score an untuned --model's generations on --task (the baseline)."""
    from lntune.api import evaluate_and_generate, generate_base
    from lntune.interop.hub import resolve_skin
    from lntune.train.validate import check_model

    try:
        if model is not None:
            check_model(model)  # one line, not a transformers traceback
        if skin is None:
            if not (model and task and generate):
                raise LntuneError("eval needs --skin DIR, or --model, --task and --generate N for an untuned baseline")
            return _echo_generation(generate_base(task, model, data_dir, generate, num_beams or 1,
                                                  predictions=predictions))
        skin = resolve_skin(skin)  # a folder, or a Hub repo id (user/name@revision)
        got, gen, meta = evaluate_and_generate(skin, data_dir, model, task, generate, num_beams, predictions)
    except LntuneError as e:
        _fail(e)
    saved = meta.metrics or {}
    for k, v in got.items():
        if task is not None:  # another task's data: the saved numbers are not the ones to match
            typer.echo(f"{k}: {v:.6f} (on --task {task})")
            continue
        same = "same as saved" if saved.get(k) == v else f"saved {saved.get(k)}"
        typer.echo(f"{k}: {v:.6f} ({same})")
    if gen is not None:
        saved_gen = meta.generation
        same_settings = task is None and saved_gen and saved_gen.settings.as_json() == gen["settings"]
        _echo_generation(gen, saved_gen.metrics if same_settings else None)


@app.command("norms")
def norms_cmd(
    model: str = typer.Option("minilm"),
    head: str = typer.Option(DEFAULT, help=" | ".join(HEADS)),
    norm_map: Optional[str] = typer.Option(None, help='JSON {"name regex": label}'),
) -> None:
    """List every normalisation layer of a model with its label and layer."""
    from rich.console import Console
    from rich.table import Table

    from lntune.model import load_model

    try:
        from lntune.train.validate import parse_norm_map

        lm = load_model(model, head, norm_map=parse_norm_map(norm_map))
    except LntuneError as e:
        _fail(e)
    table = Table("name", "label", "layer", "class", "gain", "bias")
    rows = [(s.name, s.label, "-" if s.layer is None else str(s.layer), type(s.module).__name__,
             str(s.module.weight.numel()), str(s.module.bias.numel()) if s.has_bias else "-") for s in lm.norms]
    for row in rows:
        table.add_row(*row)
    # Module names are what --norm-map matches: never cut them, however narrow the terminal (or a pipe's 80).
    needed = sum(max(len(r[i]) for r in rows + [("name", "label", "layer", "class", "gain", "bias")]) + 3
                 for i in range(6)) + 1
    console = Console()
    Console(width=max(console.width, needed)).print(table)


@app.command("methods")
def methods_cmd() -> None:
    """List the registered methods and their options; join names with + to compose them."""
    from dataclasses import fields

    from lntune.method import METHODS

    for name, cls in METHODS.items():
        opts = ", ".join(f"{f.name}={f.default!r}" for f in fields(cls.Config)) or "-"
        typer.echo(f"{name}\t{opts}")


@app.command("tasks")
def tasks_cmd() -> None:
    """List the registered tasks, then the spec forms that read your own files."""
    from lntune.data import SPEC_FORMS, TASKS

    for t in TASKS.values():
        typer.echo(f"{t.name}\t{t.head}\t{t.metric}")
    typer.echo("\nyour own files (--task 'SPEC'):")
    for form, head, what in SPEC_FORMS:
        typer.echo(f"{form}\t{head}\t{what}")


@app.command("schema")
def schema_cmd(
    file: str = typer.Argument("train", help="train: a `lntune train --config` file; sweep: a `lntune sweep` file"),
) -> None:
    """Print the JSON Schema of a YAML file lntune reads (every key, its type, range, default and help), for
    editors: save it and point the file at it with `# yaml-language-server: $schema=FILE`."""
    import json

    if file not in ("train", "sweep"):
        raise typer.BadParameter(f"{file!r}: give train or sweep", param_hint="FILE")
    if file == "sweep":
        from lntune.sweep.schema import sweep_file_schema

        schema = sweep_file_schema()
    else:
        from lntune.spec.train import train_file_schema

        schema = train_file_schema()
    typer.echo(json.dumps(schema, indent=1))


from lntune.analyse.cli import app as analyse_app  # noqa: E402

app.add_typer(analyse_app, name="analyse")

from lntune.sweep.cli import sweep_cmd  # noqa: E402

app.command("sweep")(sweep_cmd)

from lntune.report.cli import report_cmd  # noqa: E402

app.command("report")(report_cmd)

from lntune.serve.cli import serve_cmd  # noqa: E402

app.command("serve")(serve_cmd)

from lntune.serve.ask import ask_cmd  # noqa: E402

app.command("ask")(ask_cmd)

from lntune.interop.cli import export_cmd, import_cmd, merge_cmd, push_cmd  # noqa: E402

app.command("export")(export_cmd)
app.command("import")(import_cmd)
app.command("merge")(merge_cmd)
app.command("push")(push_cmd)


def _summaries(typer_app: typer.Typer) -> None:
    """Each command's first docstring paragraph as one line in `lntune --help`: typer's rich mode keeps the
    docstring's line breaks there, which breaks sentences mid-way in the command list."""
    for info in typer_app.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback else None)
        if info.short_help is None and doc:
            info.short_help = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    for group in typer_app.registered_groups:
        _summaries(group.typer_instance)


_summaries(app)


def _one_line(message, category, filename, lineno, line=None) -> str:
    """lntune's own warnings as `warning: ...` lines; others as Python prints them."""
    if issubclass(category, LntuneWarning):
        return f"warning: {message}\n"
    return _python_format(message, category, filename, lineno, line)


_python_format = warnings.formatwarning


def main() -> None:
    warnings.formatwarning = _one_line
    if _PLUGIN_ERROR is not None:  # outside the app, where typer.Exit would print a traceback
        _say(_PLUGIN_ERROR)
        sys.exit(2)
    app(sys.argv[1:])


if __name__ == "__main__":
    main()
