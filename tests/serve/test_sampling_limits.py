"""One range per sampling field: Sampling (lntune ask, Python) and the /v1 schema refuse and accept alike."""
import pydantic
import pytest

from lntune.errors import LntuneError
from lntune.serve.generate import LIMITS, Sampling
from lntune.serve.openai import ChatBody, CompletionBody


@pytest.mark.parametrize("field, bad, good", [
    ("temperature", 2.5, 2.0), ("temperature", -0.1, 0.0), ("top_p", 0.0, 1.0), ("top_p", 1.5, 0.5),
    ("max_tokens", 0, 1), ("seed", -1, 0),
])
def test_sampling_and_v1_share_each_range(field, bad, good):
    with pytest.raises(LntuneError, match=field):
        Sampling(**{field: bad}).check("test")
    Sampling(**{field: good}).check("test")
    for body in (CompletionBody, ChatBody):
        extra = {"prompt": "hi"} if body is CompletionBody else {"messages": [{"role": "user", "content": "hi"}]}
        with pytest.raises(pydantic.ValidationError):
            body(model="m", **extra, **{field: bad})
        body(model="m", **extra, **{field: good})
    assert LIMITS[field].ok(good) and not LIMITS[field].ok(bad)


def test_each_entry_point_keeps_its_default():
    assert Sampling().temperature == 0.0  # greedy: lntune ask and Python
    assert CompletionBody(model="m", prompt="hi").temperature == 1.0  # OpenAI's default on /v1
