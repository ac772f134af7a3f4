"""Properties over random workflows: every case ends (completes or fails), nothing is lost, and the
fast clock and the SimPy kernel agree event for event."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petriflow.errors import SpecError
from petriflow.simulate import Load, simulate
from petriflow.spec import WorkflowBuilder
from petriflow.spec.model import Workflow

LATENCIES = [0.0, 0.5, {"dist": "exponential", "mean": 1.0}, {"dist": "lognormal", "mu": 0.0, "sigma": 0.5},
             {"dist": "gamma", "shape": 2.0, "scale": 0.3}]


@st.composite
def workflows(draw: st.DrawFn) -> Workflow:
    """Layered steps with AND-joins, resources, retries, timeouts, fallbacks, loops, maps, a route."""
    b = WorkflowBuilder("random").model("m", price_input=1.0, price_output=2.0, price_call=0.001)
    has_res = draw(st.booleans())
    if has_res:
        rpm = draw(st.sampled_from([{}, {"requests_per_minute": 120.0}]))
        b.resource("r", capacity=draw(st.integers(1, 3)), **rpm)
        b.resource("q", capacity=2, **draw(st.sampled_from([{}, {"tokens_per_minute": 3000.0}])))
    ids: list[str] = []
    for i in range(draw(st.integers(1, 5))):
        sid = f"s{i}"
        opts: dict[str, object] = {"latency": draw(st.sampled_from(LATENCIES)), "model": "m",
                                   "tokens": {"input": 10, "output": {"dist": "exponential", "mean": 20}}}
        if ids:
            opts["after"] = draw(st.lists(st.sampled_from(ids), unique=True, min_size=1, max_size=2))
        if has_res and draw(st.booleans()):
            opts["uses"] = draw(st.sampled_from([["r"], ["q"], {"q": 2}, {"r": 1, "q": 2}, ["r", "q"]]))
        if draw(st.integers(0, 2)) == 0:
            opts["failure_rate"] = draw(st.sampled_from([0.1, 0.5]))
            opts["retry"] = {"max_attempts": draw(st.integers(1, 3)), "backoff": 0.2}
            if draw(st.booleans()):
                opts["timeout"] = 1.5
            if draw(st.booleans()):
                opts["fallback"] = f"fb{i}"
        if opts.get("after") and draw(st.integers(0, 3)) == 0 and "fallback" not in opts:
            if draw(st.booleans()):
                opts["loop"] = {"to": draw(st.sampled_from(opts["after"])), "max": 2, "p": 0.5}
            else:
                opts["map"] = {"over": opts["after"][0], "max": draw(st.integers(1, 3))}
        b.step(sid, kind="chat", **opts)
        if "fallback" in opts:
            b.step(f"fb{i}", kind="tool", latency=0.1)
        ids.append(sid)
    if draw(st.booleans()):
        b.step("router", kind="classify", after=[ids[-1]], latency=0.01,
               route=[{"to": "x", "p": 0.3, "when": "x"}, {"to": "y", "p": 0.7, "when": "y"}])
        b.step("x", kind="tool", latency=0.2)
        b.step("y", kind="tool", latency={"dist": "exponential", "mean": 0.3})
        b.step("merge", kind="python", after_any=["x", "y"])
    try:
        return b.build()
    except SpecError:
        from hypothesis import reject

        reject()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(workflows(), st.integers(0, 2**16))
def test_every_case_ends_and_both_clocks_agree(wf: Workflow, seed: int) -> None:
    n = 60
    fast = simulate(wf, cases=n, load=Load.poisson(2.0), seed=seed, warmup=0)
    assert fast.unfinished == 0, "a sound workflow never strands a case"
    assert fast.cases + fast.failed == n
    if all(s.failure_rate == 0 and s.timeout is None for s in wf.steps):
        assert fast.failed == 0
    assert all(0 <= u <= 1 + 1e-9 for u in fast.utilization.values())
    assert (fast.latencies >= 0).all() and (fast.costs >= 0).all()
    if not any(s.fallback for s in wf.steps):  # failed attempts are free, so only a fallback can make a case cost 0
        assert (fast.costs >= 0.001 - 1e-12).all()  # at least one paid call per completed case
    kernel = simulate(wf, cases=n, load=Load.poisson(2.0), seed=seed, warmup=0, backend="simpy")
    np.testing.assert_array_equal(fast.latencies, kernel.latencies)
    assert fast.to_json() == kernel.to_json()
