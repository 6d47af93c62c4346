"""`lntune analyse`: change, fisher, mask and curve, each writing PNG + CSV/JSON under --out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from lntune.errors import LntuneError
from lntune.spec.masks import MASK_KINDS

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="The papers' analyses: change, Fisher, masks, curves."
)

DATA_DIR = typer.Option(None, "--data-dir", envvar="LNTUNE_DATA_DIR", help="folder with the upstream files")
NORM_MAP = typer.Option(None, "--norm-map", help='JSON {"name regex": "mha|ffn|embeddings|final"}')


def _fail(e: LntuneError) -> None:
    typer.secho(f"error: {e}", fg="red", err=True)
    raise typer.Exit(2)


def _norm_map(text: str | None) -> dict | None:
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError as e:
        raise LntuneError(f'--norm-map {text!r} is not JSON ({e}); write it like \'{{"ln_a$": "mha"}}\'') from e


def _show(rows: list[dict], top: int, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*rows[0], title=title)
    for r in rows[:top]:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()))
    Console(width=max(Console().width, 120)).print(table)  # component names stay whole in logs


@app.command("change")
def change_cmd(
    tuned: list[Path] = typer.Option(
        ..., "--tuned", "--skin", help="skin or save_pretrained folder, one per task; repeatable"
    ),
    task: list[str] = typer.Option([], help="panel label per --tuned (default: the skin's task or the folder name)"),
    model: Optional[str] = typer.Option(
        None, help="base model (default: the one a skin records; needed for full folders)"
    ),
    out: Path = typer.Option(Path("analysis/change"), help="folder for the figures and tables"),
    norm_map: Optional[str] = NORM_MAP,
) -> None:
    """D = mean |after - before| per component and layer: heat maps, ranking, LN gain/bias per layer."""
    from lntune.analyse.change import Bases, measure
    from lntune.analyse.report import report_change

    try:
        if task and len(task) != len(tuned):
            raise LntuneError(
                f"{len(task)} --task for {len(tuned)} --tuned: give one task per fine-tuned model, or none"
            )
        bases = Bases(_norm_map(norm_map))
        changes = [measure(p, model, task[i] if task else None, bases) for i, p in enumerate(tuned)]
        table = report_change(changes, out)
    except LntuneError as e:
        _fail(e)
    _show(table, 12, "components by mean D over layers")
    typer.echo(f"wrote {out}/change_heatmap.png, ln_change.png, change_ranking.csv")


@app.command("fisher")
def fisher_cmd(
    task: list[str] = typer.Option(["sst2"], help="task; repeatable"),
    model: str = typer.Option("minilm", help="alias, local path or Hugging Face id"),
    examples: int = typer.Option(64, help="N training examples per task (seeded subset)"),
    batch_size: int = typer.Option(8, help="examples per vectorised gradient call"),
    ln_only: bool = typer.Option(False, help="only LN gains/biases (enough for masks, much faster)"),
    max_length: int = typer.Option(128, help="tokens per example"),
    seed: int = typer.Option(42, help="example subset and head initialisation"),
    data_dir: Optional[Path] = DATA_DIR,
    out: Path = typer.Option(Path("analysis/fisher"), help="folder for fisher-TASK.safetensors, figures and tables"),
    norm_map: Optional[str] = NORM_MAP,
    progress: bool = typer.Option(True, help="progress bar"),
) -> None:
    """Empirical Fisher per example: component ranking (paper 002 table 1), LN heat maps, files for masks."""
    from lntune.analyse.fisher import FisherConfig, fisher_path, save_fisher, task_fisher
    from lntune.analyse.report import report_fisher

    config = FisherConfig(examples, batch_size, ln_only, max_length, seed, progress)
    try:
        results = []
        for t in task:
            results.append(task_fisher(t, model, config, data_dir, _norm_map(norm_map)))
            save_fisher(fisher_path(out, t), results[-1])
        table = report_fisher(results, out)
    except LntuneError as e:
        _fail(e)
    _show(table, 12, "block components by the sum over tasks of normalised Fisher")
    typer.echo(
        f"wrote {out}/fisher_ranking_blocks.csv, fisher_ranking.csv (all components), fisher_ln.png, "
        "fisher-TASK.safetensors"
    )


@app.command("mask")
def mask_cmd(
    fisher: Path = typer.Option(..., help="folder with fisher-TASK.safetensors (lntune analyse fisher --out)"),
    kind: str = typer.Option("individual", help=" | ".join(MASK_KINDS)),
    fraction: list[float] = typer.Option([0.2], help="share of LN elements that train; repeatable"),
    task: list[str] = typer.Option([], help="target task for individual/cv (default: every task in --fisher)"),
    seed: int = typer.Option(42, help="random masks"),
    out: Optional[Path] = typer.Option(None, help="folder for the mask files (default: --fisher)"),
) -> None:
    """Top-f LN masks from Fisher files, for lntune train --ln-mask FILE."""
    from lntune.analyse.fisher import load_fisher_dir
    from lntune.analyse.mask import MaskSpec, build_mask, save_mask

    try:
        fishers = load_fisher_dir(fisher)
        targets = (task or sorted(fishers)) if kind in ("individual", "cv") else [None]
        for f in fraction:
            for t in targets:
                spec = MaskSpec(kind, f, t, seed)
                masks = build_mask(spec, fishers)
                path = save_mask((out or fisher) / spec.file_name, masks, spec, sorted(fishers))
                n, k = sum(m.numel() for m in masks.values()), sum(int(m.sum()) for m in masks.values())
                typer.echo(f"{path}: {k:,} of {n:,} LN elements ({kind}{' for ' + t if t else ''}, f={f:g})")
    except LntuneError as e:
        _fail(e)


@app.command("curve")
def curve_cmd(
    task: list[str] = typer.Option(["sst2"], help="task; repeatable (global and cv masks use every task's Fisher)"),
    model: str = typer.Option("minilm"),
    fisher: Optional[Path] = typer.Option(
        None, help="folder with fisher-TASK.safetensors (default: compute into OUT/fisher)"
    ),
    fraction: list[float] = typer.Option([], help="fractions (default 0.1, 0.2, ..., 1.0); repeatable"),
    kind: list[str] = typer.Option([], help=f"mask kinds (default {', '.join(MASK_KINDS)}); repeatable"),
    examples: int = typer.Option(64, help="Fisher examples per task, when computed here"),
    lr: float = typer.Option(1e-2),
    epochs: int = typer.Option(2),
    max_steps: Optional[int] = typer.Option(None, help="optimizer steps per run; overrides --epochs"),
    batch_size: int = typer.Option(32),
    train_limit: int = typer.Option(3000, help="seeded training subset; 0 for the whole split"),
    eval_limit: int = typer.Option(0, help="seeded dev subset; 0 for the whole split"),
    seed: int = typer.Option(42, help="training, Fisher examples and random masks"),
    data_dir: Optional[Path] = DATA_DIR,
    out: Path = typer.Option(Path("analysis/curve"), help="folder for masks, runs and curve.png"),
    norm_map: Optional[str] = NORM_MAP,
    progress: bool = typer.Option(True),
) -> None:
    """LN-tune with masks of each fraction and kind; plot the dev metric against the fraction."""
    from lntune.analyse.curve import FRACTIONS, CurveConfig, run_curve
    from lntune.analyse.fisher import FisherConfig, fisher_path, load_fisher_dir, save_fisher, task_fisher
    from lntune.analyse.mask import KINDS
    from lntune.analyse.report import report_curve
    from lntune.train import TrainConfig

    try:
        train = TrainConfig(lr=lr, epochs=epochs, max_steps=max_steps, batch_size=batch_size, seed=seed,
                            progress=progress)
        config = CurveConfig(
            tuple(fraction) or FRACTIONS, tuple(kind) or KINDS, seed, train, train_limit or None, eval_limit or None
        )
        nm = _norm_map(norm_map)
        folder = fisher or out / "fisher"
        for t in task:
            if not fisher_path(folder, t).exists():
                fc = FisherConfig(examples=examples, ln_only=True, seed=seed, progress=progress)
                save_fisher(fisher_path(folder, t), task_fisher(t, model, fc, data_dir, nm))
        rows = run_curve(model, task, load_fisher_dir(folder), out, config, data_dir, nm)
        report_curve(rows, out)
    except LntuneError as e:
        _fail(e)
    for r in rows:
        typer.echo(
            f"{r['task']}\t{r['kind']}\tf={r['fraction']:g}\t{r['metric']} {r['value']:.4f}\t"
            f"({r['selected']:,} elements)"
        )
    typer.echo(f"wrote {out}/curve.png, curve.csv")
