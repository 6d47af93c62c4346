"""Request bodies that JSON cannot be read from get a 422 that says why (every route of the server uses this)."""
from __future__ import annotations

import json
import sys

from fastapi import HTTPException, Request
from fastapi.routing import APIRoute


class CheckedBody(APIRoute):
    """A route that parses its JSON body itself first, so that a body JSON cannot be read from gets a 422 saying
    why: FastAPI answers a non-UTF-8 body, a number of more than 4,300 digits and deep nesting with one generic
    400 ("There was an error parsing the body"). The parsed body is cached on the request for FastAPI."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def checked(request: Request):
            if request.headers.get("content-type", "").split(";")[0].strip() == "application/json":
                await _parse_json(request)
            return await handler(request)

        return checked


async def _parse_json(request: Request) -> None:
    body = await request.body()
    if not body:
        return
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HTTPException(422, f"the body is not UTF-8 text (byte 0x{body[e.start]:02x} at position {e.start}); "
                                 "send JSON encoded as UTF-8") from None
    try:
        request._json = json.loads(text)  # starlette's cache: FastAPI reads the body from here
    except RecursionError:
        raise HTTPException(422, "the body nests arrays or objects too deeply to read; send at most a few levels "
                                 "(inputs: a list of objects)") from None
    except ValueError as e:
        if "digits" in str(e):  # Python refuses integers of more than sys.get_int_max_str_digits() digits
            raise HTTPException(422, f"the body holds a number with more than {sys.get_int_max_str_digits()} "
                                     "digits; send numbers of a sane size") from None
        pass  # other JSON errors: FastAPI's own 422 names the character
