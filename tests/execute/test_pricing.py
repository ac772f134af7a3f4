"""Pricing: one formula (spec.model.price_of) for what a call costs, used by the executor."""

from __future__ import annotations

import pytest

from petriflow.execute import pricing
from petriflow.execute.pricing import call_cost, estimate_cost
from petriflow.execute.servers import Endpoint
from petriflow.spec.model import ModelEndpoint

# Prices in dollars per 1M input tokens, per 1M output tokens and per call; the tokens of one call; and what
# that call costs, worked out by hand (shown on the right) rather than by any formula of the package.
HAND_PRICED = [
    # price_input, price_output, price_call, input_tokens, output_tokens, dollars
    (0.15, 0.60, 0.0, 2_000, 500, 0.0006),  # 2000 * 0.15e-6 = 0.0003; 500 * 0.60e-6 = 0.0003
    (0.10, 0.30, 0.001, 1_000, 500, 0.00125),  # 0.0001 + 0.00015 + 0.001
    (2.50, 10.00, 0.0, 12_345, 678, 0.0376425),  # 0.0308625 + 0.00678
    (0.15, 0.60, 0.0, 1_000_000, 1_000_000, 0.75),  # a million of each: the two prices themselves
    (3.00, 15.00, 0.002, 0, 0, 0.002),  # no tokens: the price per call only
    (0.0, 0.0, 0.0, 10**7, 10**7, 0.0),  # a free local model
]


@pytest.mark.parametrize(("pi", "po", "pc", "tin", "tout", "dollars"), HAND_PRICED)
def test_a_call_costs_what_the_per_million_prices_say(pi: float, po: float, pc: float, tin: int, tout: int,
                                                      dollars: float) -> None:
    """The executor's endpoints and the workflow's models are charged the same, and right."""
    ep = Endpoint(base_url="http://x/v1", model="m", price_input=pi, price_output=po, price_call=pc)
    me = ModelEndpoint("m", "m", price_input=pi, price_output=po, price_call=pc)
    assert call_cost(ep, input_tokens=tin, output_tokens=tout) == pytest.approx(dollars, rel=1e-12, abs=1e-15)
    assert call_cost(me, input_tokens=tin, output_tokens=tout) == pytest.approx(dollars, rel=1e-12, abs=1e-15)
    assert me.cost(tin, tout) == pytest.approx(dollars, rel=1e-12, abs=1e-15)


def test_several_calls_pay_the_price_per_call_each_time() -> None:
    m = ModelEndpoint("m", "M", price_input=0.10, price_output=0.30, price_call=0.001)
    assert m.cost(2_000, 1_000, calls=2) == pytest.approx(0.0002 + 0.0003 + 0.002)
    assert m.cost(0, 0, calls=0) == 0.0


def test_the_budget_estimate_prices_the_guessed_prompt_and_all_of_max_tokens() -> None:
    """Three characters a token, rounded down, plus one; four more per chat message for the role markers."""
    ep = Endpoint(base_url="http://x/v1", model="m", price_input=0.15, price_output=0.60)
    # "abc": 3 // 3 + 1 = 2 prompt tokens; 2 * 0.15e-6 + 9 * 0.60e-6 = 0.3e-6 + 5.4e-6
    assert estimate_cost(ep, "abc", max_tokens=9) == pytest.approx(5.7e-6)
    # 30 characters in one message: 30 // 3 + 1 + 4 = 15 prompt tokens; 15 * 0.15e-6 + 100 * 0.60e-6
    messages = [{"role": "user", "content": "x" * 30}]
    assert estimate_cost(ep, messages, max_tokens=100) == pytest.approx(2.25e-6 + 60e-6)


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
