"""The step rules both the simulator and the executor obey: unit tests and hypothesis properties.

That both sides obey them with the same numbers is checked where both run:
``tests/execute/test_token_limit.py`` (the token limit),
``tests/simulate/test_error_kinds.py`` and ``tests/execute/test_error_kinds.py``.
"""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

import petriflow.rules
from petriflow.errors import FatalCallError, RetryableCallError
from petriflow.rules import (
    ERROR_KINDS,
    Bucket,
    Verdict,
    after_failure,
    attempt_timeout,
    backoff_delay,
    error_kind,
    may_retry,
    within_budget,
)


def test_the_docstring_examples_run() -> None:
    assert doctest.testmod(petriflow.rules).failed == 0


# -- error kinds, gating, hand-over -------------------------------------------------------


@pytest.mark.parametrize(("exc", "kind"), [
    (TimeoutError(), "timeout"),
    (RetryableCallError("t", kind="timeout"), "timeout"),  # the client's own timeout: the same kind
    (RetryableCallError("429", kind="rate_limit", retry_after=2.0), "retryable"),
    (RetryableCallError("500", kind="server"), "retryable"),
    (RetryableCallError("bad json", kind="malformed"), "retryable"),
    (FatalCallError("401", status=401), "fatal"),
    (ValueError("a bug in a python step"), "fatal"),
])
def test_each_failure_has_one_kind(exc: BaseException, kind: str) -> None:
    assert error_kind(exc) == kind and kind in ERROR_KINDS


GATE = {"attempt": 1, "max_attempts": 3, "retries_left": 2, "elapsed": 1.0, "step_timeout": 10.0}


@pytest.mark.parametrize(("change", "allowed"), [
    ({}, True),
    ({"kind": "timeout"}, True),
    ({"kind": "fatal"}, False),
    ({"attempt": 3}, False),  # this call's attempts are spent
    ({"retries_left": 0}, False),  # the net's pooled retry budget is spent
    ({"elapsed": 10.0}, False),  # the step_timeout ran out
    ({"step_timeout": None, "elapsed": 1e9}, True),
])
def test_a_retry_needs_every_bound_to_allow_it(change: dict[str, object], allowed: bool) -> None:
    args = {"kind": "retryable", **GATE, **change}
    kind = args.pop("kind")
    assert may_retry(kind, **args) is allowed  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "attempt", "has_fallback", "verdict"), [
    ("retryable", 1, True, Verdict.RETRY),
    ("retryable", 3, True, Verdict.FALLBACK),
    ("retryable", 3, False, Verdict.FAIL),
    ("fatal", 1, True, Verdict.FALLBACK),  # at once: another attempt would be refused again
    ("fatal", 1, False, Verdict.FAIL),
])
def test_after_a_failure_retry_then_fallback_then_fail(kind: str, attempt: int, has_fallback: bool,
                                                       verdict: Verdict) -> None:
    assert after_failure(kind, attempt=attempt, max_attempts=3, retries_left=5, has_fallback=has_fallback) is verdict


@pytest.mark.parametrize(("timeout", "step_timeout", "elapsed", "expected"), [
    (None, None, 5.0, None),
    (2.0, None, 5.0, 2.0),
    (2.0, 10.0, 5.0, 2.0),
    (2.0, 10.0, 9.0, 1.0),  # only a second of the step's time is left
    (None, 10.0, 4.0, 6.0),
    (2.0, 10.0, 11.0, -1.0),  # the step's time ran out: no attempt
])
def test_an_attempt_gets_its_timeout_capped_by_what_is_left(timeout: float | None, step_timeout: float | None,
                                                            elapsed: float, expected: float | None) -> None:
    assert attempt_timeout(timeout, step_timeout=step_timeout, elapsed=elapsed) == expected


@pytest.mark.parametrize(("spent", "worst", "budget", "ok"), [
    (0.0, 0.5, None, True),
    (0.4, 0.5, 1.0, True),
    (0.5, 0.5, 1.0, True),
    (0.6, 0.5, 1.0, False),
    (2.0, 0.0, 1.0, True),  # a call that costs nothing is always allowed
])
def test_the_budget_check_prices_the_worst_case(spent: float, worst: float, budget: float | None, ok: bool) -> None:
    assert within_budget(spent=spent, worst=worst, budget=budget) is ok


# -- back-off -------------------------------------------------------------------------------

policies = st.fixed_dictionaries({
    "backoff": st.floats(0.0, 10.0), "backoff_max": st.floats(0.0, 100.0), "jitter": st.booleans(),
})
uniforms = st.floats(0.0, 1.0, exclude_max=True)


@given(policies, st.integers(1, 40), uniforms)
def test_the_delay_does_not_shrink_with_the_attempt_up_to_the_cap(policy: dict[str, object], attempt: int,
                                                                  u: float) -> None:
    now = backoff_delay(attempt, uniform=u, **policy)  # type: ignore[arg-type]
    later = backoff_delay(attempt + 1, uniform=u, **policy)  # type: ignore[arg-type]
    assert now <= later <= float(policy["backoff_max"])  # type: ignore[arg-type]


@given(policies, st.integers(1, 40), uniforms, st.floats(0.0, 1000.0))
def test_the_delay_is_never_below_retry_after(policy: dict[str, object], attempt: int, u: float,
                                              retry_after: float) -> None:
    assert backoff_delay(attempt, uniform=u, retry_after=retry_after, **policy) >= retry_after  # type: ignore[arg-type]


@given(st.floats(0.0, 10.0), st.floats(0.0, 100.0), st.integers(1, 40), uniforms)
def test_jitter_keeps_between_half_and_all_of_the_delay(backoff: float, cap: float, attempt: int, u: float) -> None:
    full = backoff_delay(attempt, backoff=backoff, backoff_max=cap, jitter=False, uniform=u)
    jittered = backoff_delay(attempt, backoff=backoff, backoff_max=cap, jitter=True, uniform=u)
    assert full == min(cap, backoff * 2 ** (attempt - 1))
    assert full / 2 <= jittered <= full


# -- buckets --------------------------------------------------------------------------------


def test_a_bucket_lets_its_burst_go_then_spaces_reservations_at_its_rate() -> None:
    b = Bucket(rate=2.0, burst=3.0, now=0.0)
    assert [b.reserve(0.0, 1) for _ in range(5)] == [0.0, 0.0, 0.0, 0.5, 1.0]  # waiters queue in order
    assert b.reserve(10.0, 1) == 0.0  # refilled, but never beyond the burst
    assert [b.reserve(10.0, 1) for _ in range(3)] == [0.0, 0.0, 0.5]


def test_giving_units_back_shortens_the_next_wait() -> None:
    b = Bucket.for_tokens(600, now=0.0)  # 10 tokens/s
    assert b.reserve(0.0, 600) == 0.0
    assert b.reserve(0.0, 100) == 10.0
    b.reserve(0.0, -50)  # the call used 50 tokens fewer than reserved
    assert b.reserve(0.0, 50) == 10.0


def _admissions(bucket: Bucket, requests: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(time it may go, amount) of each reservation, made at non-decreasing times."""
    out, now = [], 0.0
    for gap, amount in requests:
        now += gap
        out.append((now + bucket.reserve(now, amount), amount))
    return out


rates = st.floats(0.01, 100.0)
bursts = st.floats(1.0, 1000.0)


def reservations(largest: float, most: int = 60) -> st.SearchStrategy[list[tuple[float, float]]]:
    """Reservations for :func:`_admissions`: (gap since the last one, 0-5 s; amount, up to ``largest``)."""
    return st.lists(st.tuples(st.floats(0.0, 5.0), st.floats(0.01, largest)), max_size=most)


@given(rates, bursts, reservations(2000.0), st.floats(0.0, 500.0))
def test_a_bucket_admits_at_most_its_rate_times_t_plus_its_burst(rate: float, burst: float,
                                                                 requests: list[tuple[float, float]],
                                                                 horizon: float) -> None:
    admitted = sum(a for t, a in _admissions(Bucket(rate=rate, burst=burst, now=0.0), requests) if t <= horizon)
    assert admitted <= rate * horizon + burst + 1e-6 * (1 + admitted)


@given(rates, bursts, reservations(1.0), st.floats(0.0, 500.0))
def test_in_any_window_a_bucket_admits_at_most_rate_times_t_plus_burst(rate: float, burst: float,
                                                                       requests: list[tuple[float, float]],
                                                                       width: float) -> None:
    """Sliding windows, for amounts within the burst (one call bigger than the burst waits, then goes whole)."""
    adm = _admissions(Bucket(rate=rate, burst=burst, now=0.0), requests)
    for start, _ in adm:
        inside = sum(a for t, a in adm if start <= t <= start + width)
        assert inside <= rate * width + burst + 1e-6 * (1 + inside)


@given(rates, bursts, reservations(50.0, most=30), st.floats(0.0, 200.0))
def test_a_saturated_bucket_admits_at_least_its_rate_times_t_minus_one(rate: float, burst: float,
                                                                        history: list[tuple[float, float]],
                                                                        horizon: float) -> None:
    """Whatever went before, a caller that always has a unit waiting gets at least ``rate * T - 1`` in ``T``."""
    bucket = Bucket(rate=rate, burst=burst, now=0.0)
    start = max((t for t, _ in _admissions(bucket, history)), default=0.0)  # the history is served by then
    now, admitted = start, 0
    while True:
        now += bucket.reserve(now, 1.0)  # the next unit is asked for as soon as the last one went
        if now > start + horizon:
            break
        admitted += 1
    assert admitted >= rate * horizon - 1
