"""`lntune serve`: one base model, the LN skins named on the command line, an HTTP API (uvicorn)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from lntune.errors import LntuneError


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


def parse_skins(specs: list[str]) -> list[tuple[str, Path]]:
    out = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise LntuneError(f"--skin {spec!r}: write NAME=DIR, e.g. --skin sst2=runs/sst2-ln")
        out.append((name, Path(path)))
    return out


def serve_cmd(
    skin: list[str] = typer.Option([], "--skin", help="NAME=DIR of an LN skin to serve, repeatable"),
    model: Optional[str] = typer.Option(None, help="base model (default: the one the first skin was trained on)"),
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000),
    max_tokens: Optional[int] = typer.Option(None, help="tokens per input (default: the model's max positions)"),
    max_inputs: int = typer.Option(256, help="rows per request"),
    batch_size: int = typer.Option(64, help="rows per forward pass"),
    skin_root: Optional[Path] = typer.Option(None, help="POST /skins loads skins from under this folder only"),
    norm_map: Optional[str] = typer.Option(None, help='JSON {"name regex": "mha|ffn|embeddings|final"}'),
    threads: Optional[int] = typer.Option(None, help="torch intra-op threads (default: torch's)"),
) -> None:
    """Serve LN skins of one base model over HTTP; a request may mix tasks row by row."""
    try:
        skins = parse_skins(skin)
        if model is None:
            if not skins:
                raise LntuneError("give --model, or at least one --skin NAME=DIR (its base model is used)")
            from lntune.skin import read_skin

            model = read_skin(skins[0][1])["base"]["model"]
        import torch

        from lntune.serve.bank import SkinBank
        from lntune.serve.server import create_app

        if threads:
            torch.set_num_threads(threads)
        bank = SkinBank(model, max_tokens=max_tokens, batch_size=batch_size,
                        norm_map=json.loads(norm_map) if norm_map else None)
        for name, path in skins:
            bank.add_skin(name, path)
        app = create_app(bank, max_inputs=max_inputs, skin_root=skin_root)
    except LntuneError as e:
        _fail(str(e))
    import uvicorn

    typer.echo(f"serving {len(skins)} skin(s) on {model} at http://{host}:{port} (docs: /docs)", err=True)
    uvicorn.run(app, host=host, port=port)
