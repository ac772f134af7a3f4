"""Simulation results against closed forms: each exact value must lie in the reported 95% interval.

Seeds are fixed, so each test is deterministic; the run lengths are chosen so
that the intervals are a few percent wide, tight enough to catch a wrong
queueing discipline, a lost branch or a cost counted twice. A 95% interval misses
the truth for 1 seed in 20 (checked for M/M/3 at rho 0.6: 19 of seeds 0-19
cover it); when a test here fails, first rerun it over several seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from petriflow.profile import Profile
from petriflow.simulate import Load, simulate
from petriflow.spec import loads


def queue(c: int, mean_service: float) -> str:
    return f"""
name: mmc
resources: {{srv: {{capacity: {c}}}}}
steps:
  - {{id: serve, kind: tool, uses: [srv], latency: {{dist: exponential, mean: {mean_service}}}}}
"""


def within(value: float, ci: tuple[float, float]) -> bool:
    return ci[0] <= value <= ci[1]


def erlang_c(c: int, lam: float, mu: float) -> float:
    """Mean time in system of M/M/c: Erlang C waiting probability over (c mu - lam), plus service."""
    a = lam / mu
    rho = a / c
    top = a**c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return p_wait / (c * mu - lam) + 1 / mu


def test_mm1_mean_time_in_system() -> None:
    lam, mu = 0.5, 1.0
    r = simulate(loads(queue(1, 1 / mu)), cases=40_000, load=Load.poisson(lam), seed=11)
    assert within(1 / (mu - lam), r.latency.ci95["mean"]), (r.latency.mean, r.latency.ci95["mean"])
    assert r.latency.ci95["mean"][1] - r.latency.ci95["mean"][0] < 0.2  # the interval is informative
    assert r.utilization["srv"] == pytest.approx(lam / mu, abs=0.02)


def test_mmc_erlang_c() -> None:
    c, lam, mu = 3, 1.8, 1.0  # rho = 0.6: batches of 1,800 cases are long enough to be nearly independent
    r = simulate(loads(queue(c, 1 / mu)), cases=40_000, load=Load.poisson(lam), seed=0)
    expected = erlang_c(c, lam, mu)
    assert within(expected, r.latency.ci95["mean"]), (expected, r.latency.ci95["mean"])
    # a server that ignored the queue (infinite capacity) would give 1/mu, far outside
    assert not within(1 / mu, r.latency.ci95["mean"])


@pytest.mark.parametrize("k", [2, 4])
def test_fork_join_of_exponentials(k: int) -> None:
    mu = 2.0
    branches = "\n".join(f"  - {{id: b{i}, kind: tool, after: [fork], latency: {{dist: exponential, mean: {1 / mu}}}}}"
                         for i in range(k))
    wf = loads(f"""
name: fork_join
steps:
  - {{id: fork, kind: python}}
{branches}
  - {{id: join, kind: python, after: [{", ".join(f"b{i}" for i in range(k))}]}}
""")
    r = simulate(wf, cases=20_000, seed=3)
    harmonic = sum(1 / i for i in range(1, k + 1))
    assert within(harmonic / mu, r.latency.ci95["mean"]), (harmonic / mu, r.latency.ci95["mean"])
    assert r.firings == r.cases * (2 * (k + 2) + 2)


def test_deterministic_pipeline_is_exact() -> None:
    wf = loads("""
name: pipe
resources: {one: {capacity: 1}}
steps:
  - {id: a, kind: tool, latency: 0.25}
  - {id: b, kind: tool, after: [a], uses: [one], latency: 1.5}
  - {id: c, kind: tool, after: [b], latency: {dist: fixed, value: 0.25}}
""")
    n = 50
    r = simulate(wf, cases=n, load=Load.replay([float(i) for i in range(n)]), seed=0, warmup=0)
    # case i arrives at i, waits for b behind i earlier cases that each hold `one` 0.5 s longer than the gap
    expected = np.array([0.25 + 1.5 + 0.5 * i + 0.25 for i in range(n)])
    np.testing.assert_allclose(r.latencies, expected, rtol=0, atol=1e-9)
    assert r.critical_path == {"a": 1.0, "b": 1.0, "c": 1.0}


def test_mean_cost_exact_without_randomness_in_cost() -> None:
    wf = loads("""
name: costs
models: {m: {name: m, price_input: 2.0, price_output: 8.0, price_call: 0.001}}
steps:
  - {id: a, kind: chat, model: m, tokens: {input: 100, output: 50}, cost: 0.0005, latency: {dist: exponential, mean: 1}}
  - {id: b, kind: chat, model: m, after: [a], tokens: {input: 1000, output: 200}, latency: 0.1}
""")
    r = simulate(wf, cases=500, seed=2)
    expected = (0.0005 + 0.001 + (100 * 2 + 50 * 8) / 1e6) + (0.001 + (1000 * 2 + 200 * 8) / 1e6)
    assert r.cost.mean == pytest.approx(expected, rel=1e-12)
    assert Profile.from_workflow(wf).cost_per_call("a") + Profile.from_workflow(wf).cost_per_call("b") == pytest.approx(expected)


ROUTED = """
name: routed
models: {m: {name: m, price_input: 1.0, price_output: 4.0}}
steps:
  - id: pick
    kind: classify
    route:
      - {when: x, to: x, p: 0.5}
      - {when: y, to: y, p: 0.3}
      - {when: z, to: z, p: 0.2}
    latency: 0.01
  - {id: x, kind: chat, model: m, tokens: {input: 10, output: {dist: exponential, mean: 100}}, latency: 1}
  - {id: y, kind: chat, model: m, tokens: {input: 20, output: {dist: gamma, shape: 2, scale: 200}}, latency: 2}
  - {id: z, kind: tool, cost: 0.01, latency: 3}
  - {id: out, kind: python, after_any: [x, y, z]}
"""


def test_route_frequencies_are_binomially_consistent() -> None:
    wf = loads(ROUTED)
    r = simulate(wf, cases=20_000, seed=9, warmup=0)
    counts = np.array([round(r.critical_path[s] * r.measured) for s in "xyz"])
    assert counts.sum() == r.measured
    test = stats.chisquare(counts, r.measured * np.array([0.5, 0.3, 0.2]))
    assert test.pvalue > 0.001, counts
    for s, p in zip("xyz", (0.5, 0.3, 0.2)):  # each branch alone: a binomial count
        assert stats.binomtest(int(counts["xyz".index(s)]), r.measured, p).pvalue > 0.001


def test_mean_cost_with_routes_matches_expectation() -> None:
    wf = loads(ROUTED)
    prof = Profile.from_workflow(wf)
    expected = sum(p * prof.cost_per_call(s) for s, p in zip("xyz", (0.5, 0.3, 0.2)))
    r = simulate(wf, cases=20_000, seed=4)
    assert within(expected, r.cost.ci95["mean"]), (expected, r.cost.ci95["mean"])
    # the latency is a mixture of fixed values: its mean is exact up to branch frequencies
    assert within(0.01 + 0.5 * 1 + 0.3 * 2 + 0.2 * 3, r.latency.ci95["mean"])


def test_retries_exhausted_fail_the_case_at_rate_f_cubed() -> None:
    wf = loads("""
name: flaky
steps:
  - {id: call, kind: tool, failure_rate: 0.4, retry: {max_attempts: 3, backoff: 0.1, jitter: false}, latency: 1}
""")
    n = 5000
    r = simulate(wf, cases=n, seed=8, warmup=0)
    assert r.cases + r.failed == n
    assert stats.binomtest(r.failed, n, 0.4**3).pvalue > 0.001
    # a case that succeeds on attempt k took k seconds plus backoffs 0.1, 0.2
    assert set(np.round(r.latencies, 9)) <= {1.0, 2.1, 3.3}
    attempts = np.array([np.sum(np.isclose(r.latencies, v)) for v in (1.0, 2.1, 3.3)]) / r.cases
    assert attempts[0] == pytest.approx(0.6 / (1 - 0.4**3), abs=0.03)


def test_timeout_fails_every_attempt_and_fallback_takes_over() -> None:
    wf = loads("""
name: slow
steps:
  - {id: slow, kind: tool, timeout: 1.0, retry: {max_attempts: 2, backoff: 0.5, jitter: false}, latency: 5, fallback: quick}
  - {id: quick, kind: tool, latency: 0.25}
  - {id: after, kind: python, after: [slow], latency: 0.0}
""")
    r = simulate(wf, cases=10, seed=0, warmup=0)
    assert r.failed == 0
    np.testing.assert_allclose(r.latencies, 1.0 + 0.5 + 1.0 + 0.25)
    assert r.critical_path["quick"] == 1.0


def test_loop_runs_a_truncated_geometric_number_of_passes() -> None:
    p, bound = 0.6, 3
    wf = loads(f"""
name: loop
steps:
  - {{id: draft, kind: tool, latency: 1, cost: 1.0}}
  - {{id: review, kind: tool, after: [draft], latency: 0, loop: {{to: draft, max: {bound}, p: {p}}}}}
""")
    r = simulate(wf, cases=20_000, seed=6)
    expected_passes = 1 + sum(p**j for j in range(1, bound + 1))
    assert within(expected_passes, r.cost.ci95["mean"])
    assert r.latencies.max() == pytest.approx(bound + 1)  # never beyond the budget


def test_map_over_items_waits_for_the_slowest() -> None:
    wf = loads("""
name: mapped
steps:
  - {id: split, kind: python}
  - {id: each, kind: tool, after: [split], map: {over: split, max: 3}, latency: {dist: exponential, mean: 1}}
""")
    r = simulate(wf, cases=20_000, seed=1)  # items default to the declared maximum
    assert within(1 + 1 / 2 + 1 / 3, r.latency.ci95["mean"])


def test_request_rate_limit_caps_throughput() -> None:
    wf = loads("""
name: limited
resources: {api: {capacity: 100, requests_per_minute: 60}}
steps:
  - {id: call, kind: tool, uses: [api], latency: 0.1}
""")
    r = simulate(wf, cases=3000, load=Load.poisson(5.0), seed=2)
    assert r.throughput == pytest.approx(1.0, rel=0.03)
    assert r.queue_length["api"] > 100  # the backlog grows: 5 arrive per second, 1 leaves
