"""Pricing: one formula (spec.model.price_of) for what a call costs, used by the executor."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from petriflow.execute import pricing
from petriflow.execute.pricing import call_cost, estimate_cost
from petriflow.execute.servers import Endpoint
from petriflow.spec.model import ModelEndpoint

prices = st.floats(min_value=0, max_value=100, allow_nan=False)
tokens = st.integers(min_value=0, max_value=10**7)


def test_model_endpoint_cost_is_per_million_tokens_plus_per_call() -> None:
    m = ModelEndpoint("m", "M", price_input=0.10, price_output=0.30, price_call=0.001)
    assert m.cost(1000, 500) == pytest.approx(0.0001 + 0.00015 + 0.001)
    assert m.cost(2000, 1000, calls=2) == pytest.approx(2 * m.cost(1000, 500))
    assert m.cost(0, 0, calls=0) == 0.0


@given(pi=prices, po=prices, pc=prices, tin=tokens, tout=tokens)
def test_call_cost_of_an_endpoint_is_the_model_endpoints_cost(pi: float, po: float, pc: float, tin: int,
                                                              tout: int) -> None:
    ep = Endpoint(base_url="http://x/v1", model="m", price_input=pi, price_output=po, price_call=pc)
    me = ModelEndpoint("m", "m", price_input=pi, price_output=po, price_call=pc)
    assert call_cost(ep, input_tokens=tin, output_tokens=tout) == me.cost(tin, tout)
    assert call_cost(me, input_tokens=tin, output_tokens=tout) == me.cost(tin, tout)


def test_call_cost_and_the_budget_estimate_go_through_the_one_formula(monkeypatch: pytest.MonkeyPatch) -> None:
    """No second copy of the formula: changing price_of changes what the executor charges."""
    seen: list[tuple[float, float]] = []

    def fake(prices: object, input_tokens: float, output_tokens: float, calls: float = 1.0) -> float:
        seen.append((input_tokens, output_tokens))
        return 42.0

    monkeypatch.setattr(pricing, "price_of", fake)
    ep = Endpoint(base_url="http://x/v1", model="m", price_input=1.0)
    assert call_cost(ep, input_tokens=7, output_tokens=3) == 42.0
    assert estimate_cost(ep, "abc", max_tokens=9) == 42.0 and seen == [(7, 3), (2, 9)]
