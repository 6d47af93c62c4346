"""The HTTP face of a SkinBank (FastAPI).

    POST   /predict       {"inputs": [{"task": "sst2", "text": "...", "text_pair": null}, ...]}
    GET    /skins         the loaded skins: names and metadata, no server paths
    POST   /skins         {"name": "sst2", "path": "sst2-ln"}        (skin management on only)
    DELETE /skins/{name}                                               (skin management on only)
    GET    /health
    GET /v1/models, POST /v1/completions, POST /v1/chat/completions    generating skins (lntune.serve.openai)

Bad input is answered with a 4xx whose "detail" says what to change; never with a 500.
The handlers are plain `def`s: FastAPI runs them in its thread pool, so a forward pass does not
block the event loop. Concurrent /predict requests share forward passes (batcher.RowBatcher): a small request
beside a large one waits one short pass, not the large one's whole run.

Who may ask what (create_app's keywords, lntune serve's options):
  api_key                every request needs `Authorization: Bearer KEY` (401 otherwise)
  allow_skin_management  POST/DELETE /skins answer 403 unless on; skins load from under skin_root only
  allowed_hosts          the Host header must name one of them (400 otherwise): a web page the user
                         visits cannot reach a local server through a DNS name rebound to 127.0.0.1
  max_body_bytes         a longer request body is refused (413) before it is read
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lntune.errors import LntuneError
from lntune.serve.bank import BadInput, InputTooLong, SkinBank, SkinExists, UnknownSkin
from lntune.serve.batcher import RowBatcher
from lntune.serve.body import CheckedBody
from lntune.skin import SKIN_JSON, TENSORS
from lntune.serve.openai import router

EXAMPLE = json.dumps({"inputs": [{"task": "<skin name>", "text": "a sentence", "text_pair": None}]})
V1_EXAMPLE = json.dumps({"model": "<skin name>", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 32})
STATUS = {UnknownSkin: 404, SkinExists: 409, InputTooLong: 413, BadInput: 422}
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
MAX_BODY_BYTES = 1_000_000  # 256 inputs of 512 tokens are about 0.7 MB of JSON
ENV_KEY = "LNTUNE_API_KEY"


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, description="name of a loaded skin (GET /skins)")
    text: str = Field(description="the text; for a token-classification skin, words split on whitespace; for a "
                                  "multiple-choice skin, the question (with any context before it)")
    text_pair: str | None = None  # second sentence of pair tasks (MRPC, RTE, STS-B, ...)
    choices: list[str] | None = Field(None, description="the answers a multiple-choice skin picks from")


class PredictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: list[Input] = Field(min_length=1)


class AddSkinBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    path: str = Field(min_length=1, description="skin directory, relative to the server's --skin-root")


class SafeJSON(JSONResponse):
    """ASCII JSON: an echoed lone surrogate is written as the escape \\ud800 instead of failing to encode."""

    def render(self, content: object) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


# --- middleware (plain ASGI: they answer before FastAPI reads or parses anything) ---------------------


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class BearerKey:
    """Every HTTP request must carry `Authorization: Bearer KEY`."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app, self.digest = app, _digest(key)

    def _ok(self, header: str) -> bool:
        scheme, _, given = header.partition(" ")
        # digests of equal length: the comparison's time tells nothing of the key, not even its length
        return hmac.compare_digest(_digest(given.strip()), self.digest) and scheme.lower() == "bearer"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._ok(Headers(scope=scope).get("authorization", "")):
            return await self.app(scope, receive, send)
        detail = ("missing or wrong API key: send the header 'Authorization: Bearer KEY' with the key given to "
                  f"lntune serve (--api-key or ${ENV_KEY})")
        await SafeJSON({"detail": detail}, 401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)


class BodyLimit:
    """Refuses a body over `limit` bytes: by its Content-Length before reading it, else as soon as the bytes
    read pass the limit. The app then gets the body whole, so at most `limit` bytes wait in memory."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: str) -> None:
        detail = (f"request body of {size} bytes; this server takes at most {self.limit} bytes per request "
                  "(lntune serve --max-body-bytes): send fewer or shorter inputs per request")
        await SafeJSON({"detail": detail}, 413, headers={"Connection": "close"})(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.limit:  # "²".isdigit() too
            return await self._refuse(scope, receive, send, declared)
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await self._refuse(scope, receive, send, f"more than {self.limit}")
        await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def once() -> Message:
        return pending.pop() if pending else await receive()  # then: the disconnect, when it comes

    return once


def host_patterns(hosts: list[str] | tuple[str, ...]) -> list[str]:
    """Host-header patterns; an IPv6 address also in the bracketed form a Host header carries ([::1])."""
    out = []
    for host in hosts:
        out.append(host)
        if ":" in host and not host.startswith("["):
            out.append(f"[{host}]")
    return out


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_hosts(bind: str) -> list[str]:
    """The loopback names, plus the bind address unless it is a wildcard (a Host header never says 0.0.0.0)."""
    wildcard = bind in ("0.0.0.0", "::", "")
    return list(LOOPBACK_HOSTS) + ([] if wildcard or bind in LOOPBACK_HOSTS else [bind])


# --- what clients see ----------------------------------------------------------------------------------


def _status(e: LntuneError) -> int:
    return next((code for cls, code in STATUS.items() if isinstance(e, cls)), 422)


def _problem(e: dict) -> str:
    loc = e.get("loc", ())
    if e.get("type") == "json_invalid":
        return f"not valid JSON ({e.get('ctx', {}).get('error', 'decode error')} at character {loc[-1]})"
    return f"{'.'.join(str(p) for p in loc if p != 'body') or 'body'}: {e.get('msg')}"


def _public(info: dict) -> dict:
    """A skin as any client may see it: no server path; a local task's spec names its files, so only its kind."""
    task = info.get("task")
    return {**{k: v for k, v in info.items() if k != "path"},
            "task": task.partition(":")[0] if isinstance(task, str) else task}


def _public_model(model_id: str) -> str:
    # a local folder shows by its name only; aliases and hub ids as they are
    return Path(model_id).name if os.path.isabs(model_id) or os.path.exists(model_id) else model_id


def _hide_root(message: str, root: Path) -> str:
    # errors name the resolved path: show it from the root on, without where the root lies
    if root == Path(root.anchor):
        return message
    # paths under the root, then the root itself (POST /skins {"path": "."} names it whole)
    return re.sub(re.escape(str(root)) + r"(?![\w.-])", "<skin-root>",
                  message.replace(f"{root}{os.sep}", f"<skin-root>{os.sep}"))


def _confined(root: Path, given: str) -> Path:
    """`given` (relative to root, or absolute) with symlinks resolved; refused unless it and the files a skin is
    read from lie under root."""
    try:
        path = (root / given).resolve()
        files = [(path / name).resolve() for name in (SKIN_JSON, TENSORS)]
    except (OSError, RuntimeError, ValueError) as e:  # a NUL or lone surrogate, a symlink loop, a name too long
        raise HTTPException(422, f"{given!r:.200}: not a usable path ({type(e).__name__})") from None
    if not all(p.is_relative_to(root) for p in (path, *files)):
        raise HTTPException(403, f"{given!r:.200}: this server loads skins from under its --skin-root only "
                                 "(symlinks resolved); give a path relative to it")
    return path


def check_options(api_key: str | None, allow_skin_management: bool, skin_root: str | Path | None,
                   max_body_bytes: int) -> Path | None:
    if api_key is not None and not api_key.strip():
        raise LntuneError(f"--api-key / ${ENV_KEY} is empty: give a key, or unset it to serve without one")
    if allow_skin_management and skin_root is None:
        raise LntuneError("--allow-skin-management needs --skin-root DIR: POST /skins loads skins from under it only")
    if skin_root is not None and not Path(skin_root).is_dir():
        raise LntuneError(f"--skin-root {skin_root}: not a folder")
    if max_body_bytes < 1:
        raise LntuneError(f"--max-body-bytes {max_body_bytes}: give a positive number of bytes")
    return Path(skin_root).resolve() if skin_root is not None else None


def create_app(bank: SkinBank, max_inputs: int = 256, skin_root: str | Path | None = None, *,
               api_key: str | None = None, allow_skin_management: bool = False,
               allowed_hosts: list[str] | tuple[str, ...] = LOOPBACK_HOSTS,
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """`max_inputs`: rows per request (more: 413). `skin_root`: POST /skins reads skins under it only (needed by
    `allow_skin_management`). The other keywords: see the module's docstring."""
    root = check_options(api_key, allow_skin_management, skin_root, max_body_bytes)
    if not isinstance(max_inputs, int) or isinstance(max_inputs, bool) or max_inputs < 1:
        raise LntuneError(f"--max-inputs {max_inputs!r}: give a whole number of rows >= 1")
    app = FastAPI(title="lntune serve", description="LN skins of one base model, mixed per row",
                  default_response_class=SafeJSON)
    app.router.route_class = CheckedBody  # before any route is added
    # added innermost first: a request meets the Host check, then the key, then the body limit
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    if api_key is not None:
        app.add_middleware(BearerKey, key=api_key)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=host_patterns(allowed_hosts))
    _add_handlers(app)
    rows_batcher = None if bank.generates else RowBatcher(bank)  # concurrent /predict requests share passes
    app.state.rows_batcher = rows_batcher

    def manage() -> None:
        if not allow_skin_management:
            raise HTTPException(403, "skin management is off: start lntune serve with --allow-skin-management "
                                     "--skin-root DIR (and --api-key) to add or remove skins over HTTP")

    @app.post("/predict")
    def predict(body: PredictBody) -> dict:
        if len(body.inputs) > max_inputs:
            raise HTTPException(413, f"{len(body.inputs)} inputs; this server takes at most {max_inputs} per request: "
                                     "split them over several requests")
        rows = [(i.task, {"question": i.text, "choices": i.choices} if i.choices is not None
                 else i.text if i.text_pair is None else (i.text, i.text_pair)) for i in body.inputs]
        return {"outputs": (rows_batcher or bank).predict(rows)}

    @app.get("/skins")
    def skins() -> dict:
        return {"skins": [_public(s) for s in bank.skins()]}

    @app.post("/skins", status_code=201, dependencies=[Depends(manage)])
    def add_skin(body: AddSkinBody) -> dict:
        try:
            return _public(bank.add_skin(body.name, _confined(root, body.path)))
        except LntuneError as e:
            raise type(e)(_hide_root(str(e), root)) from None

    @app.delete("/skins/{name}", dependencies=[Depends(manage)])
    def remove_skin(name: str) -> dict:
        bank.remove_skin(name)
        return {"removed": name}

    app.include_router(router(bank, max_inputs))

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": _public_model(bank.lm.model_id), "skins": [s["name"] for s in bank.skins()],
                "max_tokens": bank.max_tokens, "max_chars": bank.max_chars, "max_inputs": max_inputs,
                "max_body_bytes": max_body_bytes}

    return app


def _answer(request: Request, status: int, detail: object, headers=None, **more) -> JSONResponse:
    body = {"detail": detail, **more}
    if request.url.path.startswith("/v1/"):  # OpenAI clients read the message from "error"
        body["error"] = {"message": str(detail), "type": "invalid_request_error", "code": status}
    return SafeJSON(body, status_code=status, headers=headers)


def _add_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    def malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(e) for e in exc.errors()]
        example = (V1_EXAMPLE + " for POST /v1/chat/completions" if request.url.path.startswith("/v1/") else
                   f"{EXAMPLE} for POST /predict, or {{\"name\": ..., \"path\": ...}} for POST /skins")
        detail = f"malformed request body ({'; '.join(problems[:5])}). Send JSON like {example}"
        return _answer(request, 422, detail, problems=problems)

    @app.exception_handler(LntuneError)
    def refused(request: Request, exc: LntuneError) -> JSONResponse:
        return _answer(request, _status(exc), str(exc))

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _answer(request, exc.status_code, exc.detail, exc.headers)
