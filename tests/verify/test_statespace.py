"""The explicit-state engine against closed forms, a reference BFS, and the MCC oracles.

Oracles, not golden files: the benchmark families have closed-form state
counts; random nets are checked against a dozen-line BFS over tuples that
shares no code with the engine; the conformance models against
``expected.csv`` (MCC / Tedd / ITS-Tools results).
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial

import _conformance as conformance
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from petriflow.errors import BudgetExceeded, InputError, NetError
from petriflow.net.petrinet import PetriNet
from petriflow.verify.statespace import StateSpace, explore, warm_up

from ._nets import nets, random_nets


def tiny(**kw) -> PetriNet:
    return PetriNet.from_arcs(**kw)


# -- small fixtures -------------------------------------------------------------
def test_sequence_and_dead_end():
    net = tiny(places={"a": 1, "b": 0, "c": 0}, transitions=["t1", "t2"],
               arcs=[("a", "t1", 1), ("t1", "b", 1), ("b", "t2", 1), ("t2", "c", 1)])
    ss = explore(net, store_edges=True)
    assert (ss.n_states, ss.n_edges, ss.complete, ss.stop_reason) == (3, 2, True, None)
    assert ss.dead_states().tolist() == [2]
    assert ss.path_to(2) == ["t1", "t2"]
    assert ss.marking(2).tolist() == [0, 0, 1]
    src, tr, dst = ss.edges()
    assert list(zip(src.tolist(), tr.tolist(), dst.tolist())) == [(0, 0, 1), (1, 1, 2)]
    assert ss.markings().dtype == np.int64


def test_repr_is_one_line():
    text = repr(explore(nets.token_ring(3), max_states=10))
    assert text.startswith("StateSpace('token_ring(3)': 10 states") and "partial (max_states" in text
    assert "\n" not in text


def test_edges_need_store_edges():
    ss = explore(nets.producer_consumer(1))
    with pytest.raises(NetError):
        ss.edges()


def test_unbounded_net_stops_on_budget():
    net = tiny(places={"p": 0}, transitions=["grow"], arcs=[("grow", "p", 1)])
    ss = explore(net, max_states=50)
    assert not ss.complete and ss.stop_reason == "max_states"
    assert ss.n_states == 50
    assert ss.place_bounds().tolist() == [49]
    assert ss.dead_states().size == 0  # unexpanded states are never called dead
    assert ss.path_to(49) == ["grow"] * 49


def test_unbounded_net_stops_on_memory_budget():
    net = tiny(places={"p": 1, "q": 0}, transitions=["grow"], arcs=[("p", "grow", 1), ("grow", "p", 1), ("grow", "q", 2)])
    ss = explore(net, max_bytes=1 << 20)
    assert not ss.complete and ss.stop_reason == "max_bytes"
    assert ss.n_states > 100
    assert ss.place_bounds()[1] == 2 * (ss.n_states - 1)


@pytest.mark.parametrize("size", [9, 10])
def test_table_growth_against_reference(size: int):
    """Thousands of states: the hash set grows several times (and its state numbers with it)."""
    assert_like_reference(nets.philosophers(size), 10_000)
    assert_like_reference(nets.producer_consumer(400 * size), 10_000)


def test_edge_list_counts_against_the_memory_budget():
    net = nets.token_ring(10)
    full = explore(net)
    ss = explore(net, store_edges=True, max_bytes=400_000)
    assert not ss.complete and ss.stop_reason == "max_bytes"
    src, _tr, dst = ss.edges()
    assert len(src) == ss.n_edges > 0
    assert src.max() < ss.n_expanded and dst.max() < ss.n_states
    assert np.array_equal(ss.markings(), full.markings()[: ss.n_states])  # a prefix of the same BFS order


def test_big_counts_never_wrap():
    """A place that starts near a packing width's limit and keeps growing is repacked, not wrapped."""
    for start in (1, 2**7 - 1, 2**15 - 2, 2**31 - 3, 2**40):
        net = tiny(places={"p": start, "q": 0}, transitions=["move", "dup"],
                   arcs=[("p", "move", 1), ("move", "q", 1), ("q", "dup", 1), ("dup", "p", 3)])
        ss = explore(net, max_states=300)
        order = nets.bfs(net, limit=300).order
        assert [tuple(m) for m in ss.markings().tolist()] == order


def test_weighted_arcs_and_self_loop():
    net = tiny(places={"a": 3, "b": 0, "c": 1}, transitions=["two", "back", "loop"],
               arcs=[("a", "two", 2), ("two", "b", 1), ("b", "back", 1), ("back", "a", 2),
                     ("c", "loop", 1), ("loop", "c", 1)])
    ss = explore(net, store_edges=True)
    oracle = nets.bfs(net)
    order, edges = oracle.order, oracle.edges
    assert ss.n_states == len(order) and ss.n_edges == len(edges)
    assert ss.place_bounds().tolist() == [3, 1, 1]


def test_tokens_and_states_with_match_the_markings():
    ss = explore(nets.producer_consumer(6))
    marks = ss.markings()
    net = ss.net
    assert np.array_equal(ss.tokens("full"), marks[:, net.place_index("full")])
    assert np.array_equal(ss.tokens(0), marks[:, 0])
    mask = np.zeros(len(net.places), dtype=bool)
    mask[[net.place_index("full"), net.place_index("c_busy")]] = True
    want = net.marking({"full": 3, "c_busy": 1})
    expected = np.flatnonzero(np.all(marks[:, mask] == want[mask], axis=1))
    assert expected.size == 2 and np.array_equal(ss.states_with(want, mask), expected)  # producer free
    assert ss.states_with(ss.marking(5)).tolist() == [5]
    assert ss.states_with(net.marking({"full": 99}), mask).size == 0


def test_index_of():
    net = nets.philosophers(3)
    ss = explore(net)
    for i in range(ss.n_states):
        assert ss.index_of(ss.marking(i)) == i
    assert ss.index_of(np.zeros(len(net.places), np.int64)) is None


def test_one_safe_nets_take_at_most_32_bytes_per_state():
    """Issue 3's memory bound: packed markings + hash table + BFS tree, 1-safe nets of <= 64 places."""
    for net in (nets.fork_join(8), nets.philosophers(12), nets.token_ring(8), nets.token_ring(12)):
        ss = explore(net)
        assert len(net.places) <= 64 and ss.max_tokens_per_place() == 1
        assert set(ss.bits_per_place) == {1}
        assert ss.bytes_per_state <= 32, (net.name, ss.bytes_per_state)


def test_counting_place_gets_a_wider_field():
    ss = explore(nets.producer_consumer(100))
    net = ss.net
    assert ss.n_states == 404
    assert ss.bits_per_place[net.place_index("empty")] == 7
    assert ss.bits_per_place[net.place_index("p_idle")] == 1
    assert ss.place_bounds()[net.place_index("full")] == 100


def test_bounds_hint_sizes_fields_and_a_wrong_one_is_harmless():
    net = nets.producer_consumer(5)
    plain = explore(net)
    hinted = explore(net, bounds=np.array([1, 1, 5, 5, 1, 1]))
    wrong = explore(net, bounds=np.array([1, 1, 2, 1, 1, 1]))
    assert hinted.bits_per_place == (1, 1, 3, 3, 1, 1) == plain.bits_per_place
    for ss in (hinted, wrong):
        assert ss.n_states == plain.n_states == 24
        assert np.array_equal(ss.markings(), plain.markings())
    with pytest.raises(InputError):
        explore(net, bounds=np.array([1, 2]))


def test_more_than_63_bits_is_a_budget_error():
    net = tiny(places={"p": 2**62}, transitions=["grow"], arcs=[("grow", "p", 2**61)])
    with pytest.raises(BudgetExceeded):
        explore(net, max_states=10)


def test_marking_with_every_bit_set():
    """64 one-bit places all marked pack to an all-ones word, which the hash set keeps aside."""
    places = {f"p{i}": 1 for i in range(64)}
    stay = tiny(places=places, transitions=["keep", "drop"],
                arcs=[("p1", "keep", 1), ("keep", "p1", 1), ("p0", "drop", 1)])
    assert_like_reference(stay, None)
    reach = tiny(places=places | {"p0": 0}, transitions=["fill", "keep"],
                 arcs=[("p63", "fill", 1), ("fill", "p63", 1), ("fill", "p0", 1), ("p1", "keep", 1), ("keep", "p1", 1)])
    assert_like_reference(reach, 40)
    assert_like_reference(reach, 3)


def test_degenerate_nets():
    empty = PetriNet(places=(), transitions=(), pre=np.zeros((0, 0)), post=np.zeros((0, 0)), initial=np.zeros(0))
    ss = explore(empty)
    assert (ss.n_states, ss.n_edges, ss.dead_states().tolist()) == (1, 0, [0])
    loop = PetriNet(places=(), transitions=("t",), pre=np.zeros((1, 0)), post=np.zeros((1, 0)), initial=np.zeros(0))
    ss = explore(loop)
    assert (ss.n_states, ss.n_edges, ss.dead_states().tolist()) == (1, 1, [])


def test_progress_bar_goes_to_stderr(capsys):
    ss = explore(nets.token_ring(6), progress=True)
    err = capsys.readouterr().err
    assert ss.n_states == 576
    assert "states" in err and "frontier" in err


def test_index_of_marking_too_big_for_its_field():
    ss = explore(nets.philosophers(3))
    m = ss.marking(0)
    m[0] = 5
    assert ss.index_of(m) is None


def test_warm_up_is_paid_once():
    explore(nets.fork_join(1))
    assert warm_up() == 0.0
    assert explore(nets.fork_join(1)).compile_seconds == 0.0


def test_bad_budget():
    with pytest.raises(InputError):
        explore(nets.fork_join(1), max_states=0)
    with pytest.raises(InputError):
        explore(nets.fork_join(1), max_bytes=0)


# -- closed forms --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("family", "sizes"),
    [("fork_join", [1, 2, 3, 4, 5]), ("philosophers", [2, 3, 4, 5, 6, 7]),
     ("token_ring", [1, 2, 3, 4, 5, 6]), ("producer_consumer", [1, 2, 3, 7, 20])],
)
def test_closed_forms(family, sizes):
    for size in sizes:
        ss = explore(nets.FAMILIES[family](size))
        assert ss.complete
        assert ss.n_states == nets.expected_states(family, size), (family, size)


def test_pell_lucas_at_14():
    assert nets.expected_states("philosophers", 14) == 228_486
    assert nets.expected_states("fork_join", 10) == 1_048_578
    assert nets.expected_states("token_ring", 16) == 1_572_864


def test_family_deadlocks():
    assert explore(nets.fork_join(3)).dead_states().size == 1  # only the end
    ss = explore(nets.philosophers(5))
    (d,) = ss.dead_states().tolist()
    net = ss.net
    assert all(ss.marking(d)[net.place_index(f"left{i}")] == 1 for i in range(5))
    assert len(ss.path_to(d)) == 5
    assert explore(nets.token_ring(4)).dead_states().size == 0
    assert explore(nets.producer_consumer(3)).dead_states().size == 0


# -- differential: random nets against the reference ------------------------------------
engine_nets = partial(random_nets, transitions=(0, 5), tokens=3, thin=(False, False))
"""Random nets as the engine's differential tests draw them: maybe no transitions, every arc weight drawn."""


def assert_like_reference(net: PetriNet, limit: int | None) -> None:
    cap = 400 if limit is None else limit
    oracle = nets.bfs(net, limit=cap)
    order, edges, dead, depth, complete = oracle.order, oracle.edges, oracle.dead, oracle.depth, oracle.complete
    ss = explore(net, max_states=cap, store_edges=True)
    assert ss.complete == complete
    assert ss.stop_reason == (None if complete else "max_states")
    assert [tuple(m) for m in ss.markings().tolist()] == order
    assert ss.n_states == len(order)
    src, tr, dst = ss.edges()
    assert len(src) == ss.n_edges
    if complete:
        assert ss.n_expanded == ss.n_states
        assert ss.n_edges == len(edges)
        assert sorted(zip(src.tolist(), tr.tolist(), dst.tolist())) == sorted(edges)
        assert ss.dead_states().tolist() == dead
        assert ss.place_bounds().tolist() == list(np.max(np.array(order), axis=0))
        assert ss.max_tokens_per_marking() == max(sum(m) for m in order)
    else:  # partial: only expanded states have edges or can be dead, and they agree with the reference
        expanded = set(range(ss.n_expanded))
        assert set(src.tolist()) <= expanded
        assert ss.dead_states().tolist() == [d for d in dead if d in expanded]
        ref = sorted(e for e in edges if e[0] in expanded)
        assert sorted(zip(src.tolist(), tr.tolist(), dst.tolist())) == ref
    for i in range(0, ss.n_states, max(1, ss.n_states // 7)):
        path = ss.path_to(i)
        assert len(path) == depth[i]
        assert net.replay(path).tolist() == list(order[i])
        assert ss.index_of(np.array(order[i])) == i


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(engine_nets(), st.sampled_from([None, 1, 7, 60]))
def test_against_reference(net: PetriNet, limit: int | None):
    assert_like_reference(net, limit)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(engine_nets(weight=1, tokens=1), st.sampled_from([None, 30]))
def test_against_reference_unit_arcs(net: PetriNet, limit: int | None):
    """Unit arcs and 0/1 tokens: the 1-bit kernel, widened when a place gets a second token."""
    assert_like_reference(net, limit)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(engine_nets(places=(60, 140), weight=1, sparse=True), st.sampled_from([None, 200]))
def test_against_reference_many_words(net: PetriNet, limit: int | None):
    """Markings spanning two or three 64-bit words."""
    assert_like_reference(net, limit)


@contextmanager
def pivot_mode():
    """Force the 1-bit kernel's sparse (pivot) enabledness test, used by default only for nets with many transitions."""
    from petriflow.verify import statespace

    old = statespace._SPARSE_FROM
    statespace._SPARSE_FROM = 0
    try:
        yield
    finally:
        statespace._SPARSE_FROM = old


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(engine_nets(weight=1, tokens=1), engine_nets(places=(60, 140), weight=1, sparse=True)),
       st.sampled_from([None, 30]))
def test_pivot_mode_against_reference(net: PetriNet, limit: int | None):
    """Sparse mode must number states exactly as the dense test does (same BFS order)."""
    with pivot_mode():
        assert_like_reference(net, limit)


def test_pivot_mode_on_families():
    with pivot_mode():
        for family, size in (("token_ring", 6), ("philosophers", 7), ("fork_join", 4)):
            assert explore(nets.FAMILIES[family](size)).n_states == nets.expected_states(family, size)
        assert_like_reference(nets.philosophers(9), 10_000)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(engine_nets(places=(1, 4), weight=2, tokens=2))
def test_against_snakes(net: PetriNet):
    """An independent tool with its own multiset firing rule reaches the same markings."""
    from petriflow.net.adapters import snakes_reachable_markings

    ss = explore(net, max_states=200)
    assume(ss.complete)
    try:
        theirs = snakes_reachable_markings(net, limit=250)
    except BudgetExceeded:  # pragma: no cover - SNAKES found more than we did: that is a failure
        pytest.fail("SNAKES found more markings than the complete state space")
    assert {tuple(m) for m in ss.markings().tolist()} == theirs
    assert ss.place_bounds().tolist() == list(np.max(np.array(sorted(theirs)), axis=0))


def _check_space(ss: StateSpace) -> None:
    """Invariants any result satisfies, whatever the net."""
    d = ss.dead_states()
    for i in d[:3]:
        m = ss.marking(int(i))
        assert not ss.net.enabled(m).any()
        assert ss.net.replay(ss.path_to(int(i))).tolist() == m.tolist()


# -- conformance: MCC models with their oracles ------------------------------------------
SLOW_FROM = 150_000  # models from here on carry the `slow` mark (about 20 s together on 2 busy cores)
FULL_UP_TO = 10_000_000  # issue 3: states, deadlock and bounds agree wherever the state space fits in 10^7


_CASES = [  # the rows of ``expected.csv`` whose full state space the test explores
    pytest.param(r, id=r["model"], marks=[pytest.mark.slow] if int(r["reachable_states"]) >= SLOW_FROM else [])
    for r in conformance.rows() if int(r["reachable_states"]) < FULL_UP_TO
]


@pytest.mark.parametrize("row", _CASES)
def test_conformance(row: dict[str, str]):
    from petriflow.net.pnml import read_pnml

    net = read_pnml(conformance.path(row["model"]))
    ss = explore(net)
    assert ss.complete
    assert ss.n_states == int(row["reachable_states"])
    assert ss.n_edges == int(row["state_graph_edges"])
    dead = ss.dead_states()
    assert (dead.size > 0) == (row["deadlock"] == "true")
    assert dead.size == int(row["deadlock_markings"])
    assert ss.max_tokens_per_place() == int(row["max_tokens_per_place"])
    assert ss.max_tokens_per_marking() == int(row["max_tokens_per_marking"])
    _check_space(ss)
