"""Benchmark net families, built in code so anyone can rerun the benchmarks.

Each builder returns a :class:`petriflow.net.petrinet.PetriNet` whose
reachable state count has a closed form (tested in
``tests/verify/test_statespace.py``):

==========================  =========================  ===========================
family                      states                     e.g.
==========================  =========================  ===========================
``fork_join(k)``            ``4**k + 2``               k=10: 1,048,578
``philosophers(n)``         ``(1+√2)**n + (1-√2)**n``  n=14: 228,486 (n=5: 82)
``token_ring(n)``           ``1.5 * n * 2**n``         n=16: 1,572,864
``producer_consumer(c)``    ``4 * (c + 1)``, c >= 1    c=10: 44
==========================  =========================  ===========================

``philosophers`` is the classic think / take-left / take-right / eat model
(4 places per philosopher), not the MCC ``Philosophers-PT`` model (5 places
per philosopher, ``3**n`` states): a philosopher is thinking, holding the
left fork, or eating with both forks, and two neighbours cannot both hold the
fork between them (philosopher i eating excludes i+1 holding its left fork or
eating). Such rings number ``trace(M**n)`` for the transfer matrix
``M = [[1,1,1],[1,1,1],[1,0,0]]`` (rows: thinking, left, eating), whose
eigenvalues are ``1+√2``, ``1-√2`` and 0: the companion Pell (Pell-Lucas)
numbers 2, 6, 14, 34, 82, ..., 228,486 (n=14). It deadlocks when every
philosopher holds the left fork.

``producer_ring(k)`` is unbounded (a coverability benchmark, no state count).

:func:`bfs` is the plain-Python breadth-first search over markings as tuples
that the benchmarks time as the naive peer and the tests use as an oracle: a
few dozen lines that share no code with petriflow's engines.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from petriflow.net.petrinet import PetriNet

__all__ = [
    "FAMILIES",
    "Reach",
    "bfs",
    "expected_states",
    "fork_join",
    "philosophers",
    "producer_consumer",
    "producer_ring",
    "repr_collision",
    "token_ring",
]


def fork_join(k: int) -> PetriNet:
    """A source transition forks ``k`` branches of 3 sequential tasks, then one join.

    Places: ``start``, ``b{i}_{0..3}`` (before task 1, ..., after task 3), ``end``;
    transitions ``fork``, ``t{i}_{1..3}``, ``join``. Reachable: the initial
    marking, the ``4**k`` positions of the branches, and the end: ``4**k + 2``.
    """
    places = {"start": 1} | {f"b{i}_{j}": 0 for i in range(k) for j in range(4)} | {"end": 0}
    transitions = ["fork"] + [f"t{i}_{j}" for i in range(k) for j in range(1, 4)] + ["join"]
    arcs = [("start", "fork", 1)] + [("fork", f"b{i}_0", 1) for i in range(k)]
    for i in range(k):
        for j in range(1, 4):
            arcs += [(f"b{i}_{j - 1}", f"t{i}_{j}", 1), (f"t{i}_{j}", f"b{i}_{j}", 1)]
    arcs += [(f"b{i}_3", "join", 1) for i in range(k)] + [("join", "end", 1)]
    return PetriNet.from_arcs(places=places, transitions=transitions, arcs=arcs, name=f"fork_join({k})")


def philosophers(n: int) -> PetriNet:
    """``n`` dining philosophers who take the left fork, then the right one, eat, and put both back.

    Philosopher ``i`` has places ``think{i}``, ``left{i}`` (holds fork ``i``),
    ``eat{i}`` (holds forks ``i`` and ``i+1``); fork ``i`` is place ``fork{i}``.
    Transitions: ``takeL{i}``, ``takeR{i}``, ``release{i}``.
    """
    if n < 2:
        raise ValueError("philosophers needs n >= 2")
    places: dict[str, int] = {}
    for i in range(n):
        places |= {f"think{i}": 1, f"left{i}": 0, f"eat{i}": 0, f"fork{i}": 1}
    transitions: list[str] = []
    arcs: list[tuple[str, str, int]] = []
    for i in range(n):
        right = f"fork{(i + 1) % n}"
        transitions += [f"takeL{i}", f"takeR{i}", f"release{i}"]
        arcs += [(f"think{i}", f"takeL{i}", 1), (f"fork{i}", f"takeL{i}", 1), (f"takeL{i}", f"left{i}", 1)]
        arcs += [(f"left{i}", f"takeR{i}", 1), (right, f"takeR{i}", 1), (f"takeR{i}", f"eat{i}", 1)]
        arcs += [(f"eat{i}", f"release{i}", 1), (f"release{i}", f"think{i}", 1),
                 (f"release{i}", f"fork{i}", 1), (f"release{i}", right, 1)]
    return PetriNet.from_arcs(places=places, transitions=transitions, arcs=arcs, name=f"philosophers({n})")


def token_ring(n: int) -> PetriNet:
    """Mutual exclusion on a ring of ``n`` stations by one circulating token.

    Station ``i`` is ``idle{i}`` or ``want{i}`` (``request{i}``), enters
    ``crit{i}`` only while holding the token ``tok{i}`` (``enter{i}``) and
    gives it back on ``exit{i}``; ``pass{i}`` hands a free token to station
    ``i+1``. The holder is idle, waiting or critical, every other station idle or
    waiting, the token is at one of ``n`` stations: ``n * 3 * 2**(n-1)`` states.
    """
    if n < 1:
        raise ValueError("token_ring needs n >= 1")
    places: dict[str, int] = {}
    for i in range(n):
        places |= {f"idle{i}": 1, f"want{i}": 0, f"crit{i}": 0, f"tok{i}": int(i == 0)}
    transitions: list[str] = []
    arcs: list[tuple[str, str, int]] = []
    for i in range(n):
        transitions += [f"request{i}", f"enter{i}", f"exit{i}", f"pass{i}"]
        arcs += [(f"idle{i}", f"request{i}", 1), (f"request{i}", f"want{i}", 1)]
        arcs += [(f"want{i}", f"enter{i}", 1), (f"tok{i}", f"enter{i}", 1), (f"enter{i}", f"crit{i}", 1)]
        arcs += [(f"crit{i}", f"exit{i}", 1), (f"exit{i}", f"idle{i}", 1), (f"exit{i}", f"tok{i}", 1)]
        arcs += [(f"tok{i}", f"pass{i}", 1), (f"pass{i}", f"tok{(i + 1) % n}", 1)]
    return PetriNet.from_arcs(places=places, transitions=transitions, arcs=arcs, name=f"token_ring({n})")


def producer_consumer(c: int) -> PetriNet:
    """A producer and a consumer around a buffer of capacity ``c`` (``c`` tokens in ``empty``).

    Producer: ``produce`` (``p_idle -> p_ready``), ``deliver`` (``p_ready +
    empty -> p_idle + full``); consumer: ``take`` (``c_idle + full -> c_busy +
    empty``), ``consume`` (``c_busy -> c_idle``): ``2 * 2 * (c + 1)`` states.
    Not safe for ``c >= 2``: the buffer places hold up to ``c`` tokens.
    """
    if c < 1:
        raise ValueError("producer_consumer needs c >= 1 (a buffer of capacity 0 deadlocks at once)")
    places = {"p_idle": 1, "p_ready": 0, "empty": c, "full": 0, "c_idle": 1, "c_busy": 0}
    transitions = ["produce", "deliver", "take", "consume"]
    arcs = [
        ("p_idle", "produce", 1), ("produce", "p_ready", 1),
        ("p_ready", "deliver", 1), ("empty", "deliver", 1), ("deliver", "p_idle", 1), ("deliver", "full", 1),
        ("c_idle", "take", 1), ("full", "take", 1), ("take", "c_busy", 1), ("take", "empty", 1),
        ("c_busy", "consume", 1), ("consume", "c_idle", 1),
    ]
    return PetriNet.from_arcs(places=places, transitions=transitions, arcs=arcs, name=f"producer_consumer({c})")


def producer_ring(k: int) -> PetriNet:
    """A token circles ``k`` stations; each pass leaves one item in the station's buffer (2k places, unbounded).

    Station ``i`` passes the token on with ``move{i}`` (adding an item to
    ``buf{i}``) or, holding it, removes an item with ``eat{i}``; every buffer
    grows without bound.
    """
    places = {f"r{i}": int(i == 0) for i in range(k)} | {f"buf{i}": 0 for i in range(k)}
    transitions, arcs = [], []
    for i in range(k):
        transitions += [f"move{i}", f"eat{i}"]
        arcs += [(f"r{i}", f"move{i}", 1), (f"move{i}", f"r{(i + 1) % k}", 1), (f"move{i}", f"buf{i}", 1)]
        arcs += [(f"r{i}", f"eat{i}", 1), (f"buf{i}", f"eat{i}", 1), (f"eat{i}", f"r{i}", 1)]
    return PetriNet.from_arcs(places=places, transitions=transitions, arcs=arcs, name=f"producer_ring({k})")


def repr_collision() -> PetriNet:
    """13 markings, two of which pm4py's reachability graph merges: ``{p1: 11}`` and ``{p11: 1}``.

    ``move`` shifts one token from ``p1`` to ``p11``; ``pack`` turns eleven
    tokens of ``p1`` into one of ``p11``. From ``{p1: 11}`` the reachable markings are
    ``{p1: 11-k, p11: k}`` (k = 0..11) and ``{p11: 1}``. pm4py names a state by
    ``repr(marking)`` stripped of non-word characters, so ``['p1:11']`` and
    ``['p11:1']`` both become ``p111``.
    """
    return PetriNet.from_arcs(
        places={"p1": 11, "p11": 0}, transitions=["move", "pack"],
        arcs=[("p1", "move", 1), ("move", "p11", 1), ("p1", "pack", 11), ("pack", "p11", 1)],
        name="repr_collision",
    )


def expected_states(family: str, size: int) -> int:
    """The closed-form reachable state count of ``family(size)``."""
    if family == "fork_join":
        return 4**size + 2
    if family == "philosophers":
        a, b = 2, 2  # Pell-Lucas Q_0, Q_1
        for _ in range(size - 1):
            a, b = b, 2 * b + a
        return b if size >= 1 else a
    if family == "token_ring":
        return 3 * size * 2 ** (size - 1)
    if family == "producer_consumer":
        return 4 * (size + 1)
    raise KeyError(family)


FAMILIES = {
    "fork_join": fork_join,
    "philosophers": philosophers,
    "token_ring": token_ring,
    "producer_consumer": producer_consumer,
}


@dataclass(frozen=True)
class Reach:
    """What :func:`bfs` saw: markings in discovery order, with the edges and depths of the search.

    ``edges`` holds ``(state, transition index, successor)`` triples of the
    states expanded so far, ``dead`` the expanded states without a successor,
    ``depth[i]`` the length of a shortest firing sequence to ``order[i]``.
    ``complete`` is False when ``limit`` or ``stop_at`` ended the search;
    ``stopped`` is then the dead state that ``stop_at`` accepted, if any.
    """

    order: list[tuple[int, ...]]
    edges: list[tuple[int, int, int]]
    dead: list[int]
    depth: list[int]
    complete: bool
    stopped: int | None = None

    def markings(self) -> set[tuple[int, ...]]:
        """Every marking seen."""
        return set(self.order)

    def dead_markings(self) -> list[tuple[int, ...]]:
        """The dead markings, in discovery order."""
        return [self.order[i] for i in self.dead]

    def has_cycle(self) -> bool:
        """Whether the reachability graph has a cycle (Kahn's algorithm); only a complete search can say."""
        if not self.complete:
            raise ValueError("a partial search cannot rule out a cycle")
        indeg = [0] * len(self.order)
        succ: list[list[int]] = [[] for _ in self.order]
        for i, _t, j in self.edges:
            indeg[j] += 1
            succ[i].append(j)
        ready = [i for i, d in enumerate(indeg) if d == 0]
        removed = 0
        while ready:
            i = ready.pop()
            removed += 1
            for j in succ[i]:
                indeg[j] -= 1
                if indeg[j] == 0:
                    ready.append(j)
        return removed < len(self.order)


def bfs(net: PetriNet, limit: int | None = None, *,
        stop_at: Callable[[tuple[int, ...]], bool] | None = None) -> Reach:
    """Breadth-first search over markings as tuples of ints, in transition order (the engine's BFS order).

    Stops, incomplete, before storing a marking past ``limit``, and at the
    first dead marking ``m`` with ``stop_at(m)`` true (a deadlock search).
    """
    pre = [tuple(int(x) for x in row) for row in net.pre]
    post = [tuple(int(x) for x in row) for row in net.post]
    m0 = tuple(int(x) for x in net.initial)
    order = [m0]
    index = {m0: 0}
    depth = [0]
    edges: list[tuple[int, int, int]] = []
    dead: list[int] = []
    queue = deque([0])
    while queue:
        i = queue.popleft()
        m = order[i]
        fired = False
        for t, (a, b) in enumerate(zip(pre, post)):
            if all(x >= y for x, y in zip(m, a)):
                fired = True
                m2 = tuple(x - y + z for x, y, z in zip(m, a, b))
                if m2 not in index:
                    if limit is not None and len(order) >= limit:
                        return Reach(order, edges, dead, depth, False)
                    index[m2] = len(order)
                    order.append(m2)
                    depth.append(depth[i] + 1)
                    queue.append(index[m2])
                edges.append((i, t, index[m2]))
        if not fired:
            dead.append(i)
            if stop_at is not None and stop_at(m):
                return Reach(order, edges, dead, depth, False, stopped=i)
    return Reach(order, edges, dead, depth, True)
