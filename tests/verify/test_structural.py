"""Structural analysis against known invariants, firing sequences and brute force on tiny nets.

Oracles: the textbook invariants of mutex, philosophers and producer/consumer;
``y·m`` constant along random firing sequences; conservativeness by LP
against the union of Farkas semiflow supports (a different algorithm);
siphons and traps against enumeration of every subset; bounds against a BFS.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petriflow.errors import BudgetExceeded
from petriflow.net.petrinet import PetriNet
from petriflow.verify import structural as S

from ._nets import nets, random_nets


def rank(a: np.ndarray) -> int:
    return int(np.linalg.matrix_rank(np.asarray(a, dtype=float))) if np.asarray(a).size else 0


def mutex() -> PetriNet:
    """Two processes, one lock: idle -> crit (takes lock) -> idle (returns it)."""
    return PetriNet.from_arcs(
        places={"idle1": 1, "crit1": 0, "lock": 1, "idle2": 1, "crit2": 0},
        transitions=["enter1", "leave1", "enter2", "leave2"],
        arcs=[("idle1", "enter1", 1), ("lock", "enter1", 1), ("enter1", "crit1", 1),
              ("crit1", "leave1", 1), ("leave1", "idle1", 1), ("leave1", "lock", 1),
              ("idle2", "enter2", 1), ("lock", "enter2", 1), ("enter2", "crit2", 1),
              ("crit2", "leave2", 1), ("leave2", "idle2", 1), ("leave2", "lock", 1)])


def vec(net: PetriNet, weights: dict[str, int]) -> list[int]:
    return [weights.get(p, 0) for p in net.places]


# -- known invariants ---------------------------------------------------------------
def test_mutex_invariants_and_bounds() -> None:
    net = mutex()
    semis = {tuple(r) for r in S.place_semiflows(net).tolist()}
    assert semis == {
        tuple(vec(net, {"idle1": 1, "crit1": 1})),
        tuple(vec(net, {"idle2": 1, "crit2": 1})),
        tuple(vec(net, {"crit1": 1, "lock": 1, "crit2": 1})),  # mutual exclusion itself
    }
    assert S.place_invariants(net).shape == (3, 5)
    assert S.bounds_from_invariants(net).tolist() == [1, 1, 1, 1, 1]
    assert S.structural_bounds(net) == (1, 1, 1, 1, 1)
    assert S.is_conservative(net) and S.is_structurally_bounded(net)
    ti = S.transition_invariants(net)
    assert {tuple(r) for r in ti.tolist()} == {(1, 1, 0, 0), (0, 0, 1, 1)}


def test_producer_consumer_semiflows() -> None:
    net = nets.producer_consumer(4)
    semis = {tuple(r) for r in S.place_semiflows(net).tolist()}
    assert semis == {
        tuple(vec(net, {"p_idle": 1, "p_ready": 1})),
        tuple(vec(net, {"empty": 1, "full": 1})),
        tuple(vec(net, {"c_idle": 1, "c_busy": 1})),
    }
    assert S.bounds_from_invariants(net).tolist() == [1, 1, 4, 4, 1, 1]
    assert S.commoner_holds(net) and S.is_free_choice(net)
    assert S.bits_per_place(net).tolist() == [1, 1, 3, 3, 1, 1]


@pytest.mark.parametrize("n", [3, 6, 20])
def test_philosophers(n: int) -> None:
    net = nets.philosophers(n)
    semis = S.place_semiflows(net)
    assert len(semis) == 2 * n  # each philosopher's state; each fork with its two users
    assert all(S.bounds_from_invariants(net) == 1)
    assert S.place_invariants(net).shape == (2 * n, 4 * n) and (S.place_invariants(net) >= 0).all()
    # it deadlocks: the siphon {think, eat, fork of everyone} empties when all hold a left fork
    bad = S.siphon_without_marked_trap(net)
    assert bad is not None and not S.commoner_holds(net)
    assert set(S.maximal_trap_in(net, bad)) <= set(bad)
    assert len(S.minimal_siphons(net)) == 2 * n + 1


def test_unbounded_net_is_neither_conservative_nor_structurally_bounded() -> None:
    net = PetriNet.from_arcs(places={"a": 1, "b": 0}, transitions=["t"], arcs=[("a", "t", 1), ("t", "a", 1), ("t", "b", 1)])
    assert not S.is_conservative(net) and not S.is_structurally_bounded(net)
    assert S.bounds_from_invariants(net) is None
    assert S.structural_bounds(net) == (1, None)
    assert S.place_invariants(net).tolist() == [[1, 0]]
    assert S.transition_invariants(net).shape == (0, 1)


def test_consuming_net_is_structurally_bounded_but_not_conservative() -> None:
    # t only destroys tokens; b is untouched
    net = PetriNet.from_arcs(places={"a": 3, "b": 1}, transitions=["t"], arcs=[("a", "t", 2)])
    assert S.is_structurally_bounded(net) and not S.is_conservative(net)
    assert S.structural_bounds(net) == (3, 1)
    # weights count: 2 a -> 1 b keeps a + 2 b constant
    net = PetriNet.from_arcs(places={"a": 3, "b": 0}, transitions=["t"], arcs=[("a", "t", 2), ("t", "b", 1)])
    assert S.is_conservative(net) and S.place_invariants(net).tolist() == [[1, 2]]
    assert S.bounds_from_invariants(net).tolist() == [3, 1]


def test_budgets_raise() -> None:
    with pytest.raises(BudgetExceeded):
        S.place_semiflows(nets.philosophers(8), max_rows=3)
    with pytest.raises(BudgetExceeded):
        S.minimal_siphons(nets.philosophers(8), limit=3)
    assert S.bounds_from_invariants(nets.philosophers(8), max_rows=3) is None


def test_summary() -> None:
    s = S.summary(nets.token_ring(3))
    assert s.conservative and s.structurally_bounded and s.bounds == (1,) * 12
    assert s.place_invariants == 4 and not s.free_choice


# -- properties on random nets --------------------------------------------------------
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_nets(), st.randoms(use_true_random=False))
def test_invariants_are_invariant(net: PetriNet, rnd) -> None:  # type: ignore[no-untyped-def]
    C = S.incidence_matrix(net)
    Y = S.place_invariants(net)
    X = S.transition_invariants(net)
    assert not (Y @ C).any() and not (C @ X.T).any()
    assert Y.shape[0] == rank(Y) == len(net.places) - rank(C)  # a basis of the whole left null space
    assert X.shape[0] == rank(X) == len(net.transitions) - rank(C)
    semis = S.place_semiflows(net)
    assert (semis >= 0).all() and not (semis @ C).any() and (semis.sum(axis=1) > 0).all()
    supports = [frozenset(np.flatnonzero(r)) for r in semis]
    assert not any(a < b for a in supports for b in supports)  # minimal supports
    # y·m never changes along a random run
    m = net.initial
    weights = Y @ m
    for _ in range(20):
        en = np.flatnonzero(net.enabled(m))
        if en.size == 0:
            break
        m = net.fire(m, int(rnd.choice(list(en))))
        assert np.array_equal(Y @ m, weights)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_nets())
def test_conservative_and_bounds_agree_with_other_oracles(net: PetriNet) -> None:
    semis = S.place_semiflows(net)
    covered = np.zeros(len(net.places), bool) if semis.size == 0 else (semis > 0).any(axis=0)
    assert S.is_conservative(net) == bool(covered.all())
    # brute force: a small positive integer invariant proves conservativeness
    C = S.incidence_matrix(net)
    if any(not (np.array(y) @ C).any() for y in itertools.product(range(1, 4), repeat=len(net.places))):
        assert S.is_conservative(net)
    if S.is_conservative(net):
        assert S.is_structurally_bounded(net)
    b_inv = S.bounds_from_invariants(net)
    b_lp = S.structural_bounds(net)
    reach = nets.bfs(net, 3000)
    seen, complete = reach.markings(), reach.complete
    real = np.array(sorted(seen)).max(axis=0)
    if b_inv is not None:
        assert (b_inv >= real).all()
        assert all(lp is not None and lp <= bi for lp, bi in zip(b_lp, b_inv))
    assert all(lp is None or lp >= r for lp, r in zip(b_lp, real))
    if S.is_structurally_bounded(net):
        assert complete or len(seen) >= 3000


def _is_siphon(net: PetriNet, Q: set[int]) -> bool:
    return all(any(net.pre[t, q] > 0 for q in Q) for p in Q for t in np.flatnonzero(net.post[:, p]))


def _is_trap(net: PetriNet, Q: set[int]) -> bool:
    return all(any(net.post[t, q] > 0 for q in Q) for p in Q for t in np.flatnonzero(net.pre[:, p]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_nets(places=(1, 6)))
def test_siphons_and_traps_against_every_subset(net: PetriNet) -> None:
    P = len(net.places)
    subsets = [set(c) for k in range(1, P + 1) for c in itertools.combinations(range(P), k)]
    siphons = [s for s in subsets if _is_siphon(net, s)]
    minimal = sorted(tuple(net.places[i] for i in sorted(s)) for s in siphons if not any(o < s for o in siphons))
    assert S.minimal_siphons(net) == minimal
    for s in subsets[:20]:
        traps = [t for t in subsets if t <= s and _is_trap(net, t)]
        largest = set().union(*traps) if traps else set()
        assert set(S.maximal_trap_in(net, [net.places[i] for i in s])) == {net.places[i] for i in largest}
        sips = [t for t in subsets if t <= s and _is_siphon(net, t)]
        assert set(S.maximal_siphon_in(net, [net.places[i] for i in s])) == {net.places[i] for i in set().union(*sips)}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_nets())
def test_commoner_implies_deadlock_freedom_on_ordinary_nets(net: PetriNet) -> None:
    net = PetriNet(places=net.places, transitions=net.transitions, pre=np.minimum(net.pre, 1),
                   post=np.minimum(net.post, 1), initial=net.initial)
    if not S.commoner_holds(net):
        return
    seen = nets.bfs(net, 2000).markings()
    for m in seen:
        assert net.enabled(np.array(m)).any(), f"dead marking {m} although every siphon holds a marked trap"
