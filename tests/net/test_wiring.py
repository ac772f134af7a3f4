"""The wiring lower() writes next to the net: it covers the net, once, and says what the arcs say.

What is covered: every transition belongs to exactly one step record or is
the net's begin or end; every place belongs to at most one step record, and
a place no step owns is the source, the sink, a resource or a link (a
dependency or join place between steps). Each role is checked against the
net's arcs (a fail consumes the running place and a retry budget token, a
collect-k consumes k tokens of done, ...), over the example models, a few
hand-made corner cases, and the random workflows of the simulator's and the
executor's property tests (their strategies are imported, not copied; pytest
puts ``tests/`` on the path, so they are ``simulate.`` and ``execute.`` modules).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from execute.test_replay_property import workflows as executed_documents
from hypothesis import HealthCheck, given, settings
from simulate.test_random_workflows import workflows as simulated_workflows

from petriflow.errors import NetError
from petriflow.net.lower import lower
from petriflow.net.petrinet import WorkflowNet
from petriflow.net.pnml import read_pnml, to_pnml_string
from petriflow.net.wiring import EntryKind, Link, NetWiring, PlaceRole, StepWiring, TransitionRole, Way
from petriflow.spec import WorkflowBuilder, from_document, load
from petriflow.spec.model import Workflow

MODELS = sorted(p for p in (Path(__file__).resolve().parents[2] / "models").glob("*.yaml")
                if not p.name.endswith(".profile.yaml"))
T = TransitionRole
ECHO = "petriflow.execute.builtins:echo"


def _corner_cases() -> dict[str, Workflow]:
    """Shapes the random strategies rarely or never draw."""
    def b(name: str) -> WorkflowBuilder:
        return WorkflowBuilder(name).resource("r", capacity=2)

    return {
        # a map that a loop re-enters: its spawns come in two ways, each with its own group of k
        "map_loop_target": b("mlt").step("src", kind="python", function=ECHO)
        .step("each", kind="python", after=["src"], map={"over": "src", "max": 2}, uses=["r"],
              retry={"max_attempts": 3})
        .step("check", kind="python", after=["each"], loop={"to": "each", "max": 2}).build(),
        # a fallback chain standing in for a map item: both finish into the map's done place
        "map_fallbacks": b("mfb").step("src", kind="python")
        .step("each", kind="python", after=["src"], map={"over": "src", "max": 3}, fallback="fb1")
        .step("fb1", kind="python", fallback="fb2", uses={"r": 2}).step("fb2", kind="python").build(),
        # a fallback of a looping router finishes as its owner: branches and the owner's loop budget
        "looping_router_fallback": b("lrf").step("a", kind="python")
        .step("pick", kind="python", after=["a"], fallback="pick_fb", retry={"max_attempts": 2},
              route=[{"to": "x", "p": 0.5, "when": "xy", "name": "x y"}, {"to": "y", "p": 0.5, "when": "x_y"}],
              loop={"to": "a", "max": 3, "exhausted": "x y"})
        .step("pick_fb", kind="python").step("x", kind="python").step("y", kind="python").build(),
    }


CORNERS = _corner_cases()


def check_wiring(net: WorkflowNet, wf: Workflow) -> None:
    """Every assertion of the module docstring, on one lowered net."""
    w = net.require_wiring()
    assert list(w.steps) == list(wf.step_ids)
    # coverage: each transition once, each place at most once per step record, the rest is net-level glue
    owned_t = Counter(t for sw in w.steps.values() for t, _ in sw.transitions())
    assert all(n == 1 for n in owned_t.values())
    assert set(owned_t) | {w.begin, w.end} == set(net.transitions) and not owned_t.keys() & {w.begin, w.end}
    owned_p = Counter(p for sw in w.steps.values() for p, _ in sw.places())
    assert all(n == 1 for n in owned_p.values())
    glue = {w.source, w.sink, *w.resources.values(), *w.links}
    assert set(owned_p) | glue == set(net.places) and not owned_p.keys() & glue
    for sid, sw in w.steps.items():
        assert all(w.role_of(t) is role and w.step_of(t) == sid for t, role in sw.transitions())
        assert all(w.place_role(p) is role and w.step_of(p) == sid for p, role in sw.places())
    assert net.budgets == tuple(p for p in net.places if p in w.budgets)
    assert net.resources == tuple(w.resources.values())
    # net-level roles against the arcs
    assert net.preset(w.begin) == {w.source: 1} and net.postset(w.end) == {w.sink: 1}
    for rid, p in w.resources.items():
        assert int(net.initial[net.place_index(p)]) == wf.resources[rid].capacity
    for link in w.links.values():
        _check_link(net, w, wf, link)
    for sw in w.steps.values():
        _check_step(net, w, wf, sw)


def _check_link(net: WorkflowNet, w: NetWiring, wf: Workflow, link: Link) -> None:
    """A link is consumed by its target's starts (or end) and filled by the steps it names (or begin)."""
    consumers = {t for t in net.transitions if link.place in net.preset(t)}
    if link.into is None:
        assert consumers == {w.end}
    else:
        starts = {s.transition for s in w.steps[link.into].starts if s.way.kind is EntryKind.INPUTS}
        assert consumers == starts, link
    producers = {t for t in net.transitions if link.place in net.postset(t)}
    assert producers, link
    for t in producers:  # begin, a step it names (or a fallback standing in), or a loop handing it out again
        owner = w.step_of(t)
        if owner is None:
            assert t == w.begin and not link.from_steps, link
        else:
            assert wf.root_of(owner) in link.from_steps or w.role_of(t) is T.LOOP_BACK, (link, t)


def _check_step(net: WorkflowNet, w: NetWiring, wf: Workflow, sw: StepWiring) -> None:
    step, root = wf.step(sw.step), wf.step(wf.root_of(sw.step))
    uses = {w.resources[r]: n for r, n in step.uses.items()}
    run = {sw.running: 1}
    # what may touch the running place: the attempts put the token there, the ends of an attempt take it
    ends = {f.transition for f in sw.finishes}
    ends |= {sw.retry.fail} if sw.retry else set()
    ends |= {sw.give_up.transition} if sw.give_up else set()
    ends |= {sw.map.item_finish} if sw.map else set()
    assert {t for t in net.transitions if sw.running in net.postset(t)} == set(sw.attempts)
    assert {t for t in net.transitions if sw.running in net.preset(t)} == ends
    for s in sw.starts:
        pre = net.preset(s.transition)
        if s.way.kind is EntryKind.INPUTS:
            assert all(w.place_role(p) in (PlaceRole.DEPENDENCY, PlaceRole.JOIN, PlaceRole.RESOURCE) for p in pre)
        else:
            assert s.way.place in pre and w.step_of(s.way.place or "") == s.way.via
            if s.way.kind is EntryKind.LOOP:
                via = w.steps[s.way.via or ""]
                assert via.loop is not None and via.loop.to == sw.step and via.loop.entry == s.way.place
            else:
                giver = w.steps[s.way.via or ""]
                assert giver.give_up is not None and giver.give_up.handover == s.way.place
        if sw.map is None:
            assert s.role is T.START and net.postset(s.transition) == run
            assert {p: n for p, n in pre.items() if p in w.resources.values()} == uses
        else:
            assert s.role is T.SPAWN and isinstance(s.items, int)
            assert net.postset(s.transition) == {sw.map.items: s.items, sw.map.counts[s.items]: 1}
    if sw.map is not None:
        assert step.map is not None
        k = list(range(1, step.map.max + 1))
        assert sorted(sw.map.counts) == sorted(sw.map.collects) == k
        for way in {s.way for s in sw.starts}:  # each way in spawns every k once
            assert sorted(s.items for s in sw.starts if s.way == way) == k
        assert net.preset(sw.map.item_start) == {sw.map.items: 1, **uses}
        assert net.postset(sw.map.item_finish) == {sw.map.done: 1, **uses}
        for n, t in sw.map.collects.items():
            assert net.preset(t) == {sw.map.counts[n]: 1, sw.map.done: n}
    labels = []
    for f in sw.finishes:
        pre, post = net.preset(f.transition), net.postset(f.transition)
        if f.role is T.LOOP_BACK:
            assert f.loop is not None and root.loop is not None and f.loop.step == root.id
            assert pre == {**run, f.loop.budget: 1} and post[f.loop.entry] == 1
            assert int(net.initial[net.place_index(f.loop.budget)]) == root.loop.max
        else:
            assert pre == run
            assert {p: n for p, n in post.items() if p in w.resources.values()} == uses
        if f.role is T.ROUTE:
            labels.append(f.label)
            branch = next(b for b in root.route if b.when == f.label)
            assert any(w.links[p].into == branch.to for p in post if p in w.links)
    if sw.map is None:
        assert labels == [b.when for b in root.route]
    else:
        assert not sw.finishes and not root.route and root.loop is None  # a map finishes by its collects
    assert (sw.loop is not None) == (step.loop is not None)
    if sw.retry is not None:
        r = sw.retry
        assert step.retry.max_attempts > 1
        assert net.preset(r.fail) == {**run, r.budget: 1} and net.postset(r.fail) == {r.backoff: 1, **uses}
        assert net.preset(r.retry) == {r.backoff: 1, **uses} and net.postset(r.retry) == run
    else:
        assert step.retry.max_attempts == 1
    if sw.give_up is not None:
        g = sw.give_up
        assert g.to == step.fallback and net.preset(g.transition) == run
        assert net.postset(g.transition) == {g.handover: 1, **uses}
        assert [s.way for s in w.steps[g.to].starts] == [Way(EntryKind.FALLBACK, sw.step, g.handover)]
    else:
        assert step.fallback is None


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_the_example_models_are_wired_exactly(path: Path) -> None:
    wf = load(path)
    _wired(wf)


@pytest.mark.parametrize("name", sorted(CORNERS))
def test_corner_cases_are_wired_exactly(name: str) -> None:
    _wired(CORNERS[name])


def _wired(wf: Workflow) -> None:
    check_wiring(lower(wf), wf)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(simulated_workflows())
def test_random_simulated_workflows_are_wired_exactly(wf: Workflow) -> None:
    _wired(wf)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(executed_documents())
def test_random_executed_workflows_are_wired_exactly(doc: Any) -> None:
    _wired(from_document(doc))


def test_a_map_loop_target_spawns_in_groups_and_its_roles_have_ints() -> None:
    w = lower(CORNERS["map_loop_target"]).require_wiring()
    each = w.steps["each"]
    assert [(s.way.kind, s.items) for s in each.starts] == [(EntryKind.INPUTS, 1), (EntryKind.INPUTS, 2),
                                                           (EntryKind.LOOP, 1), (EntryKind.LOOP, 2)]
    assert each.map is not None and dict(each.map.collects) == {1: "each.collect1", 2: "each.collect2"}
    assert w.role_of("each.spawn2_loop.check") is T.SPAWN and w.place_role("each.n2") is PlaceRole.COUNT
    assert w.step_of("each.loop_from.check") == "check"  # owned by the loop, entered by its target


def test_route_labels_that_sanitise_alike_keep_their_own_transition() -> None:
    w = lower(CORNERS["looping_router_fallback"]).require_wiring()
    pick, fb = w.steps["pick"], w.steps["pick_fb"]
    assert [(f.label, f.transition) for f in pick.finishes if f.role is T.ROUTE] == [
        ("x y", "pick.choose.x_y"), ("x_y", "pick.choose.x_y2")]
    assert [f.role for f in fb.finishes] == [T.ROUTE, T.ROUTE, T.LOOP_BACK] and fb.loop is None
    assert fb.finishes[-1].loop == pick.loop  # the fallback takes its owner's loop budget


def test_a_net_read_from_pnml_has_no_wiring_and_cannot_be_planned() -> None:
    wf = load(MODELS[0].with_name("qa_router.yaml"))
    back = read_pnml(to_pnml_string(lower(wf)))
    assert isinstance(back, WorkflowNet) and back.wiring is None and back == lower(wf)
    with pytest.raises(NetError, match="no wiring"):
        back.require_wiring()
    from petriflow.execute import plan

    with pytest.raises(NetError, match="no wiring"):
        plan(wf, net=back, report=SimpleNamespace(sound=True))


def test_a_wiring_must_cover_its_net_and_name_each_node_once() -> None:
    a, b = lower(CORNERS["map_fallbacks"]), lower(CORNERS["map_loop_target"])
    with pytest.raises(NetError, match=r"no role in the wiring|which the net does not have"):
        dataclasses.replace(a, wiring=b.wiring)
    w = a.require_wiring()
    twice = dict(w.links)
    twice[w.steps["each"].running] = Link(w.steps["each"].running, PlaceRole.DEPENDENCY, "each", ("src",))
    with pytest.raises(NetError, match="wired twice"):
        dataclasses.replace(w, links=twice)
    with pytest.raises(NetError, match="not wired"):
        w.role_of("no.such.transition")
    with pytest.raises(NetError):
        Way(EntryKind.LOOP, "check")  # a loop way names its entry place
