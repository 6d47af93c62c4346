"""The HTTP face of a SkinBank (FastAPI).

    POST   /predict       {"inputs": [{"task": "sst2", "text": "...", "text_pair": null}, ...]}
    GET    /skins         the loaded skins
    POST   /skins         {"name": "sst2", "path": "runs/sst2-ln"}
    DELETE /skins/{name}
    GET    /health

Bad input is answered with a 4xx whose "detail" says what to change; never with a 500.
The handlers are plain `def`s: FastAPI runs them in its thread pool, so a forward pass does not
block the event loop, and the bank's lock keeps concurrent batches apart.
"""
from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lntune.errors import LntuneError
from lntune.serve.bank import BadInput, InputTooLong, SkinBank, SkinExists, UnknownSkin

EXAMPLE = json.dumps({"inputs": [{"task": "<skin name>", "text": "a sentence", "text_pair": None}]})
STATUS = {UnknownSkin: 404, SkinExists: 409, InputTooLong: 413, BadInput: 422}


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, description="name of a loaded skin (GET /skins)")
    text: str
    text_pair: str | None = None  # second sentence of pair tasks (MRPC, RTE, STS-B, ...)


class PredictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: list[Input] = Field(min_length=1)


class AddSkinBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    path: str = Field(min_length=1, description="skin directory on the server's disk")


def _status(e: LntuneError) -> int:
    return next((code for cls, code in STATUS.items() if isinstance(e, cls)), 422)


def _problem(e: dict) -> str:
    loc = e.get("loc", ())
    if e.get("type") == "json_invalid":
        return f"not valid JSON ({e.get('ctx', {}).get('error', 'decode error')} at character {loc[-1]})"
    return f"{'.'.join(str(p) for p in loc if p != 'body') or 'body'}: {e.get('msg')}"


def create_app(bank: SkinBank, max_inputs: int = 256, skin_root: str | Path | None = None) -> FastAPI:
    """`max_inputs`: rows per request (more: 413). `skin_root`: POST /skins reads skins under it only."""
    app = FastAPI(title="lntune serve", description="LN skins of one base model, mixed per row")
    root = Path(skin_root).resolve() if skin_root else None

    @app.exception_handler(RequestValidationError)
    def malformed(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(e) for e in exc.errors()]
        detail = (f"malformed request body ({'; '.join(problems[:5])}). Send JSON like "
                  f"{EXAMPLE} for POST /predict, or {{\"name\": ..., \"path\": ...}} for POST /skins")
        return JSONResponse({"detail": detail, "problems": problems}, status_code=422)

    @app.exception_handler(LntuneError)
    def refused(_: Request, exc: LntuneError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=_status(exc))

    @app.post("/predict")
    def predict(body: PredictBody) -> dict:
        if len(body.inputs) > max_inputs:
            raise HTTPException(413, f"{len(body.inputs)} inputs; this server takes at most {max_inputs} per request: "
                                     "split them over several requests")
        rows = [(i.task, i.text if i.text_pair is None else (i.text, i.text_pair)) for i in body.inputs]
        return {"outputs": bank.predict(rows)}

    @app.get("/skins")
    def skins() -> dict:
        return {"skins": bank.skins()}

    @app.post("/skins", status_code=201)
    def add_skin(body: AddSkinBody) -> dict:
        path = Path(body.path)
        if root is not None and not path.resolve().is_relative_to(root):
            raise HTTPException(403, f"{body.path}: this server loads skins from under {root} only")
        return bank.add_skin(body.name, path)

    @app.delete("/skins/{name}")
    def remove_skin(name: str) -> dict:
        bank.remove_skin(name)
        return {"removed": name}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": bank.lm.model_id, "skins": [s["name"] for s in bank.skins()],
                "max_tokens": bank.max_tokens, "max_inputs": max_inputs}

    return app
