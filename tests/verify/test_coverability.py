"""Coverability against a plain BFS: bounded verdicts, exact bounds, and pumping witnesses that really pump.

When the BFS finishes, the net is bounded and the coverability bounds must be
the BFS maxima; when coverability says unbounded, its witness must replay
and strictly grow, and the BFS must not finish.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petriflow.errors import BudgetExceeded, InputError
from petriflow.net.petrinet import PetriNet
from petriflow.verify.coverability import OMEGA, Coverability, coverability

ROOT = Path(__file__).resolve().parents[2]


def _bench_nets():
    spec = importlib.util.spec_from_file_location("bench_nets_cov", ROOT / "analysis" / "bench" / "nets.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_nets_cov"] = mod
    spec.loader.exec_module(mod)
    return mod


nets = _bench_nets()


def bfs(net: PetriNet, limit: int) -> tuple[set[tuple[int, ...]], bool]:
    """Reachable markings as tuples, and whether the BFS finished within ``limit`` states."""
    pre = [tuple(int(x) for x in r) for r in net.pre]
    post = [tuple(int(x) for x in r) for r in net.post]
    m0 = tuple(int(x) for x in net.initial)
    seen = {m0}
    queue = deque([m0])
    while queue:
        m = queue.popleft()
        for a, b in zip(pre, post):
            if all(x >= y for x, y in zip(m, a)):
                m2 = tuple(x - y + z for x, y, z in zip(m, a, b))
                if m2 not in seen:
                    if len(seen) >= limit:
                        return seen, False
                    seen.add(m2)
                    queue.append(m2)
    return seen, True


def producer_ring(k: int) -> PetriNet:
    """A token circles ``k`` stations; each pass leaves one item in the station's buffer (2k places)."""
    places = {f"r{i}": int(i == 0) for i in range(k)} | {f"buf{i}": 0 for i in range(k)}
    transitions, arcs = [], []
    for i in range(k):
        transitions += [f"move{i}", f"eat{i}"]
        arcs += [(f"r{i}", f"move{i}", 1), (f"move{i}", f"r{(i + 1) % k}", 1), (f"move{i}", f"buf{i}", 1)]
        arcs += [(f"r{i}", f"eat{i}", 1), (f"buf{i}", f"eat{i}", 1), (f"eat{i}", f"r{i}", 1)]
    return PetriNet.from_arcs(places=places, transitions=transitions, arcs=arcs, name=f"producer_ring({k})")


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
    net = producer_ring(25)
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
    seen, complete = bfs(net, 10_000)
    assert complete and cov.bounded and cov.witness is None
    assert list(cov.bounds) == np.array(sorted(seen)).max(axis=0).tolist()
    # for a bounded net the set is the maximal reachable markings
    assert all(tuple(int(x) for x in m) in seen for m in cov.markings)


def test_stop_at_unbounded_answers_at_the_first_witness() -> None:
    net = producer_ring(25)
    cov = coverability(net, stop_at_unbounded=True)
    assert not cov.bounded and not cov.complete and cov.nodes < coverability(net).nodes
    assert_pumps(net, cov)
    bounded = coverability(nets.philosophers(3), stop_at_unbounded=True)
    assert bounded.bounded and bounded.complete and bounded.k_bound() == 1


def test_budget_raises_with_what_is_known() -> None:
    with pytest.raises(BudgetExceeded) as info:
        coverability(producer_ring(25), max_nodes=30)
    partial = info.value.partial  # type: ignore[attr-defined]
    assert not partial.complete and partial.nodes == 30
    assert partial.unbounded_places and "unbounded so far" in str(info.value)
    with pytest.raises(InputError):
        coverability(producer_ring(2), max_nodes=0)


@st.composite
def random_nets(draw: st.DrawFn) -> PetriNet:
    P = draw(st.integers(1, 4))
    T = draw(st.integers(1, 5))
    row = st.lists(st.integers(0, 2), min_size=P, max_size=P)
    pre = np.array(draw(st.lists(row, min_size=T, max_size=T)))
    post = np.array(draw(st.lists(row, min_size=T, max_size=T)))
    mask = np.array(draw(st.lists(st.lists(st.booleans(), min_size=P, max_size=P), min_size=T, max_size=T)))
    m0 = draw(st.lists(st.integers(0, 2), min_size=P, max_size=P))
    return PetriNet(places=tuple(f"p{i}" for i in range(P)), transitions=tuple(f"t{i}" for i in range(T)),
                    pre=pre * mask, post=post, initial=np.array(m0))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_nets())
def test_coverability_agrees_with_bfs(net: PetriNet) -> None:
    limit = 2000
    cov = coverability(net, max_nodes=50_000)
    seen, complete = bfs(net, limit)
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
CONFORMANCE = Path("/work/shared/conformance")
if not CONFORMANCE.exists():
    CONFORMANCE = ROOT.parent / "shared" / "conformance"


def _small_models() -> list[dict[str, str]]:
    import csv

    path = CONFORMANCE / "expected.csv"
    if not path.exists():
        return []
    rows = csv.DictReader(path.open())
    return [r for r in rows if r["max_tokens_per_place"] and int(r["reachable_states"]) <= 11_000]


@pytest.mark.skipif(not _small_models(), reason="conformance models not available")
def test_conformance_bounds() -> None:
    from petriflow.net.pnml import read_pnml
    from petriflow.verify.structural import (
        bounds_from_invariants,
        is_structurally_bounded,
    )

    rows = _small_models()
    assert len(rows) >= 10
    for row in rows:
        net = read_pnml(CONFORMANCE / f"{row['model']}.pnml")
        k = int(row["max_tokens_per_place"])
        cov = coverability(net, max_nodes=50_000)
        assert cov.bounded and cov.k_bound() == k, row["model"]
        inv = bounds_from_invariants(net)
        assert inv is None or int(inv.max()) >= k
        assert is_structurally_bounded(net)
