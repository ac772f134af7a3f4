"""Coverability against a plain BFS: bounded verdicts, exact bounds, and pumping witnesses that really pump.

When the BFS finishes, the net is bounded and the coverability bounds must be
the BFS maxima; when coverability says unbounded, its witness must replay
and strictly grow, and the BFS must not finish.
"""

from __future__ import annotations

import _conformance as conformance
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from petriflow.errors import BudgetExceeded, InputError
from petriflow.net.petrinet import PetriNet
from petriflow.verify.coverability import OMEGA, Coverability, coverability

from ._nets import nets, random_nets


def assert_pumps(net: PetriNet, cov: Coverability) -> None:
    w = cov.witness
    assert w is not None and w.pump
    m1 = net.replay(w.prefix)
    m2 = net.replay(w.pump, m1)
    assert np.array_equal(m1, w.start) and np.array_equal(m2, w.end)
    assert (m2 >= m1).all()
    grown = [net.place_index(p) for p in w.places]
    assert grown and (m2[grown] > m1[grown]).all()
    assert set(w.places) <= set(cov.unbounded_places)
    # pumping again from m2 grows again: the places really are unbounded
    m3 = net.replay(w.pump, m2)
    assert (m3[grown] > m2[grown]).all()


def test_unbounded_producer() -> None:
    net = PetriNet.from_arcs(places={"a": 1, "b": 0}, transitions=["t"],
                             arcs=[("a", "t", 1), ("t", "a", 1), ("t", "b", 1)])
    cov = coverability(net)
    assert (cov.bounded, cov.bounds, cov.unbounded_places, cov.k_bound(), cov.safe) == (False, (1, None), ("b",), None, False)
    assert cov.markings.tolist() == [[1, OMEGA]]
    assert_pumps(net, cov)


def test_unbounded_retry_loop_with_bounded_control() -> None:
    # a step that may fail and retry forever, logging every failure: the log is unbounded, the step is not
    net = PetriNet.from_arcs(
        places={"ready": 1, "running": 0, "done": 0, "log": 0}, transitions=["start", "fail", "finish"],
        arcs=[("ready", "start", 1), ("start", "running", 1), ("running", "fail", 1), ("fail", "ready", 1),
              ("fail", "log", 1), ("running", "finish", 1), ("finish", "done", 1)])
    cov = coverability(net)
    assert cov.bounds == (1, 1, 1, None) and cov.unbounded_places == ("log",)
    assert_pumps(net, cov)
    assert cov.witness is not None and cov.witness.pump == ["start", "fail"]


def test_fifty_place_ring_of_producers() -> None:
    net = nets.producer_ring(25)
    cov = coverability(net)
    assert not cov.bounded
    assert cov.unbounded_places == tuple(f"buf{i}" for i in range(25))
    assert cov.bounds[:25] == (1,) * 25
    assert len(cov.markings) == 25  # the token at one station, every buffer ω
    assert_pumps(net, cov)


@pytest.mark.parametrize(
    "net",
    [nets.fork_join(3), nets.philosophers(4), nets.token_ring(4), nets.producer_consumer(3)],
    ids=lambda n: n.name,
)
def test_bounded_families_have_exact_bounds(net: PetriNet) -> None:
    cov = coverability(net)
    reach = nets.bfs(net, 10_000)
    seen, complete = reach.markings(), reach.complete
    assert complete and cov.bounded and cov.witness is None
    assert list(cov.bounds) == np.array(sorted(seen)).max(axis=0).tolist()
    # for a bounded net the set is the maximal reachable markings
    assert all(tuple(int(x) for x in m) in seen for m in cov.markings)


def test_stop_at_unbounded_answers_at_the_first_witness() -> None:
    net = nets.producer_ring(25)
    cov = coverability(net, stop_at_unbounded=True)
    assert not cov.bounded and not cov.complete and cov.nodes < coverability(net).nodes
    assert_pumps(net, cov)
    bounded = coverability(nets.philosophers(3), stop_at_unbounded=True)
    assert bounded.bounded and bounded.complete and bounded.k_bound() == 1


def test_budget_raises_with_what_is_known() -> None:
    with pytest.raises(BudgetExceeded) as info:
        coverability(nets.producer_ring(25), max_nodes=30)
    partial = info.value.partial  # type: ignore[attr-defined]
    assert not partial.complete and partial.nodes == 30
    assert partial.unbounded_places and "unbounded so far" in str(info.value)
    with pytest.raises(InputError):
        coverability(nets.producer_ring(2), max_nodes=0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_nets(places=(1, 4), thin=(True, False)))
def test_coverability_agrees_with_bfs(net: PetriNet) -> None:
    limit = 2000
    cov = coverability(net, max_nodes=50_000)
    reach = nets.bfs(net, limit)
    seen, complete = reach.markings(), reach.complete
    if complete:
        assert cov.bounded
        assert list(cov.bounds) == np.array(sorted(seen)).max(axis=0).tolist()
        assert all(tuple(int(x) for x in m) in seen for m in cov.markings)
    if cov.bounded:
        # at most prod(bound + 1) markings: a BFS with that budget must finish
        size = int(np.prod([b + 1 for b in cov.bounds]))
        if size <= limit:
            assert complete
    else:
        assert not complete
        assert_pumps(net, cov)
    # every reachable marking seen is covered by an element of the set
    for m in list(seen)[:200]:
        assert (cov.markings >= np.array(m)).all(axis=1).any()


# -- the MCC oracle: bounds of the small conformance models ------------------------------
def test_conformance_bounds() -> None:
    from petriflow.net.pnml import read_pnml
    from petriflow.verify.structural import (
        bounds_from_invariants,
        is_structurally_bounded,
    )

    rows = [r for r in conformance.rows() if r["max_tokens_per_place"] and int(r["reachable_states"]) <= 11_000]
    assert len(rows) >= 10
    for row in rows:
        net = read_pnml(conformance.path(row["model"]))
        k = int(row["max_tokens_per_place"])
        cov = coverability(net, max_nodes=50_000)
        assert cov.bounded and cov.k_bound() == k, row["model"]
        inv = bounds_from_invariants(net)
        assert inv is None or int(inv.max()) >= k
        assert is_structurally_bounded(net)
