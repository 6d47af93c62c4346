"""`lntune serve`: one base model, the LN skins named on the command line, an HTTP API (uvicorn).
Classification/regression skins answer POST /predict; causal-LM skins generate behind /v1 (OpenAI-compatible)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import typer

from lntune.errors import LntuneError
from lntune.heads import DEFAULT, HEADS
from lntune.serve import BATCH_SIZE, BATCH_TOKENS


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


def parse_skins(specs: list[str]) -> list[tuple[str, Path]]:
    """NAME=DIR pairs; DIR may be a Hub repo id (user/name@revision), fetched here."""
    from lntune.interop.hub import resolve_skin

    out = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise LntuneError(f"--skin {spec!r}: write NAME=DIR, e.g. --skin sst2=runs/sst2-ln")
        out.append((name, resolve_skin(path)))
    return out


def _bank_heads() -> str:
    """The kinds a bank serves, from the head registry: "classification (also regression), causal-lm, ..."."""
    served: dict[str, list[str]] = {}
    for name, head in HEADS.items():
        served.setdefault(head.bank_head, []).append(name)
    return ", ".join(bank + "".join(f" (also {o})" for o in names if o != bank) for bank, names in served.items())


def serve_cmd(
    skin: list[str] = typer.Option([], "--skin", help="NAME=DIR of an LN skin to serve (DIR: a folder or a Hub "
                                                      "repo id user/name[@revision]), repeatable"),
    model: Optional[str] = typer.Option(None, help="base model (default: the one the first skin was trained on)"),
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port (0: any free one)"),
    max_tokens: Optional[int] = typer.Option(None, min=1, help="tokens per input (default: the model's max positions)"),
    max_inputs: int = typer.Option(256, min=1, help="rows per request"),
    batch_size: int = typer.Option(BATCH_SIZE, min=1, help="rows per forward pass"),
    batch_tokens: int = typer.Option(BATCH_TOKENS, min=1, help="padded tokens per /predict pass (at least one row): how "
                                     "long a small request can wait behind a large one"),
    skin_root: Optional[Path] = typer.Option(None, help="POST /skins loads skins from under this folder only "
                                             "(paths relative to it, symlinks resolved)"),
    api_key: Optional[str] = typer.Option(None, envvar="LNTUNE_API_KEY", show_default=False,
                                          help="every request must send 'Authorization: Bearer KEY'; prefer the "
                                               "environment variable LNTUNE_API_KEY (a command line is visible "
                                               "to other users)"),
    allow_skin_management: bool = typer.Option(False, "--allow-skin-management",
                                               help="let clients add and remove skins (POST/DELETE /skins); "
                                                    "needs --skin-root"),
    allowed_hosts: Optional[str] = typer.Option(None, help="comma-separated names clients may use in the Host "
                                                "header (default: localhost, 127.0.0.1, ::1 and --host); guards "
                                                "against DNS rebinding"),
    max_body_bytes: int = typer.Option(1_000_000, help="largest request body; longer ones get 413 unread"),
    head: Optional[str] = typer.Option(None, help=f"the skins' kind: {_bank_heads()}; default: the first skin's"),
    norm_map: Optional[str] = typer.Option(None, help='JSON {"name regex": "mha|ffn|embeddings|final"}'),
    threads: Optional[int] = typer.Option(None, min=1, help="torch intra-op threads (default: torch's)"),
) -> None:
    """Serve LN skins of one base model over HTTP; a request may mix tasks row by row."""
    try:
        skins = parse_skins(skin)
        from lntune.serve.server import ENV_KEY, check_options, create_app

        hosts = _hosts(allowed_hosts, host)  # options first: loading the model and skins takes a while
        if api_key is None and ENV_KEY in os.environ:
            # click drops an empty environment variable, so a set-but-empty key would otherwise serve without one
            api_key = os.environ[ENV_KEY]
        check_options(api_key, allow_skin_management, skin_root, max_body_bytes)
        model, bank = _bank(skins, model, head, threads, norm_map, max_tokens=max_tokens, batch_size=batch_size,
                     batch_tokens=batch_tokens)
        app = create_app(bank, max_inputs=max_inputs, skin_root=skin_root, api_key=api_key,
                         allow_skin_management=allow_skin_management, allowed_hosts=hosts,
                         max_body_bytes=max_body_bytes)
    except LntuneError as e:
        _fail(str(e))
    import uvicorn

    _warn_if_open(host, api_key, hosts, allowed_hosts is not None)
    where = f"http://{host}:{port}"
    how = f"OpenAI base_url {where}/v1" if bank.generates else f"POST {where}/predict"
    typer.echo(f"serving {len(skins)} skin(s) on {model} at {where} ({how}; docs: /docs)", err=True)
    uvicorn.run(app, host=host, port=port)


def _bank(skins: list[tuple[str, str]], model: str | None, head: str | None, threads: int | None,
          norm_map: str | None, **limits: int | None) -> tuple[str, Any]:
    """(the base model's name: the first skin's unless --model names one, a SkinBank of it with every --skin)."""
    if model is None and not skins:
        raise LntuneError("give --model, or at least one --skin NAME=DIR (its base model is used)")
    if skins:
        from lntune.skin import read_skin

        first = read_skin(skins[0][1]).base
        model, head = model or first.model, head or first.head
    import torch

    from lntune.serve.bank import SkinBank

    if threads:
        torch.set_num_threads(threads)
    head = HEADS[head].bank_head if head in HEADS else head or DEFAULT  # an unknown one: the bank says so
    bank = SkinBank(model, norm_map=json.loads(norm_map) if norm_map else None, head=head, **limits)
    for name, path in skins:
        bank.add_skin(name, path)
    return model, bank


def _hosts(allowed_hosts: str | None, bind: str) -> list[str]:
    from lntune.serve.server import default_hosts

    if allowed_hosts is None:
        return default_hosts(bind)
    hosts = [h.strip() for h in allowed_hosts.split(",") if h.strip()]
    if not hosts:
        raise LntuneError("--allowed-hosts is empty: name at least one host (or '*' to accept any Host header)")
    return hosts


def _warn_if_open(host: str, api_key: str | None, hosts: list[str], hosts_given: bool) -> None:
    from lntune.serve.server import is_loopback

    if is_loopback(host):
        return
    if api_key is None:
        typer.secho(f"warning: listening on {host} without an API key: anyone who can reach this port can use "
                    "the API; set LNTUNE_API_KEY (or --api-key)", fg="yellow", err=True)
    if not hosts_given:  # other machines call it by a name the default list lacks: say so before the 400s
        typer.secho(f"note: requests must name this server as one of {', '.join(hosts)} in their Host header; "
                    "add the names clients use with --allowed-hosts", fg="yellow", err=True)
