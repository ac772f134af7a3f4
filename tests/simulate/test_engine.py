"""Engine properties: reproducibility, the two clocks agree, failures and queues are accounted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from petriflow.errors import ProfileError
from petriflow.profile import Profile
from petriflow.simulate import Load, simulate
from petriflow.spec import load, loads

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def qa() -> tuple:
    wf = load(ROOT / "models" / "qa_router.yaml")
    return wf, Profile.load(ROOT / "models" / "qa_router.profile.yaml", workflow=wf)


def test_same_seed_same_numbers_other_seed_other_numbers(qa: tuple) -> None:
    wf, prof = qa
    a = simulate(wf, prof, cases=3000, load=Load.poisson(2.0), seed=7)
    b = simulate(wf, prof, cases=3000, load=Load.poisson(2.0), seed=7)
    c = simulate(wf, prof, cases=3000, load=Load.poisson(2.0), seed=8)
    assert a.to_json() == b.to_json()
    np.testing.assert_array_equal(a.latencies, b.latencies)
    assert a.latency.mean != c.latency.mean


def test_fast_clock_and_simpy_kernel_give_identical_runs() -> None:
    """Failures, retries with jitter, timeouts, a fallback, rate limits and queueing: event for event."""
    wf = loads("""
name: busy
models: {m: {name: m, price_input: 1, price_output: 2}}
resources: {llm: {capacity: 2, requests_per_minute: 90, tokens_per_minute: 20000}}
steps:
  - id: pick
    kind: classify
    route: [{when: a, to: a, p: 0.6}, {when: b, to: b, p: 0.4}]
    latency: {dist: exponential, mean: 0.05}
  - {id: a, kind: chat, model: m, uses: [llm], failure_rate: 0.2, timeout: 2.5,
     retry: {max_attempts: 3, backoff: 0.3}, fallback: a_cheap,
     latency: {dist: lognormal, mu: 0.0, sigma: 0.6}, tokens: {input: 100, output: {dist: exponential, mean: 200}}}
  - {id: a_cheap, kind: tool, latency: 0.2}
  - {id: b, kind: chat, model: m, uses: [llm], latency: {dist: gamma, shape: 2, scale: 0.5}, tokens: {input: 50, output: 80}}
  - {id: done, kind: python, after_any: [a, b]}
""")
    fast = simulate(wf, cases=2000, load=Load.poisson(1.2), seed=3)
    kernel = simulate(wf, cases=2000, load=Load.poisson(1.2), seed=3, backend="simpy")
    np.testing.assert_array_equal(fast.latencies, kernel.latencies)
    np.testing.assert_array_equal(fast.costs, kernel.costs)
    assert fast.to_json() == kernel.to_json()
    assert fast.critical_path["a_cheap"] > 0  # the fallback was exercised
    assert fast.queue_length["llm"] > 0


def test_failed_cases_are_counted_apart_and_release_their_resources() -> None:
    wf = loads("""
name: doomed
resources: {r: {capacity: 1}}
steps:
  - {id: x, kind: tool, uses: [r], failure_rate: 1.0, latency: 1}
""")
    res = simulate(wf, cases=20, load=Load.poisson(0.1), seed=0)
    assert (res.cases, res.failed) == (0, 20)
    assert np.isnan(res.latency.mean)


def test_closed_population_bounds_concurrency() -> None:
    wf = loads("""
name: closed
resources: {r: {capacity: 10}}
steps:
  - {id: x, kind: tool, uses: [r], latency: 1}
""")
    res = simulate(wf, cases=300, load=Load.closed(users=3, think=1.0), seed=0, warmup=0)
    np.testing.assert_allclose(res.latencies, 1.0)  # never more than 3 of 10 units in use: no waiting
    assert res.throughput == pytest.approx(1.5, rel=0.01)  # 3 users, 2 s per cycle
    assert res.utilization["r"] == pytest.approx(0.15, rel=0.02)


def test_bad_arguments_raise_profile_errors() -> None:
    wf = loads("name: one\nsteps: [{id: x, kind: tool}]\n")
    with pytest.raises(ProfileError, match="at least 1 case"):
        simulate(wf, cases=0)
    with pytest.raises(ProfileError, match="rate"):
        Load.poisson(0)
    with pytest.raises(ProfileError, match="backend"):
        simulate(wf, cases=1, backend="ray")


@pytest.mark.parametrize("capacity", [1, 2, 3])
def test_resources_queue_exactly_like_simpy_resource(capacity: int) -> None:
    """Fed the same arrival and service numbers, a hand-written ``simpy.Resource`` model gives the same
    latency for every case: FIFO grants, no barging, release hands over at the same instant."""
    import simpy

    from petriflow.simulate.tables import rng_for

    n, seed, rate = 3000, 5, 0.8 * capacity
    wf = loads(f"name: q\nresources: {{srv: {{capacity: {capacity}}}}}\n"
               "steps: [{id: serve, kind: tool, uses: [srv], latency: {dist: exponential, mean: 1.0}}]\n")
    ours = simulate(wf, cases=n, load=Load.poisson(rate), seed=seed, warmup=0)
    gaps = iter(rng_for(seed, "__load__").exponential(1 / rate, n).tolist())  # the streams the engine draws
    service = iter(rng_for(seed, "serve", "latency").exponential(1.0, n).tolist())
    env = simpy.Environment()
    srv = simpy.Resource(env, capacity=capacity)
    lat = np.zeros(n)

    def customer(i: int) -> object:
        t0 = env.now
        with srv.request() as req:
            yield req
            yield env.timeout(next(service))
        lat[i] = env.now - t0

    def arrivals() -> object:
        for i in range(n):
            env.process(customer(i))
            if i + 1 < n:
                yield env.timeout(next(gaps))

    env.process(arrivals())
    env.run()
    np.testing.assert_array_equal(ours.latencies, lat)


def test_a_deadlocking_workflow_reports_stuck_cases() -> None:
    wf = load(ROOT / "models" / "qa_router_broken.yaml")  # aggregate waits for all three branches
    res = simulate(wf, cases=50, load=Load.poisson(1.0), seed=0, allow_unsound=True)
    assert (res.cases, res.failed, res.unfinished) == (0, 0, 50)


def test_map_items_retry_each_up_to_max_attempts_as_the_executor_does() -> None:
    """Each of 3 items gets at most 2 attempts (policies.py caps an item at ``attempt < max_attempts``): an item
    fails with 0.5**2, the case with 1 - 0.75**3 = 57.8%. The net's pooled budget of 3 retries alone would let
    one item retry three times and fail fewer cases (34.5% before per-item attempts)."""
    wf = loads("""
name: mapretry
steps:
  - {id: src, kind: python}
  - {id: m, kind: tool, after: [src], map: {over: src, max: 3}, failure_rate: 0.5,
     retry: {max_attempts: 2, backoff: 0.1}, latency: 1}
""")
    n = 4000
    res = simulate(wf, cases=n, load=Load.poisson(0.5), seed=11)
    p = 1 - 0.75 ** 3
    share = res.failed / (res.failed + res.cases)
    assert res.failed + res.cases == n
    assert abs(share - p) < 4 * (p * (1 - p) / n) ** 0.5


def test_back_off_grows_with_the_item_own_attempt_not_the_pool() -> None:
    """Two items each failing once back off ``backoff`` (their first failure), never ``2 * backoff``."""
    wf = loads("""
name: mapbackoff
steps:
  - {id: src, kind: python}
  - {id: m, kind: tool, after: [src], map: {over: src, max: 2}, failure_rate: 0.5,
     retry: {max_attempts: 2, backoff: 10, jitter: false}, latency: 1}
""")
    res = simulate(wf, cases=400, load=Load.closed(1), seed=5, warmup=0)
    # latency is 1 (+ 10 + 1 per retried item, in parallel): 1 or 12, never 1 + 20 + 2
    assert set(np.round(res.latencies, 9)) <= {1.0, 12.0}
    assert 12.0 in set(np.round(res.latencies, 9))


def test_a_fallback_of_a_fallback_routes_by_the_probabilities_of_the_step_it_stands_in_for() -> None:
    """r always fails, so does its fallback r2; r3 (r2's fallback) finishes as r would: a 80%, b 20%."""
    wf = loads("""
name: chain
steps:
  - {id: r, kind: classify, failure_rate: 1.0, fallback: r2, latency: 1,
     route: [{when: x, to: a, p: 0.8}, {when: y, to: b, p: 0.2}]}
  - {id: r2, kind: tool, failure_rate: 1.0, fallback: r3, latency: 1}
  - {id: r3, kind: tool, latency: 1}
  - {id: a, kind: tool, latency: 1}
  - {id: b, kind: tool, latency: 1}
""")
    assert wf.root_of("r3") == "r" and wf.routers_of("a") == ("r",)
    n = 4000
    res = simulate(wf, cases=n, load=Load.poisson(0.5), seed=2, warmup=0)
    assert res.failed == 0 and res.critical_path["r3"] == 1.0
    assert abs(res.critical_path["a"] - 0.8) < 4 * (0.8 * 0.2 / n) ** 0.5


_HALF_STUCK = """
name: half_stuck
resources: {llm: {capacity: 1}}
steps:
  - id: pick
    kind: classify
    route: [{when: a, to: a, p: 0.5}, {when: b, to: b, p: 0.5}]
    latency: 0.1
  - {id: a, kind: tool, uses: [llm], latency: {dist: exponential, mean: 1.0}}
  - {id: b, kind: tool, uses: [llm], latency: 0.3}
  - {id: j, kind: tool, after: [a, b], latency: 0.2}
  - {id: done, kind: python, after_any: [a, j]}
"""


@pytest.mark.parametrize("users, think", [(1, 0.0), (1, 0.5), (3, {"dist": "exponential", "mean": 0.2})])
def test_a_stuck_case_frees_its_user_in_a_closed_population(users: int, think: object) -> None:
    """Every case deadlocks: each stuck case frees its user, who thinks and starts the next one, so all
    20 cases run (before, the first stuck case of each user ended that user's arrivals: 19 never started)."""
    wf = load(ROOT / "models" / "qa_router_broken.yaml")
    fast = simulate(wf, cases=20, load=Load.closed(users, think=think), seed=0, allow_unsound=True)
    kernel = simulate(wf, cases=20, load=Load.closed(users, think=think), seed=0, backend="simpy",
                      allow_unsound=True)
    assert (fast.cases, fast.failed, fast.unfinished) == (0, 0, 20)
    assert fast.to_json() == kernel.to_json()


def test_a_closed_run_with_some_stuck_cases_runs_exactly_the_cases_asked_for() -> None:
    """Branch b strands its case at the join j, branch a finishes (after_any): about half the cases stick.
    Finished and stuck cases add up to the cases asked for, no fewer (lost users) and no more (two users
    freed at once must not both start the last case)."""
    wf = loads(_HALF_STUCK)
    n = 400
    fast = simulate(wf, cases=n, load=Load.closed(2, think=0.5), seed=1, allow_unsound=True)
    kernel = simulate(wf, cases=n, load=Load.closed(2, think=0.5), seed=1, backend="simpy", allow_unsound=True)
    assert fast.to_json() == kernel.to_json()
    assert fast.failed == 0
    assert fast.cases + fast.unfinished == n
    assert abs(fast.unfinished - n / 2) < 4 * (n / 4) ** 0.5  # Binomial(400, 0.5): within 4 sd


def test_a_closed_population_of_sound_cases_runs_exactly_the_cases_asked_for() -> None:
    wf = loads(_HALF_STUCK.replace("after: [a, b]", "after: [b]"))
    for users in (1, 2, 5):
        res = simulate(wf, cases=101, load=Load.closed(users, think=0.3), seed=2)
        assert (res.cases, res.failed, res.unfinished) == (101, 0, 0)
