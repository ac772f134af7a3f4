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

from petriflow.rules import FILE_PART_TOKENS, estimate_tokens
from petriflow.spec.model import Priced, price_of

__all__ = ["FILE_PART_TOKENS", "Priced", "call_cost", "estimate_cost", "estimate_tokens"]


def call_cost(prices: Priced, *, input_tokens: int, output_tokens: int) -> float:
    """Dollars for one call that used these tokens, by :func:`petriflow.spec.model.price_of` (the one formula)."""
    return float(price_of(prices, input_tokens, output_tokens))


def estimate_cost(prices: Priced, messages: Iterable[Mapping[str, Any]] | str, *, max_tokens: int) -> float:
    """The most one call is expected to cost: estimated prompt tokens and all of ``max_tokens``."""
    return call_cost(prices, input_tokens=estimate_tokens(messages), output_tokens=max_tokens)
