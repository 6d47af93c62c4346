"""`lntune export | import | merge | push`: skins in and out of the PEFT / transformers / Hub ecosystem."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lntune.errors import LntuneError


def _fail(e: LntuneError) -> None:
    typer.secho(f"error: {e}", fg="red", err=True)
    raise typer.Exit(2)


def export_cmd(
    skin: str = typer.Argument(..., help="skin folder or Hub repo id"),
    out: Path = typer.Argument(..., help="adapter folder to write"),
    format: str = typer.Option("peft", "--format", help="peft: an LN_TUNING (ln skins) or LoRA (lora skins) adapter"),
    model: Optional[str] = typer.Option(None, help="base model (default: the one the skin names)"),
    overwrite: bool = typer.Option(False, help="replace OUT if it exists"),
) -> None:
    """Write a skin as a PEFT adapter that PeftModel.from_pretrained and transformers' load_adapter load."""
    from lntune.interop.hub import resolve_skin
    from lntune.interop.peft import export_peft

    try:
        if format != "peft":
            raise LntuneError(f"--format {format!r}: the only format is peft")
        path = export_peft(resolve_skin(skin), out, model, overwrite)
    except LntuneError as e:
        _fail(e)
    typer.echo(f"PEFT adapter: {path}")


def import_cmd(
    adapter: Path = typer.Argument(..., help="PEFT adapter folder (LN_TUNING or LoRA)"),
    out: Path = typer.Argument(..., help="skin folder to write"),
    model: Optional[str] = typer.Option(None, help="base model (default: the adapter's base_model_name_or_path)"),
    overwrite: bool = typer.Option(False, help="replace a skin at OUT"),
) -> None:
    """Turn a PEFT LN_TUNING or LoRA adapter into a skin (which lntune serve can serve in mixed batches)."""
    from lntune.interop.peft import import_peft

    try:
        path = import_peft(adapter, out, model, overwrite)
    except LntuneError as e:
        _fail(e)
    typer.echo(f"skin: {path}")


def merge_cmd(
    skin: str = typer.Argument(..., help="skin folder or Hub repo id"),
    out: Path = typer.Argument(..., help="model folder to write (save_pretrained)"),
    model: Optional[str] = typer.Option(None, help="base model (default: the one the skin names)"),
    overwrite: bool = typer.Option(False, help="replace OUT if it exists"),
) -> None:
    """Fold a skin (ln, bitfit, full, head, random, lora) into the base weights: a folder plain transformers loads."""
    from lntune.interop.hub import resolve_skin
    from lntune.interop.merge import merge_skin

    try:
        path = merge_skin(resolve_skin(skin), out, model, overwrite)
    except LntuneError as e:
        _fail(e)
    typer.echo(f"merged model: {path}")


def push_cmd(
    skin: Path = typer.Argument(..., help="skin folder"),
    repo_id: str = typer.Argument(..., help="Hub repo, user/name"),
    revision: Optional[str] = typer.Option(None, help="branch to upload to (made if missing)"),
    private: bool = typer.Option(False, help="create the repo private"),
    token: Optional[str] = typer.Option(None, envvar="HF_TOKEN", show_default=False, help="Hub token (or HF_TOKEN)"),
    dry_run: Optional[Path] = typer.Option(None, help="write the files that would be uploaded to this (new or "
                                           "empty) folder instead: check them offline"),
) -> None:
    """Upload a skin (tensors, skin.json, model card, metrics) to the Hugging Face Hub."""
    from lntune.interop.hub import push_skin

    try:
        url = push_skin(skin, repo_id, revision, private, token, dry_run=dry_run)
        if dry_run is not None:
            typer.echo(f"would upload to {repo_id}{'@' + revision if revision else ''}: "
                       f"{', '.join(sorted(p.name for p in Path(url).iterdir()))} (written to {url})")
            return
    except LntuneError as e:
        _fail(e)
    except Exception as e:  # noqa: BLE001 - network and auth failures from huggingface_hub: one line
        _fail(LntuneError(f"push to {repo_id} failed: {type(e).__name__}: {(str(e).splitlines() or [''])[0]}"))
    typer.echo(f"pushed: {url}")
