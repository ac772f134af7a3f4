"""Stubborn-set deadlock search against a plain BFS, closed forms and the MCC deadlock oracle.

The oracle for random nets is a dozen-line BFS over tuples that shares no code
with the reduced search: a reduction must never change a deadlock verdict,
and every trace must replay to a marking that really is dead.
"""

from __future__ import annotations

import _conformance as conformance
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petriflow.errors import InputError
from petriflow.net.petrinet import PetriNet
from petriflow.verify.reduced import (
    ReducedResult,
    TerminationResult,
    find_deadlock,
    find_infinite_run,
)

from ._nets import ROOT, nets, random_nets


def assert_dead_trace(net: PetriNet, r: ReducedResult) -> np.ndarray:
    assert r.deadlock and r.complete and r.trace is not None and r.marking is not None
    m = net.replay(r.trace)
    assert np.array_equal(m, r.marking)
    assert not net.enabled(m).any()
    return m


# -- tiny nets ----------------------------------------------------------------------
def test_sequence_ends_dead_and_final_check_excuses_it() -> None:
    net = PetriNet.from_arcs(places={"a": 1, "b": 0, "c": 0}, transitions=["t", "u"],
                             arcs=[("a", "t", 1), ("t", "b", 1), ("b", "u", 1), ("u", "c", 1)])
    r = find_deadlock(net)
    assert r.trace == ["t", "u"]
    assert_dead_trace(net, r)
    r = find_deadlock(net, final_check=lambda m: bool(m[2] == 1))
    assert (r.deadlock, r.complete, r.dead_final, r.trace) == (False, True, 1, None)


def test_starved_and_join_is_a_deadlock() -> None:
    # a choice sends the token one way, the join waits for both: the broken QA router in small
    net = PetriNet.from_arcs(
        places={"s": 1, "x": 0, "y": 0, "end": 0}, transitions=["left", "right", "join"],
        arcs=[("s", "left", 1), ("left", "x", 1), ("s", "right", 1), ("right", "y", 1),
              ("x", "join", 1), ("y", "join", 1), ("join", "end", 1)])
    r = find_deadlock(net, final_check=lambda m: bool(m[3] == 1))
    m = assert_dead_trace(net, r)
    assert m[3] == 0 and r.trace in (["left"], ["right"])


def test_live_loop_has_no_deadlock() -> None:
    net = PetriNet.from_arcs(places={"a": 1, "b": 0}, transitions=["go", "back"],
                             arcs=[("a", "go", 1), ("go", "b", 1), ("b", "back", 1), ("back", "a", 1)])
    r = find_deadlock(net)
    assert (r.deadlock, r.complete, r.states_visited, r.stop_reason) == (False, True, 2, None)


def test_budget_stops_an_unbounded_net_and_says_so() -> None:
    net = PetriNet.from_arcs(places={"a": 1, "b": 0}, transitions=["t"],
                             arcs=[("a", "t", 1), ("t", "a", 1), ("t", "b", 1)])
    r = find_deadlock(net, max_states=50)
    assert (r.deadlock, r.complete, r.stop_reason, r.states_visited) == (False, False, "max_states", 50)
    with pytest.raises(InputError):
        find_deadlock(net, max_states=0)


def test_memory_budget_and_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    net = PetriNet.from_arcs(places={"a": 1, "b": 0}, transitions=["t"],
                             arcs=[("a", "t", 1), ("t", "a", 1), ("t", "b", 1)])
    r = find_deadlock(net, max_bytes=200_000)
    assert (r.deadlock, r.complete, r.stop_reason) == (False, False, "max_bytes")
    assert 1024 <= r.states_visited < 200_000
    t = find_infinite_run(net, max_bytes=200_000)
    assert (t.terminates, t.complete, t.stop_reason) == (False, False, "max_bytes")
    r = find_deadlock(nets.fork_join(3), progress=True)
    assert r.deadlock and "reduced search" in capsys.readouterr().err
    with pytest.raises(InputError):
        find_deadlock(net, max_bytes=0)


def test_markings_widen_past_small_integer_types() -> None:
    # 40_000 tokens move one by one: the stored markings must widen int8 -> int16 -> int32
    net = PetriNet.from_arcs(places={"a": 40_000, "b": 0}, transitions=["t"], arcs=[("a", "t", 1), ("t", "b", 1)])
    r = find_deadlock(net)
    m = assert_dead_trace(net, r)
    assert m.tolist() == [0, 40_000] and r.states_visited == 40_001


# -- closed forms: the reduction is linear where the full space is exponential ------
@pytest.mark.parametrize("k", [1, 4, 16])
def test_fork_join_is_linear_in_the_branches(k: int) -> None:
    net = nets.fork_join(k)
    end = net.place_index("end")
    r = find_deadlock(net)
    m = assert_dead_trace(net, r)
    assert m[end] == 1
    r = find_deadlock(net, final_check=lambda m: bool(m[end] == 1))
    assert (r.deadlock, r.complete, r.dead_final) == (False, True, 1)
    assert r.states_visited <= 3 * k + 3 < nets.expected_states("fork_join", k) or k == 1


@pytest.mark.parametrize("n", [2, 5, 100])
def test_philosophers_deadlock_is_found_with_few_states(n: int) -> None:
    net = nets.philosophers(n)
    r = find_deadlock(net, max_states=10 * n)
    m = assert_dead_trace(net, r)
    # the only dead marking: everybody holds the left fork
    assert all(m[net.place_index(f"left{i}")] == 1 for i in range(n))


def test_token_ring_and_producer_consumer_never_deadlock() -> None:
    for net in (nets.token_ring(8), nets.producer_consumer(5)):
        r = find_deadlock(net)
        assert (r.deadlock, r.complete) == (False, True)
        assert r.states_visited <= nets.expected_states(net.name.split("(")[0], int(net.name[:-1].split("(")[1]))


# -- differential: reductions never change a deadlock verdict -----------------------
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_nets(transitions=(1, 6)), st.integers(0, 4))
def test_reduction_keeps_the_deadlock_verdict(net: PetriNet, final_place: int) -> None:
    reach = nets.bfs(net, 3000)
    if not reach.complete:
        return  # an unbounded (or huge) net: no oracle
    final_place %= len(net.places)
    dead = reach.dead_markings()

    def final(m) -> bool:  # type: ignore[no-untyped-def]
        return int(m[final_place]) > 0

    r = find_deadlock(net)
    assert r.complete and r.deadlock == bool(dead)
    if r.deadlock:
        assert tuple(int(x) for x in assert_dead_trace(net, r)) in dead
    r = find_deadlock(net, final_check=final)
    expected = [m for m in dead if m[final_place] == 0]
    assert r.complete and r.deadlock == bool(expected)
    if r.deadlock:
        assert tuple(int(x) for x in assert_dead_trace(net, r)) in expected
    assert r.states_visited <= 3000
    everything = find_deadlock(net, final_check=lambda m: True)
    assert everything.complete and everything.dead_final == len(dead)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_nets(places=(1, 9), transitions=(1, 9)))
def test_reduction_keeps_the_verdicts_on_larger_nets(net: PetriNet) -> None:
    reach = nets.bfs(net, 5000)
    if not reach.complete:
        return
    dead = reach.dead_markings()
    r = find_deadlock(net)
    assert r.complete and r.deadlock == bool(dead)
    if r.deadlock:
        assert tuple(int(x) for x in assert_dead_trace(net, r)) in dead
    # every dead marking is preserved, not just one: excuse them all and count
    everything = find_deadlock(net, final_check=lambda m: True)
    assert everything.complete and not everything.deadlock and everything.dead_final == len(dead)
    t = find_infinite_run(net)
    assert t.complete and t.terminates == (not reach.has_cycle())


# -- termination: a run that never ends ----------------------------------------------
def assert_lasso(net: PetriNet, r: TerminationResult) -> None:
    assert not r.terminates and r.complete and r.prefix is not None and r.cycle
    m = net.replay(r.prefix)
    assert np.array_equal(net.replay(r.cycle, m), m)


def test_termination_on_families() -> None:
    r = find_infinite_run(nets.fork_join(12))
    assert (r.terminates, r.complete, r.cycle) == (True, True, None)
    assert r.states_visited <= 3 * 12 + 3
    for net in (nets.token_ring(6), nets.producer_consumer(3), nets.philosophers(5)):
        assert_lasso(net, find_infinite_run(net))
    loop = PetriNet.from_arcs(places={"a": 1}, transitions=["spin"], arcs=[("a", "spin", 1), ("spin", "a", 1)])
    r = find_infinite_run(loop)
    assert (r.prefix, r.cycle) == ([], ["spin"])
    grow = PetriNet.from_arcs(places={"a": 1, "b": 0}, transitions=["t"], arcs=[("a", "t", 1), ("t", "a", 1), ("t", "b", 1)])
    r = find_infinite_run(grow, max_states=20)
    assert (r.terminates, r.complete, r.stop_reason) == (False, False, "max_states")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_nets(transitions=(1, 6)))
def test_reduction_keeps_the_termination_verdict(net: PetriNet) -> None:
    reach = nets.bfs(net, 3000)
    if not reach.complete:
        return
    cyclic = reach.has_cycle()
    r = find_infinite_run(net)
    assert r.complete and r.terminates == (not cyclic)
    if cyclic:
        assert_lasso(net, r)


# -- the MCC oracle ------------------------------------------------------------------
def test_conformance_deadlock_verdicts_by_reduction() -> None:
    from petriflow.net.pnml import read_pnml

    answered = 0
    for row in conformance.rows():
        if int(row["transitions"]) > 400:  # TokenRing-PT-015: the per-state cost grows with T
            continue
        net = read_pnml(conformance.path(row["model"]))
        r = find_deadlock(net, max_states=100_000)
        if not r.complete:
            assert not r.deadlock
            continue
        answered += 1
        assert r.deadlock == (row["deadlock"] == "true"), row["model"]
        if r.deadlock:
            assert_dead_trace(net, r)
    assert answered >= 25


# -- workflows: the broken QA router -----------------------------------------------------
def _router(name: str):  # type: ignore[no-untyped-def]
    from petriflow.net.lower import lower
    from petriflow.spec import loads

    return lower(loads((ROOT / "models" / f"{name}.yaml").read_text()))


def test_broken_qa_router_deadlocks_with_a_witness_in_steps() -> None:
    net = _router("qa_router_broken")
    r = find_deadlock(net, final_check=net.is_final)
    m = assert_dead_trace(net, r)
    assert not net.is_final(m)
    story = net.tell(r.trace)
    assert story[0] == "the workflow starts" and any("finishes and chooses" in s for s in story)
    assert r.states_visited < 50


def test_qa_router_has_no_deadlock_and_terminates() -> None:
    net = _router("qa_router")
    r = find_deadlock(net, final_check=net.is_final)
    assert (r.deadlock, r.complete) == (False, True) and r.dead_final >= 1
    reach = nets.bfs(net, 100_000)
    dead = reach.dead_markings()
    assert reach.complete and dead and all(net.is_final(np.array(m)) for m in dead)
    t = find_infinite_run(net)
    assert t.terminates == (not reach.has_cycle())
