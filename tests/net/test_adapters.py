"""networkx and SNAKES adapters; SNAKES as an independent oracle for reachable markings."""

from __future__ import annotations

from collections import deque

import _conformance as conformance
import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from snakes.nets import Expression, MultiArc, Place, Transition, Value, Variable, dot
from snakes.nets import PetriNet as SnakesNet

from petriflow.errors import BudgetExceeded, NetError
from petriflow.net.adapters import from_snakes, snakes_reachable_markings, to_networkx, to_snakes
from petriflow.net.petrinet import Origin, PetriNet, WorkflowNet
from petriflow.net.pnml import read_pnml


def bfs_markings(net: PetriNet, limit: int) -> set[tuple[int, ...]] | None:
    """Reachable markings by PetriNet.fire; None when more than ``limit`` exist."""
    start = tuple(net.initial.tolist())
    seen = {start}
    queue = deque([start])
    while queue:
        m = np.array(queue.popleft(), dtype=np.int64)
        for t in net.enabled_ids(m):
            nxt = tuple(net.fire(m, t).tolist())
            if nxt not in seen:
                seen.add(nxt)
                if len(seen) > limit:
                    return None
                queue.append(nxt)
    return seen


@st.composite
def small_nets(draw: st.DrawFn, max_places: int = 4, max_transitions: int = 4) -> PetriNet:
    n_p = draw(st.integers(1, max_places))
    n_t = draw(st.integers(0, max_transitions))
    cell = st.sampled_from([0, 0, 0, 1, 1, 2, 3])
    pre = np.array(draw(st.lists(cell, min_size=n_p * n_t, max_size=n_p * n_t)), dtype=np.int64).reshape(n_t, n_p)
    post = np.array(draw(st.lists(cell, min_size=n_p * n_t, max_size=n_p * n_t)), dtype=np.int64).reshape(n_t, n_p)
    initial = np.array(draw(st.lists(st.integers(0, 3), min_size=n_p, max_size=n_p)), dtype=np.int64)
    return PetriNet(
        places=tuple(f"p{i}" for i in range(n_p)), transitions=tuple(f"t{i}" for i in range(n_t)),
        pre=pre, post=post, initial=initial, name="random",
    )


# -- networkx -----------------------------------------------------------------
def test_networkx_graph_is_the_bipartite_net() -> None:
    net = PetriNet.from_arcs(
        places={"a": 2, "b": 0}, transitions=["t", "u"],
        arcs=[("a", "t", 2), ("t", "b", 1), ("b", "u", 1), ("u", "a", 3), ("b", "t", 1)],
        place_labels={"a": "A"},
    )
    g = to_networkx(net)
    assert nx.is_bipartite(g)
    assert {n: d["kind"] for n, d in g.nodes(data=True)} == {"a": "place", "b": "place", "t": "transition", "u": "transition"}
    assert g.nodes["a"]["tokens"] == 2 and g.nodes["a"]["label"] == "A" and g.nodes["b"]["tokens"] == 0
    assert {(s, d): w for s, d, w in g.edges(data="weight")} == {(s, d): w for s, d, w in net.arcs()}
    assert g.has_edge("b", "t") and g.has_edge("t", "b")  # a self-loop becomes two opposite edges


def test_networkx_workflow_net_carries_origins() -> None:
    wf = WorkflowNet(
        places=("i", "o"), transitions=("run",), pre=[[1, 0]], post=[[0, 1]], initial=[1, 0], name="wf",
        source="i", sink="o",
        origins={"i": Origin("begin", role="source"), "o": Origin("end", role="sink"),
                 "run": Origin("step", step="classify", role="start")},
    )
    g = to_networkx(wf)
    assert g.nodes["run"]["step"] == "classify" and g.nodes["run"]["construct"] == "step"
    assert g.nodes["i"]["construct"] == "begin" and g.nodes["i"]["step"] is None
    assert (g.graph["source"], g.graph["sink"]) == ("i", "o")


# -- SNAKES -------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(small_nets())
def test_snakes_round_trip(net: PetriNet) -> None:
    assert from_snakes(to_snakes(net)) == net


@settings(max_examples=60, deadline=None)
@given(small_nets())
def test_snakes_enables_and_fires_like_petriflow(net: PetriNet) -> None:
    """SNAKES' own firing rule agrees with PetriNet.fire, weights included, from the initial marking."""
    snet = to_snakes(net)
    start = snet.get_marking()
    for i, t in enumerate(net.transitions):
        modes = snet.transition(t).modes()
        assert bool(modes) == bool(net.enabled(net.initial)[i])
        if modes:
            snet.transition(t).fire(modes[0])
            got = tuple(len(snet.place(p).tokens) for p in net.places)
            assert got == tuple(net.fire(net.initial, t).tolist())
            snet.set_marking(start)


@settings(max_examples=40, deadline=None)
@given(small_nets(max_places=3, max_transitions=3))
def test_snakes_reachable_markings_equal_bfs(net: PetriNet) -> None:
    """Both explorers agree; and both exceed the limit on exactly the same nets."""
    limit = 60
    expected = bfs_markings(net, limit)
    if expected is None:
        with pytest.raises(BudgetExceeded):
            snakes_reachable_markings(net, limit)
    else:
        assert snakes_reachable_markings(net, limit) == expected


def test_weighted_arcs_under_snakes() -> None:
    """A weight-3 arc needs three tokens in SNAKES too; 7 tokens allow two firings."""
    net = PetriNet.from_arcs(places={"a": 7, "b": 0}, transitions=["t"], arcs=[("a", "t", 3), ("t", "b", 2)])
    assert snakes_reachable_markings(net) == {(7, 0), (4, 2), (1, 4)}


def test_unbounded_net_hits_the_limit() -> None:
    net = PetriNet.from_arcs(places={"a": 1}, transitions=["grow"], arcs=[("a", "grow", 1), ("grow", "a", 2)])
    with pytest.raises(BudgetExceeded, match="more than 25"):
        snakes_reachable_markings(net, 25)


@pytest.mark.parametrize(("model", "states"), [(r["model"], int(r["reachable_states"])) for r in conformance.rows()
                                                if int(r["reachable_states"]) <= 250])
def test_snakes_state_count_matches_mcc_and_bfs(model: str, states: int) -> None:
    net = read_pnml(conformance.path(model))
    found = snakes_reachable_markings(net, 10 * states)
    assert len(found) == states
    assert found == bfs_markings(net, 10 * states)


def test_from_snakes_refuses_non_pt_nets() -> None:
    coloured = SnakesNet("c")
    coloured.add_place(Place("p", [1, 2]))
    with pytest.raises(NetError, match="tokens other than dot"):
        from_snakes(coloured)

    guarded = SnakesNet("g")
    guarded.add_place(Place("p", [dot]))
    guarded.add_transition(Transition("t", Expression("False")))
    with pytest.raises(NetError, match="guard"):
        from_snakes(guarded)

    variable = SnakesNet("v")
    variable.add_place(Place("p", [dot]))
    variable.add_transition(Transition("t"))
    variable.add_input("p", "t", Variable("x"))
    with pytest.raises(NetError, match="only P/T nets"):
        from_snakes(variable)


def test_from_snakes_reads_hand_built_multiarcs() -> None:
    snet = SnakesNet("h")
    snet.add_place(Place("a", [dot] * 4))
    snet.add_place(Place("b"))
    snet.add_transition(Transition("t"))
    snet.add_input("a", "t", MultiArc([Value(dot), Value(dot)]))
    snet.add_output("b", "t", Value(dot))
    net = from_snakes(snet)
    assert net.initial.tolist() == [4, 0] and net.preset("t") == {"a": 2} and net.postset("t") == {"b": 1}


def test_transition_with_empty_preset_is_always_enabled_in_snakes_too() -> None:
    """SNAKES never fires input-less transitions on its own; the adapter's extra place makes it P/T semantics."""
    net = PetriNet.from_arcs(places={"a": 1, "b": 0}, transitions=["noop", "t"], arcs=[("a", "t", 1), ("t", "b", 1)])
    snet = to_snakes(net)
    assert snet.transition("noop").modes()
    assert from_snakes(snet) == net
    assert snakes_reachable_markings(net) == {(1, 0), (0, 1)}
    spring = PetriNet.from_arcs(places={"a": 0}, transitions=["make"], arcs=[("make", "a", 1)])
    with pytest.raises(BudgetExceeded):
        snakes_reachable_markings(spring, 10)
