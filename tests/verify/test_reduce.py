"""Structural reduction keeps every verdict, and its witnesses replay on the net the user wrote.

The oracle is the full search of the unreduced net (``check(reduce=False)``):
over random workflows (routes into AND-joins that deadlock, loops, maps,
retries, fallbacks, steps sharing resources) and random P/T nets, ``check(reduce=True)`` must give
the same deadlock, boundedness, liveness and soundness verdicts and the
same dead transitions wherever the full search finishes, and every witness
it prints must fire on the original net and end where it says.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from petriflow.errors import SpecError
from petriflow.net.lower import lower
from petriflow.net.petrinet import PetriNet, WorkflowNet
from petriflow.net.reduce import reduce_net
from petriflow.spec import WorkflowBuilder
from petriflow.spec.model import Workflow
from petriflow.verify.report import Report, check
from petriflow.verify.statespace import explore

from ._nets import random_nets
from .test_words import workflows

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _same_verdicts(net: PetriNet, full: Report, red: Report) -> None:
    assert red.deadlock == full.deadlock
    assert red.bounded == full.bounded
    assert red.live == full.live
    assert red.sound == full.sound
    if red.bound is not None:
        assert red.bound == full.bound and red.safe == full.safe
    if full.dead_transitions is not None and red.dead_transitions is not None:
        assert set(red.dead_transitions) == set(full.dead_transitions)


def _witnesses_replay(net: PetriNet, red: Report) -> None:
    for w in red.witnesses:
        if not w.trace:
            continue
        m = net.replay(w.trace)  # raises if some step is not enabled on the original net
        assert {net.place_labels[i]: int(m[i]) for i in np.flatnonzero(m)} == w.marking
        if w.property == "deadlock":
            assert not net.enabled(m).any() and not net.is_final(m)
    if red.deadlock_trace is not None:
        m = net.replay(red.deadlock_trace)
        assert not net.enabled(m).any() and not net.is_final(m)


@st.composite
def wide_workflows(draw: st.DrawFn) -> Workflow:
    """Parallel maps with retries, a router into answerers, a chain: the shapes the reductions are for."""
    b = WorkflowBuilder("wide")
    b.step("plan", kind="tool")
    maps = [f"m{i}" for i in range(draw(st.integers(1, 2)))]
    for m in maps:
        opts: dict[str, object] = {"map": {"over": "plan", "max": draw(st.integers(1, 3))}}
        if draw(st.booleans()):
            opts["retry"] = {"max_attempts": draw(st.integers(2, 3))}
        b.step(m, kind="chat", prompt="x", after=["plan"], **opts)
    ways = [f"a{i}" for i in range(draw(st.integers(2, 3)))]
    b.step("route", kind="classify", after=maps, route={w: 1 / len(ways) for w in ways})
    for w in ways:
        b.step(w, kind="chat", prompt="x", **({"retry": {"max_attempts": 2}} if draw(st.booleans()) else {}))
    join = {"after": ways} if draw(st.booleans()) else {"after_any": ways}  # an AND-join after a route deadlocks
    b.step("join", kind="python", **join)
    prev = "join"
    for i in range(draw(st.integers(0, 3))):
        b.step(f"c{i}", kind="tool", after=[prev])
        prev = f"c{i}"
    return b.build()


@st.composite
def resource_workflows(draw: st.DrawFn) -> Workflow:
    """Steps sharing one or two resources, most with retries: chains, where a resource never binds (the
    free-resource rule applies), fan-outs and maps, where it binds unless its capacity covers them (the rule
    must then keep it), routes into joins, fallbacks."""
    b = WorkflowBuilder("shared")
    caps = draw(st.lists(st.integers(1, 3), min_size=1, max_size=2))
    for k, c in enumerate(caps):
        b.resource(f"r{k}", capacity=c)
    ids: list[str] = []
    for i in range(draw(st.integers(1, 4))):
        sid = f"s{i}"
        opts: dict[str, object] = {}
        if ids and draw(st.integers(0, 3)):  # else it starts beside the first steps, from `begin`
            opts["after"] = draw(st.lists(st.sampled_from(ids), unique=True, min_size=1, max_size=2))
        used = draw(st.lists(st.integers(0, len(caps) - 1), unique=True, max_size=2))
        if used:
            opts["uses"] = {f"r{k}": draw(st.integers(1, caps[k])) for k in used}
        if draw(st.integers(0, 3)):
            opts["retry"] = {"max_attempts": draw(st.integers(2, 3))}
            if draw(st.integers(0, 3)) == 0:
                opts["fallback"] = f"fb{i}"
        if opts.get("after") and "fallback" not in opts and draw(st.integers(0, 3)) == 0:
            opts["map"] = {"over": opts["after"][0], "max": draw(st.integers(1, 2))}  # type: ignore[index]
        b.step(sid, kind="tool", **opts)
        if "fallback" in opts:
            b.step(f"fb{i}", kind="tool", **({"uses": opts["uses"]} if used and draw(st.booleans()) else {}))
        ids.append(sid)
    if draw(st.integers(0, 2)) == 0:
        b.step("router", kind="classify", after=[ids[-1]], route={"x": 0.5, "y": 0.5}, uses={"r0": 1})
        b.step("x", kind="tool", uses={"r0": 1}, retry={"max_attempts": 2}).step("y", kind="tool")
        join = {"after": ["x", "y"]} if draw(st.booleans()) else {"after_any": ["x", "y"]}
        b.step("join", kind="python", **join)
    try:
        return b.build()
    except SpecError:
        reject()


def _differential(net: PetriNet) -> None:
    full = check(net, reduce=False, max_states=200_000)
    if not full.complete:
        return
    red = check(net, reduce=True, max_states=200_000)
    _same_verdicts(net, full, red)
    _witnesses_replay(net, red)
    dl_full = check(net, properties=("deadlock",), reduce=False)
    dl_red = check(net, properties=("deadlock",), reduce=True)
    assert dl_red.deadlock == dl_full.deadlock == full.deadlock
    _witnesses_replay(net, dl_red)


@SETTINGS
@given(workflows())
def test_reduced_and_full_agree_on_random_workflows(wf: Workflow) -> None:
    _differential(lower(wf))


@SETTINGS
@given(wide_workflows())
def test_reduced_and_full_agree_on_wide_workflows(wf: Workflow) -> None:
    _differential(lower(wf))


@SETTINGS
@given(resource_workflows())
def test_reduced_and_full_agree_on_workflows_sharing_resources(wf: Workflow) -> None:
    _differential(lower(wf))


@SETTINGS
@given(random_nets(places=(1, 6), transitions=(1, 6), sparse=True) | random_nets(places=(1, 4), transitions=(1, 5)))
def test_reduced_and_full_agree_on_random_nets(net: PetriNet) -> None:
    _differential(net)


@SETTINGS
@given(workflows() | resource_workflows())
def test_every_reachable_marking_of_the_reduced_net_is_reachable_in_the_original(wf: Workflow) -> None:
    net = lower(wf)
    red = reduce_net(net)
    space = explore(red.net, max_states=50_000)
    original = explore(net, max_states=500_000)
    if not (space.complete and original.complete):
        return
    keep = [net.place_index(p) for p in red.net.places]
    seen = {tuple(original.marking(i)[keep]) for i in range(original.n_states)}
    for i in range(space.n_states):
        assert tuple(space.marking(i)) in seen
        trace = red.expand(space.path_to(i))
        assert tuple(net.replay(trace)[keep]) == tuple(space.marking(i))


def test_the_issues_shapes_shrink_to_a_handful_of_nodes() -> None:
    b = WorkflowBuilder("maps")
    b.step("plan", kind="tool")
    for i in range(3):
        b.step(f"m{i}", kind="chat", prompt="x", after=["plan"], map={"over": "plan", "max": 50},
               retry={"max_attempts": 2})
    b.step("merge", kind="python", after=["m0", "m1", "m2"])
    net = lower(b.build())
    red = reduce_net(net)
    assert len(red.net.transitions) <= 3 < len(net.transitions)
    report = check(net)
    assert report.reduced_net is not None
    assert (report.deadlock, report.bounded, report.sound, report.live) == (False, True, True, True)


def test_a_deadlock_behind_a_long_chain_is_told_in_the_original_steps() -> None:
    b = WorkflowBuilder("late")
    prev: list[str] = []
    for i in range(40):
        b.step(f"s{i}", kind="tool", **({"after": prev} if prev else {}))
        prev = [f"s{i}"]
    b.step("route", kind="classify", after=prev, route={"x": 0.5, "y": 0.5})
    b.step("x", kind="tool").step("y", kind="tool").step("join", kind="python", after=["x", "y"])
    net = lower(b.build())
    assert isinstance(net, WorkflowNet)
    report = check(net, reduce=True)
    assert report.deadlock is True and report.sound is False and report.reduced_net is not None
    (w,) = [w for w in report.witnesses if w.property == "deadlock"]
    assert w.trace[0] == "begin" and "s39.finish" in w.trace and len(w.trace) > 80
    assert any("join" in line for line in w.stuck)
    m = net.replay(w.trace)
    assert not net.enabled(m).any()
