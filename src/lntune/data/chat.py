"""Chat examples ({"messages": [{"role", "content"}, ...]}): their shape is checked here; how they are rendered
with the tokenizer's chat template, and where the loss falls, lives in heads/chat.py."""
from __future__ import annotations

from lntune.errors import DataError

ROLES = ("system", "user", "assistant", "tool")


def check_messages(messages: object, where: str, answered: bool = True) -> list[dict]:
    """A conversation as a list of {"role", "content"} dicts; `answered`: it ends with an assistant turn (a
    training example), else it is a prompt the model answers."""
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: messages must be a non-empty list of {{\"role\", \"content\"}} objects")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: message {i} must be an object with string \"role\" and \"content\"")
        if m["role"] not in ROLES:
            raise DataError(f"{where}: message {i} has role {m['role']!r}; use one of {', '.join(ROLES)}")
        out.append({"role": m["role"], "content": m["content"]})
    if answered and out[-1]["role"] != "assistant":
        raise DataError(f"{where}: the last message is a {out[-1]['role']} turn; a training conversation ends "
                        "with the assistant's answer (what the model learns to write)")
    return out
