"""Error kinds in the profile and in the simulator: a fatal failure gives up at once, as the executor does.

Each attempt of ``a`` costs $1 and its fallback ``b`` $10, so a case's cost
counts ``a``'s attempts exactly; latencies count them in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest

from petriflow.errors import ProfileError
from petriflow.profile import Profile
from petriflow.profile.fit import fit
from petriflow.profile.model import StepProfile
from petriflow.simulate import Load, simulate
from petriflow.spec import Workflow, loads
from petriflow.trace import TraceRecord


def two_steps(*, fallback: bool) -> Workflow:
    return loads(f"""
name: kinds
steps:
  - {{id: a, kind: tool, cost: 1.0, latency: 1, timeout: 5,
     retry: {{max_attempts: 3, backoff: 2, jitter: false}}{", fallback: b" if fallback else ""}}}
  - {{id: b, kind: tool, cost: 10.0, latency: 1{"" if fallback else ", after: [a]"}}}
""")


def failing(wf: Workflow, **rates: float) -> Profile:
    return Profile.from_doc({"steps": {"a": rates}}, base=Profile.from_workflow(wf))


def test_a_fatal_failure_hands_over_to_the_fallback_at_the_first_attempt() -> None:
    wf = two_steps(fallback=True)
    res = simulate(wf, failing(wf, fatal_rate=1.0), cases=200, seed=1, warmup=0)
    assert res.failed == 0
    assert set(np.round(res.costs, 9)) == {10.0}  # one failed attempt of a (not billed), then b
    assert set(np.round(res.latencies, 9)) == {2.0}  # no back-off


def test_a_retryable_failure_is_retried_until_the_attempts_run_out() -> None:
    wf = two_steps(fallback=True)
    res = simulate(wf, failing(wf, retryable_rate=1.0), cases=200, seed=1, warmup=0)
    assert set(np.round(res.costs, 9)) == {10.0}  # three failed attempts of a (not billed), then b
    assert set(np.round(res.latencies, 9)) == {1 + 2 + 1 + 4 + 1 + 1}  # back-off 2 s, then 4 s


def test_a_fatal_failure_without_a_fallback_fails_the_case_at_once() -> None:
    wf = two_steps(fallback=False)
    res = simulate(wf, failing(wf, fatal_rate=1.0), cases=200, seed=1, warmup=0)
    assert res.failed == 200 and res.cases == 0
    assert set(np.round(res.failed_costs, 9)) == {0.0}  # a failed attempt is not billed, as in the executor


def test_a_timeout_lasts_the_step_timeout_and_is_retried() -> None:
    wf = two_steps(fallback=True)
    res = simulate(wf, failing(wf, timeout_rate=1.0), cases=200, seed=1, warmup=0)
    assert set(np.round(res.latencies, 9)) == {5 + 2 + 5 + 4 + 5 + 1}


def test_the_kinds_mix_as_their_rates_say() -> None:
    """Half the attempts fail fatally: half the cases go to the fallback after one attempt of a."""
    wf = two_steps(fallback=True)
    n = 4000
    res = simulate(wf, failing(wf, fatal_rate=0.5), cases=n, load=Load.poisson(0.1), seed=4, warmup=0)
    share = float(np.mean(np.isclose(res.costs, 10.0)))
    assert abs(share - 0.5) < 4 * (0.25 / n) ** 0.5
    assert set(np.round(res.costs, 9)) == {1.0, 10.0}


def test_a_profile_with_only_retryable_failures_simulates_as_before_kinds() -> None:
    """The draws are cut at the cumulative rates with retryable first, so old profiles give the same numbers."""
    wf = two_steps(fallback=True)
    old = simulate(wf, Profile.from_doc({"steps": {"a": {"failure_rate": 0.3}}}, base=Profile.from_workflow(wf)),
                   cases=500, load=Load.poisson(0.2), seed=9)
    new = simulate(wf, failing(wf, retryable_rate=0.3), cases=500, load=Load.poisson(0.2), seed=9)
    assert np.array_equal(old.latencies, new.latencies) and np.array_equal(old.costs, new.costs)


# -- the profile format -----------------------------------------------------------------


def test_per_kind_rates_round_trip_and_the_old_key_reads_as_retryable(tmp_path: object) -> None:
    prof = Profile.from_doc({"steps": {"a": {"retryable_rate": 0.1, "fatal_rate": 0.02, "timeout_rate": 0.05}}})
    sp = prof.steps["a"]
    assert (sp.rate_of("retryable"), sp.rate_of("fatal"), sp.rate_of("timeout")) == (0.1, 0.02, 0.05)
    assert sp.failure_rate == pytest.approx(0.17)
    assert Profile.from_doc(prof.to_doc()).steps["a"] == sp
    legacy = Profile.from_doc({"steps": {"a": {"failure_rate": 0.1}}}).steps["a"]
    assert legacy == StepProfile(retryable_rate=0.1)


@pytest.mark.parametrize(("raw", "words"), [
    ({"failure_rate": 0.1, "retryable_rate": 0.1}, "not both"),
    ({"retryable_rate": 0.7, "fatal_rate": 0.4}, "add up to 1.1"),
    ({"fatal_rate": 1.5}, "a probability"),
])
def test_bad_failure_rates_are_profile_errors(raw: dict[str, float], words: str) -> None:
    with pytest.raises(ProfileError, match=words):
        Profile.from_doc({"steps": {"a": raw}})


# -- fit ----------------------------------------------------------------------------------


def _rec(case: int, attempt: int, outcome: str, error: str | None) -> TraceRecord:
    return TraceRecord("r", case, "a", 0.0, 1.0, attempt, outcome, None, 0, 0, 0.0, None, error)


def test_fit_reads_the_kinds_and_counts_old_records_as_before() -> None:
    recs = [_rec(0, 1, "error", "fatal"), _rec(0, 2, "timeout", "timeout"), _rec(0, 3, "fallback", "retryable"),
            _rec(1, 1, "error", None), _rec(1, 2, "timeout", None), _rec(1, 3, "fallback", None),
            _rec(2, 1, "ok", None), _rec(3, 1, "ok", None)]
    sp = fit(recs).steps["a"]
    assert (sp.retryable_rate, sp.timeout_rate, sp.fatal_rate) == (3 / 8, 2 / 8, 1 / 8)


def test_fit_refuses_an_unknown_error_kind() -> None:
    with pytest.raises(ProfileError, match="unknown error kind"):
        fit([_rec(0, 1, "error", "flaky"), _rec(1, 1, "ok", None)])


# -- Retry-After ------------------------------------------------------------------------


def test_a_retry_after_longer_than_the_back_off_is_waited() -> None:
    """Every failure asks 7 s: each back-off (2 s, then 4 s) is stretched to 7 s, as the executor sleeps it."""
    wf = two_steps(fallback=True)
    prof = failing(wf, retryable_rate=1.0, retry_after=7)
    res = simulate(wf, prof, cases=50, seed=1, warmup=0)
    assert set(np.round(res.latencies, 9)) == {1 + 7 + 1 + 7 + 1 + 1}


def test_a_retry_after_shorter_than_the_back_off_changes_nothing() -> None:
    wf = two_steps(fallback=True)
    res = simulate(wf, failing(wf, retryable_rate=1.0, retry_after=0.5), cases=50, seed=1, warmup=0)
    assert set(np.round(res.latencies, 9)) == {1 + 2 + 1 + 4 + 1 + 1}


def test_retry_after_applies_to_retryable_failures_only() -> None:
    """A timeout draws no Retry-After: the waits stay the back-off's."""
    wf = two_steps(fallback=True)
    res = simulate(wf, failing(wf, timeout_rate=1.0, retry_after=7), cases=50, seed=1, warmup=0)
    assert set(np.round(res.latencies, 9)) == {5 + 2 + 5 + 4 + 5 + 1}


def test_fit_reads_retry_after_per_retryable_failure_and_round_trips() -> None:
    recs = [TraceRecord("r", 0, "a", 0.0, 1.0, 1, "error", None, 0, 0, 0.0, None, "retryable", retry_after=0.25),
            TraceRecord("r", 0, "a", 0.0, 1.0, 2, "error", None, 0, 0, 0.0, None, "retryable"),
            TraceRecord("r", 0, "a", 0.0, 1.0, 3, "error", None, 0, 0, 0.0, None, "fatal"),
            _rec(1, 1, "ok", None)]
    sp = fit(recs).steps["a"]
    assert sp.retry_after is not None and sorted(sp.retry_after.to_doc()["samples"]) == [0.0, 0.25]
    assert Profile.from_doc(Profile(steps={"a": sp}).to_doc()).steps["a"].retry_after.to_doc() == sp.retry_after.to_doc()  # type: ignore[union-attr]
    assert fit([_rec(0, 1, "error", "retryable"), _rec(1, 1, "ok", None)]).steps["a"].retry_after is None
