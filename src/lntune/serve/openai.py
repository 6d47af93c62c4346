"""OpenAI-compatible endpoints over a generating SkinBank: `model` names a skin (or "base").

    GET  /v1/models              the loaded skins and the base
    POST /v1/completions         {"model": "my-skin", "prompt": "..." | ["...", ...], "max_tokens": 16, "stream": false}
    POST /v1/chat/completions    {"model": "my-skin", "messages": [{"role": "user", "content": "..."}], ...}

The official `openai` client works against them (base_url="http://HOST:PORT/v1"). Sampling: temperature
(default 1, as OpenAI's; 0 is greedy), top_p, seed, max_tokens, stop (up to 4 strings; the answer ends
before the first that appears). With `stream: true` the answer comes as server-sent events, a piece of text
per token (held back while a stop string may be starting), ending with `data: [DONE]` (after a usage chunk
when stream_options.include_usage asks for it); n choices per prompt (index prompt * n + choice). Fields
this server cannot honour (logprobs, tools, penalties, ...) are refused with a 422 that names them, never
silently ignored.
The server's key, host, body-size and input-count rules apply here as to /predict.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Literal

import anyio
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from lntune.errors import LntuneError
from lntune.serve.bank import BASE, SkinBank
from lntune.serve.batcher import Batcher
from lntune.serve.body import CheckedBody
from lntune.serve.generate import LIMITS, MAX_STOPS, Generated, Sampling, stops_ok

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
# Fields clients send with their neutral values; any other value is refused, not ignored.
NEUTRAL = {"best_of": 1, "echo": False, "logprobs": None, "top_logprobs": None,
           "presence_penalty": 0, "frequency_penalty": 0, "logit_bias": None, "suffix": None, "tools": None,
           "tool_choice": None, "functions": None, "function_call": None, "response_format": None,
           "parallel_tool_calls": None}
INFORMATIONAL = {"user", "metadata", "store", "service_tier"}  # accepted, change nothing here


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False  # a last chunk with no choices and the request's token usage


class _Sampled(BaseModel):
    model_config = ConfigDict(extra="allow")  # checked against NEUTRAL in _refuse_unsupported
    model: str = Field(min_length=1, description="a loaded skin's name (GET /v1/models), or 'base'")
    # ranges from generate.LIMITS (one per field); defaults are OpenAI's (temperature 1: sampling)
    max_tokens: int | None = Field(None, ge=LIMITS["max_tokens"].lo, le=LIMITS["max_tokens"].hi)
    temperature: float = Field(1.0, ge=LIMITS["temperature"].lo, le=LIMITS["temperature"].hi)
    top_p: float = Field(1.0, gt=LIMITS["top_p"].lo, le=LIMITS["top_p"].hi)
    seed: int | None = Field(None, ge=LIMITS["seed"].lo, le=LIMITS["seed"].hi)
    n: int = Field(1, ge=1, le=128, description="choices per prompt")
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = Field(None, description=f"up to {MAX_STOPS} strings; the answer ends before "
                                                           "the first one that appears")

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> str | list[str] | None:
        stops = [v] if isinstance(v, str) else v or []
        if not stops_ok(stops):
            raise ValueError(f"give at most {MAX_STOPS} non-empty stop strings")
        return v

    def sampling(self, max_tokens: int | None = None, choice: int = 0) -> Sampling:
        """Choice `choice` of n: a seeded request gives its choices seeds seed, seed + 1, ..., so they differ
        from one another and repeat from call to call."""
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        seed = None if self.seed is None else (self.seed + choice) % 2**63
        return Sampling(max_tokens=self.max_tokens or max_tokens or DEFAULT_MAX_TOKENS, temperature=self.temperature,
                        top_p=self.top_p, seed=seed, stop=stop)


class CompletionBody(_Sampled):
    prompt: str | list[str] = Field(description="one prompt, or a list: n choices per prompt")


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str


class ChatBody(_Sampled):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=LIMITS["max_tokens"].lo, le=LIMITS["max_tokens"].hi)


def _refuse_unsupported(body: _Sampled) -> None:
    if body.stream_options is not None and not body.stream:
        raise HTTPException(422, "stream_options: only with stream: true; remove it or stream")
    extra = body.model_extra or {}
    bad = sorted(k for k, v in extra.items()
                 if k not in INFORMATIONAL and (k not in NEUTRAL or v != NEUTRAL[k] and v not in (None, [])))
    if bad:
        raise HTTPException(422, f"unsupported field(s) {', '.join(bad)}: this server generates n choices per "
                                 "prompt with temperature, top_p, seed, max_tokens and stop; remove them")


def _usage(gens: list[Generated]) -> dict:
    prompt = sum(g.prompt_tokens for g in gens)
    done = sum(len(g.tokens) for g in gens)
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


def _usage_chunk(body: _Sampled, head: dict):
    """The last chunk's maker when the client asked for usage in the stream (OpenAI's shape: no choices)."""
    if body.stream_options is None or not body.stream_options.include_usage:
        return None
    return lambda gens: {**head, "choices": [], "usage": _usage(gens)}


def _gone(request: Request) -> Callable[[], bool]:
    """Whether the client of a non-streaming request went away (a timeout, a closed tab); polled from the
    endpoint's worker thread, which anyio runs, while the request waits for its batch."""

    def gone() -> bool:
        try:
            return anyio.from_thread.run(request.is_disconnected)
        except RuntimeError:  # not on an anyio worker thread: cannot ask, so keep generating
            return False

    return gone


def _event(payload: dict | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=True)}\n\n"


async def _stream(bank: SkinBank, batcher: Batcher, requests: list, chunk, usage=None) -> AsyncIterator[str]:
    """Runs the generation in a thread and yields one event per token piece as rows produce them; `chunk(row,
    piece, finish_reason)` shapes each event, `usage(generated)` (stream_options.include_usage) a last one.
    When the client goes away the server cancels this generator at its `await`, and its rows stop at their
    next token instead of running to max_tokens. (Async on purpose: a plain generator is closed only when
    garbage collection gets to it, a second or more later.)"""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    gone = threading.Event()

    def put(item: dict | None) -> None:  # from the generation thread
        try:
            loop.call_soon_threadsafe(events.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody reads any more
            gone.set()

    def on_token(row: int, token: int) -> bool:
        return not gone.is_set()

    def on_text(row: int, piece: str) -> None:
        put(chunk(row, piece, None))

    def work() -> None:
        try:
            gens = batcher.generate(requests, on_token=on_token, on_text=on_text)
            for row, g in enumerate(gens):
                put(chunk(row, None, g.finish_reason))
            if usage is not None:
                put(usage(gens))
        except LntuneError as e:  # a skin removed, or a NaN, after the stream began: say so in the stream
            put({"error": {"message": str(e), "type": "invalid_request_error"}})
        finally:
            put(None)

    threading.Thread(target=work, daemon=True).start()
    try:
        while (item := await events.get()) is not None:
            yield _event(item)
        yield _event("[DONE]")
    finally:
        gone.set()


def router(bank: SkinBank, max_inputs: int, window: float = 0.005) -> APIRouter:
    """The /v1 routes; concurrent requests share batches (a Batcher gathering for `window` seconds)."""
    api = APIRouter(prefix="/v1", route_class=CheckedBody)
    batcher = Batcher(bank, window) if bank.generates else None

    def check(body: _Sampled, rows: int) -> None:
        _refuse_unsupported(body)
        if not bank.generates:
            raise HTTPException(422, "this server serves classification/regression skins, which do not generate: "
                                     "use POST /predict")
        if rows * body.n > max_inputs:
            raise HTTPException(413, f"{rows} prompt(s) x n={body.n}; this server generates at most {max_inputs} "
                                     "choices per request")

    @api.get("/models")
    def models() -> dict:
        names = [BASE] + [s["name"] for s in bank.skins()] if bank.generates else [s["name"] for s in bank.skins()]
        return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "lntune"}
                                           for n in names]}

    @api.post("/completions")
    def completions(body: CompletionBody, request: Request):
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        check(body, len(prompts))
        if not prompts:
            raise HTTPException(422, "prompt: give a prompt or a non-empty list of prompts")
        requests = [(body.model, p, body.sampling(choice=j)) for p in prompts for j in range(body.n)]
        head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": body.model}
        if body.stream:
            bank.prepare(requests)  # bad input is a 4xx before the stream starts

            def chunk(row, piece, finish):
                return {**head, "choices": [{"index": row, "text": piece or "", "finish_reason": finish,
                                             "logprobs": None}]}

            return StreamingResponse(_stream(bank, batcher, requests, chunk, _usage_chunk(body, head)),
                                     media_type="text/event-stream")
        gens = batcher.generate(requests, gone=_gone(request))
        choices = [{"index": i, "text": g.text, "finish_reason": g.finish_reason, "logprobs": None}
                   for i, g in enumerate(gens)]
        return {**head, "choices": choices, "usage": _usage(gens)}

    @api.post("/chat/completions")
    def chat(body: ChatBody, request: Request):
        check(body, 1)
        # "developer" is OpenAI's newer name for the system turn; chat templates know "system"
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.content}
                    for m in body.messages]
        requests = [(body.model, messages, body.sampling(body.max_completion_tokens, j)) for j in range(body.n)]
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": body.model}
        if body.stream:
            bank.prepare(requests)

            def chunk(row, piece, finish):
                delta = {} if finish else {"role": "assistant", "content": piece}
                return {**head, "object": "chat.completion.chunk",
                        "choices": [{"index": row, "delta": delta, "finish_reason": finish}]}

            return StreamingResponse(_stream(bank, batcher, requests, chunk,
                                             _usage_chunk(body, {**head, "object": "chat.completion.chunk"})),
                                     media_type="text/event-stream")
        gens = batcher.generate(requests, gone=_gone(request))
        choices = [{"index": j, "message": {"role": "assistant", "content": g.text}, "finish_reason": g.finish_reason}
                   for j, g in enumerate(gens)]
        return {**head, "choices": choices, "usage": _usage(gens)}

    return api
