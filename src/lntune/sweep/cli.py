"""`lntune sweep CONFIG.yaml`: tasks x methods x seeds x learning rates, resumable, local or on Ray."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lntune.errors import LntuneError


def sweep_cmd(
    config: Path = typer.Argument(..., help="sweep YAML, e.g. benchmarks/paper_quick.yaml"),
    results: Optional[Path] = typer.Option(
        None, help="results folder (default: results: in the YAML, else results/NAME)"),
    workers: Optional[int] = typer.Option(None, help="local worker processes (default: workers: in the YAML)"),
    ray: Optional[str] = typer.Option(
        None, "--ray", metavar="ADDRESS", help="run each run as a Ray task: auto, local, ray://HOST:10001, ..."),
    data_dir: Optional[Path] = typer.Option(None, envvar="LNTUNE_DATA_DIR", help="folder with the upstream files"),
    dry_run: bool = typer.Option(False, "--dry-run", help="count the runs and those already done; run nothing"),
    progress: bool = typer.Option(True, help="progress line on stderr"),
    redo_timing: bool = typer.Option(
        False, "--redo-timing", help="measure the timing runs again (old records move to retired.jsonl); "
        "use it when the machine was busy while they ran"),
) -> None:
    """Run a sweep; finished runs are appended to RESULTS/records.jsonl, and re-running the same command
    after an interruption skips them and re-does the rest. Exits 1 if any run failed (see failures.jsonl)."""
    from lntune.sweep.config import load_config
    from lntune.sweep.driver import run_sweep

    if not (ray or dry_run):
        _warm_up(config)
    try:
        cfg = load_config(config)
        if workers is not None:
            if workers < 1:
                raise LntuneError(f"--workers {workers}: use 1 or more")
            cfg.workers = workers
        if dry_run:
            _dry_run(cfg, results, data_dir)
            return
        backend = None
        if ray:
            from lntune.sweep.ray_backend import RayBackend

            backend = RayBackend(ray, **cfg.resources)
        report = run_sweep(cfg, results, backend, data_dir, progress, redo_timing)
    except LntuneError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.secho("interrupted: run the same command again to resume", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"sweep {cfg.name}: {report.total} runs; {report.skipped} were already in {report.results}, "
               f"{report.done} finished now, {len(report.failed)} failed")
    if report.failed:
        for f in report.failed:
            typer.secho(f"failed: {f.get('run', f.get('task'))}: {f['error']}", fg="red", err=True)
        typer.secho(f"details in {report.results / 'failures.jsonl'}; run the same command again to retry them",
                    err=True)
        raise typer.Exit(1)


def _warm_up(config: Path) -> None:
    """Start local workers' imports before the config is checked (which imports torch itself)."""
    import yaml

    from lntune.sweep.local import warm_up

    try:
        raw = yaml.safe_load(config.read_text(encoding="utf-8"))
        models = raw["models"] if "models" in raw else [raw["model"]]
        warm_up([m["name"] if isinstance(m, dict) else str(m) for m in models])
    except Exception:  # a broken config: load_config says what is wrong
        pass


def _dry_run(cfg, results, data_dir) -> None:
    from lntune.sweep.driver import results_dir
    from lntune.sweep.grid import plan, summary
    from lntune.sweep.store import read_records

    folder = results_dir(cfg, results)
    done = {r.key: r for r in read_records(folder)} if folder.exists() else {}
    p = plan(cfg, str(data_dir) if data_dir else None, done)
    runs, have = p.runs, set(done)
    rows: dict[tuple, list] = {}
    for s in summary(runs):
        k = (s["model"], s["group"], s["row"])
        rows.setdefault(k, [0, 0])
        rows[k][0] += 1
        rows[k][1] += s["runs"]
    typer.echo(f"{'model':24} {'group':12} {'row':28} {'tasks':>5} {'runs':>6}")
    for (model, group, row), (tasks, n) in rows.items():
        typer.echo(f"{model[-24:]:24} {group:12} {row[:28]:28} {tasks:>5} {n:>6}")
    timing = sum(r.kind == "efficiency" for r in runs)
    n_done = sum(r.key in have for r in runs)
    typer.echo(f"total: {len(runs)} runs ({timing} timing), {n_done} already in {folder}")
    if p.waiting:
        typer.echo(f"and {p.waiting} runs of later seeds, named once the lr_seed's runs have chosen their lr")


if __name__ == "__main__":
    typer.run(sweep_cmd)
