"""What a model call costs, in dollars, from the prices a workflow declares.

Prices are per 1M tokens (input and output) plus an optional price per call,
as in ``models:`` of a workflow (:class:`petriflow.spec.model.ModelEndpoint`).
:func:`estimate_cost` is the upper bound a budget checks *before* a call (the
prompt's size guessed from its characters, the whole ``max_tokens`` spent), so
that a run stops before it exceeds its budget rather than after.

    >>> from petriflow.execute.servers import Endpoint
    >>> ep = Endpoint(base_url="http://x/v1", model="m", price_input=0.10, price_output=0.30, price_call=0.001)
    >>> round(call_cost(ep, input_tokens=1000, output_tokens=500), 8)
    0.00125
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from petriflow.spec.model import Priced, price_of

__all__ = ["FILE_PART_TOKENS", "Priced", "call_cost", "estimate_cost", "estimate_tokens"]

FILE_PART_TOKENS = 1500
"""What an image or file content part is assumed to cost in input tokens (a large image at high detail
is about 1,100 on OpenAI's models): the budget check errs high, never by the megabytes of base64."""
_CHARS_PER_TOKEN = 3.0  # conservative (real tokenisers average ~4 for English): estimates err high


def call_cost(prices: Priced, *, input_tokens: int, output_tokens: int) -> float:
    """Dollars for one call that used these tokens, by :func:`petriflow.spec.model.price_of` (the one formula)."""
    return float(price_of(prices, input_tokens, output_tokens))


def estimate_tokens(messages: Iterable[Mapping[str, Any]] | str) -> int:
    """A pessimistic token count for a prompt, from its length (no tokenizer needed)."""
    if isinstance(messages, str):
        chars = len(messages)
        extra = 0
    else:
        msgs = list(messages)
        chars = extra = 0
        for m in msgs:
            content = m.get("content", "")
            parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
            for p in parts:
                if isinstance(p, Mapping) and p.get("type") == "text":
                    chars += len(str(p.get("text", "")))
                else:  # an image or a file: what providers charge for a large one, not its base64 length
                    extra += FILE_PART_TOKENS
        extra += 4 * len(msgs)  # role markers of a chat template
    return int(chars / _CHARS_PER_TOKEN) + 1 + extra


def estimate_cost(prices: Priced, messages: Iterable[Mapping[str, Any]] | str, *, max_tokens: int) -> float:
    """The most one call is expected to cost: estimated prompt tokens and all of ``max_tokens``."""
    return call_cost(prices, input_tokens=estimate_tokens(messages), output_tokens=max_tokens)
