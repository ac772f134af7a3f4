"""The contract's machinery without a server: figures as the simulator counts them, intervals, the profile.

Nothing here is timed; every check is on numbers the harness computes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from petriflow.profile.distributions import Empirical, Fixed, Mixture, parse_dist
from petriflow.simulate import Load, simulate
from petriflow.spec import WorkflowBuilder
from petriflow.trace import TraceRecord
from tests.execute.synthetic import Behaviour

from .cases import CASES, map_retries, route
from .harness import HANG, Executed, Figure, Plus, kind_of, load_as_run, overheads, profile_for, with_moments
from .stats import CaseRecord, block_bootstrap, executed_intervals, figures, of_simulation, spread


def test_figures_count_as_the_simulator_does() -> None:
    """Same arrivals, same latencies: the executed figures equal the simulator's own, warm-up and all."""
    arrivals, latency = [0.0, 0.5, 3.0, 3.2, 3.3], 1.0
    wf = WorkflowBuilder("one").step("a", kind="python", function="builtins:len", latency=latency,
                                     cost=0.25).build()
    sim = of_simulation(simulate(wf, cases=5, load=Load.replay(arrivals), warmup=0.4))
    records = [CaseRecord(i, t, t + latency, 0.25, True) for i, t in enumerate(arrivals)]
    assert figures(records, warmup=0.4) == pytest.approx(sim)
    assert sim["throughput"] == pytest.approx(3 / (4.3 - 3.0)) and sim["failed"] == 0  # ends after 3.0 count


def test_failed_cases_count_in_the_share_and_not_in_latency() -> None:
    records = [CaseRecord(0, 0.0, 1.0, 1.0, True), CaseRecord(1, 0.0, 9.0, 5.0, False),
               CaseRecord(2, 1.0, 3.0, 3.0, True)]
    got = figures(records, warmup=0.0)
    assert got["failed"] == pytest.approx(1 / 3) and got["cost"] == 2.0 and got["p50"] == 1.5
    assert got["throughput"] == pytest.approx(2 / 9)  # completions over the span to the last event


def test_block_bootstrap_covers_the_mean_of_iid_data() -> None:
    hits = 0
    for seed in range(100):
        x = np.random.default_rng(seed).normal(size=100)
        lo, hi = block_bootstrap(x, lambda a: a.mean(axis=1), reps=400, seed=seed)
        hits += lo <= 0 <= hi
    assert 88 <= hits <= 99


def test_blocks_widen_the_interval_of_correlated_data() -> None:
    """An AR(1) series with correlation 0.9: blocks see the correlation that single values hide."""
    rng = np.random.default_rng(0)
    x = np.zeros(900)
    for i in range(1, x.size):
        x[i] = 0.9 * x[i - 1] + rng.normal()

    def width(block: int | None) -> float:
        lo, hi = block_bootstrap(x, lambda a: a.mean(axis=1), reps=1000, block=block)
        return hi - lo

    assert width(None) > 2.5 * width(1)


def test_spread_is_where_one_more_run_falls() -> None:
    x = np.random.default_rng(1).normal(10, 2, size=20)
    m, lo, hi = spread(x)
    assert m == pytest.approx(x.mean()) and hi - m == pytest.approx(m - lo)
    assert hi - m == pytest.approx(2.093 * x.std(ddof=1) * np.sqrt(1 + 1 / 20))  # Student t, 19 df
    with pytest.raises(ValueError):
        spread([1.0, 2.0], level=0.9)


def test_a_figure_agrees_within_both_half_widths() -> None:
    f = Figure("p95", 1.09, 1.04, 1.14, 1.0, 0.95, 1.05)
    assert f.bound == pytest.approx(0.10) and f.agrees and f.gap == pytest.approx(0.09)
    assert not Figure("p95", 1.11, 1.06, 1.16, 1.0, 0.95, 1.05).agrees
    assert Figure("failed", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0).gap == 0.0


@pytest.mark.parametrize(("fault", "kind"), [("500", "retryable"), ("429:0.3", "retryable"), ("429ms:5", "retryable"),
                                             ("408", "retryable"), ("hang", "timeout"), ("drop", "retryable"),
                                             ("400", "fatal"), ("404", "fatal")])
def test_faults_take_the_executors_verdict(fault: str, kind: str) -> None:
    assert kind_of(fault) == kind


def test_the_profile_is_drawn_from_the_behaviours() -> None:
    case = next(c for c in CASES if c.name == "fallback")
    wf = case.build("http://127.0.0.1:1/v1")
    prof = profile_for(wf, case.behaviours, {"draft": Fixed(0.004)})
    draft = prof.step("draft")
    assert isinstance(draft.latency, Plus) and draft.latency.extra == Fixed(0.004)
    mix = draft.latency.base
    assert isinstance(mix, Mixture) and mix.weights == (0.9, 0.1) and mix.components[1] == Fixed(HANG)
    assert draft.retryable_rate == pytest.approx(0.1 / 0.9) and draft.fatal_rate == 0  # among those not hanging
    assert prof.step("backup").output_tokens is case.behaviours["small-model"].output_tokens  # per model
    assert prof.cost_per_call("backup") > 0  # the workflow's prices


def test_fatal_faults_are_fatal_in_the_profile() -> None:
    case = next(c for c in CASES if c.name == "fatal")
    ask = profile_for(case.build("u"), case.behaviours, {}).step("ask")
    assert (ask.retryable_rate, ask.fatal_rate, ask.timeout_rate) == pytest.approx((0.1, 0.1, 0.0))


def test_routes_and_map_items_come_from_the_steps_that_answer_them() -> None:
    beh = {"classify": Behaviour(choices={"simple": 0.2, "code": 0.5, "search": 0.3}),
           "split": Behaviour(items=Empirical((1, 3)), max_items=4)}
    assert dict(profile_for(route("u"), beh, {}).routes["classify"]) == {"simple": 0.2, "code": 0.5, "search": 0.3}
    assert profile_for(map_retries("u"), beh, {}).step("answer").items is beh["split"].items
    with pytest.raises(ValueError, match="choices"):
        profile_for(route("u"), {}, {})


def test_a_hang_needs_a_timeout() -> None:
    wf = WorkflowBuilder("h").model("m", name="m", base_url="u").step("a", kind="chat", model="m").build()
    with pytest.raises(ValueError, match="timeout"):
        profile_for(wf, {"a": Behaviour(errors={"hang": 0.1})}, {})


def test_overhead_has_the_mean_and_variance_beyond_the_drawn_latency_of_successful_calls() -> None:
    wf = WorkflowBuilder("o").model("m", name="m", base_url="u").step("a", kind="chat", model="m",
                                                                      timeout=1.0).build()

    def rec(seconds: float, outcome: str) -> TraceRecord:
        return TraceRecord("r", 0, "a", 100.0, 100.0 + seconds, 1, outcome)

    def draw(delay: float, fault: str) -> dict[str, Any]:
        return {"step": "a", "fault": fault, "delay": delay}

    run = Executed((), (rec(0.105, "ok"), rec(0.205, "ok"), rec(1.0, "timeout"), rec(0.5, "error")),
                   (draw(0.1, "ok"), draw(0.2, "ok"), draw(3.0, "ok"), draw(0.49, "500")), 1.0)
    assert overheads(wf, run) == {"a": Fixed(pytest.approx(0.005))}  # the same 5 ms on both: no spread
    spread_out = Executed((), (rec(0.100, "ok"), rec(0.210, "ok")), (draw(0.1, "ok"), draw(0.2, "ok")), 1.0)
    extra = overheads(wf, spread_out)["a"]
    assert extra.mean == pytest.approx(0.005)
    var = 0.055**2 - 0.05**2  # of 100, 210 ms less that of 100, 200 ms
    assert extra.sample(np.random.default_rng(0), 20000).var() == pytest.approx(var, rel=0.1)


def test_with_moments_is_a_gamma_of_that_mean_and_variance() -> None:
    d = with_moments(0.02, 0.0004)
    x = d.sample(np.random.default_rng(0), 100_000)
    assert x.min() >= 0 and x.mean() == pytest.approx(0.02, rel=0.02) and x.var() == pytest.approx(0.0004, rel=0.05)
    assert with_moments(0.02, -1e-6) == Fixed(0.02) and with_moments(-0.001, 0.1) == Fixed(0.0)


def test_plus_adds_an_independent_draw() -> None:
    d = Plus(parse_dist({"dist": "exponential", "mean": 2.0}), Fixed(0.5))
    assert d.mean == 2.5 and d.scaled(2).mean == 5.0
    assert d.sample(np.random.default_rng(0), 1000).min() >= 0.5


def test_users_come_back_as_late_as_they_did() -> None:
    run = Executed((), (), (), 1.0, late=(0.001, 0.003, -0.0001))
    think = load_as_run(Load.closed(users=2, think=0.05), run).think
    assert set(np.round(think.sample(np.random.default_rng(0), 200), 6)) == {0.05, 0.051, 0.053}
    assert load_as_run(Load.closed(users=2), Executed((), (), (), 1.0)).think == Fixed(0.0)


def test_throughput_interval_is_over_the_times_between_completions() -> None:
    rng = np.random.default_rng(2)
    arrivals = np.cumsum(rng.exponential(0.1, 400))
    records = [CaseRecord(i, t, t + 0.05, 0.0, True) for i, t in enumerate(arrivals)]
    lo, hi = executed_intervals(records, warmup=0.1)["throughput"]
    point = figures(records, warmup=0.1)["throughput"]
    assert lo < point < hi and 8 < lo and hi < 12.5  # about 10 a second, known to ~10% from 360 gaps


def test_the_condition_cases_scores_take_each_branch_as_often_as_its_p() -> None:
    """The server's score, through the executor's own branch choice, hits each branch at its `p` (4 SE)."""
    from petriflow.execute.routing import choose_branch
    from tests.execute.synthetic import Synthetic

    case = next(c for c in CASES if c.name == "condition")
    wf = case.build("http://unused/v1")
    step = wf.step("score")
    syn = Synthetic(case.behaviours, seed=3)
    n = 4000
    hits: dict[str, int] = {}
    for _ in range(n):
        d = syn.draw("score", None)
        assert d is not None and d.reply is not None
        label = choose_branch(step, d.reply, case={}, loop_pass=1)
        assert label is not None
        hits[label] = hits.get(label, 0) + 1
    for b in step.route:
        se = (b.p * (1 - b.p) / n) ** 0.5
        assert abs(hits.get(b.when, 0) / n - b.p) < 4 * se, (b.when, hits)
    assert profile_for(wf, case.behaviours, {}).routes["score"] == {b.when: b.p for b in step.route}
