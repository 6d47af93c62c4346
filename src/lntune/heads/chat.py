"""Chat examples ({"messages": [{"role", "content"}, ...]}) rendered with the tokenizer's chat template.

Training puts the loss on the assistant turns only: each assistant turn's span in the rendered text is
found by rendering the conversation up to that turn twice (with the generation prompt, and with the
turn), and tokens whose characters start inside a span are labelled. transformers offers the same
through `{% generation %}` markers (return_assistant_tokens_mask), but few templates carry them
(SmolLM2's does not), so the spans are found from the rendering itself, which works for any template
that renders a conversation's prefix as a prefix of the text.
"""
from __future__ import annotations

from lntune.errors import DataError


def _template(tokenizer) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise DataError("this model's tokenizer has no chat template, so messages= cannot be rendered; use a "
                        "chat model (e.g. smollm2), or give prompt= and target= columns instead")


def render(tokenizer, messages: list[dict], generation_prompt: bool = False) -> str:
    _template(tokenizer)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the (start, end) characters of each assistant turn, its end-of-turn
    marker included (the model must learn to stop)."""
    text = render(tokenizer, messages)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], generation_prompt=True)
        upto = render(tokenizer, messages[: i + 1])
        if not (upto.startswith(before) and text.startswith(upto)):
            raise DataError("this tokenizer's chat template does not render a conversation's start as the start "
                            "of its text, so the assistant turns cannot be located; give prompt= and target= "
                            "columns instead")
        spans.append((len(before), len(upto)))
    return text, spans


def prompt_and_reference(tokenizer, messages: list[dict]) -> tuple[str, str]:
    """What generation starts from (every turn before the last answer, then the assistant's header) and the
    last answer, the reference its output is scored against."""
    return render(tokenizer, messages[:-1], generation_prompt=True), messages[-1]["content"]
