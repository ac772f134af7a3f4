"""Small nets without compiled code: a plain-Python BFS and the two graph questions the properties ask.

Why: loading numba and the nine cached kernels costs about a second in every
new process (compiling them, 10-20 s once per machine), and
``scipy.sparse.csgraph`` half a second, while a workflow of a few hundred
markings is explored in milliseconds by a loop over tuples. So
:func:`petriflow.verify.statespace.explore` runs this engine first, with a
cap on the work it may do (:func:`cap`), and hands over to the compiled
engine only when the net turns out to be bigger. The result is the same
:class:`~petriflow.verify.statespace.StateSpace` (states in the same BFS
order, packed the same way), plus the BFS tree, which is small here and
answers ``path_to`` without the compiled walk back.

The graph questions (who can reach a set of states; strongly connected
components) are answered here in plain Python for such spaces, and by
scipy for the big ones (:mod:`petriflow.verify.properties`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from petriflow.net.petrinet import PetriNet

__all__ = ["WORK", "SmallSearch", "bfs", "can_reach", "cap", "strong_components"]

WORK = 300_000
"""Work the plain engine may spend, in states x (transitions + places / 4), before the compiled one takes over.

About 1 us each, so about 0.3 s of Python: what loading the compiled
kernels costs, so a net too big for this engine loses at most that much by
trying it first.
"""


def cap(net: PetriNet) -> int:
    """The most states the plain engine explores for ``net`` before handing over."""
    return max(256, WORK // max(1, len(net.transitions) + len(net.places) // 4))


def bytes_needed(net: PetriNet, states: int) -> int:
    """A generous estimate of the plain engine's memory for ``states`` markings (tuples, a dict, the lists)."""
    return states * (300 + 16 * len(net.places))


@dataclass(frozen=True)
class SmallSearch:
    """What :func:`bfs` found: markings ``(n, P)`` in BFS order, the BFS tree, dead states and edges."""

    markings: np.ndarray
    parent: np.ndarray
    parent_t: np.ndarray
    dead: np.ndarray
    edges: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    n_edges: int
    n_expanded: int
    complete: bool


def bfs(net: PetriNet, *, limit: int, store_edges: bool, give_up: int) -> SmallSearch | None:
    """Breadth-first search over tuples, transitions in index order (the compiled engine's order).

    Stops, incomplete, when storing a state past ``limit`` (the caller's
    ``max_states``); returns None when ``give_up`` states are exceeded first
    (the net is too big for this engine). States not yet expanded are never
    counted as dead.
    """
    rows = []
    for t in range(len(net.transitions)):
        need = [(int(p), int(net.pre[t, p])) for p in np.flatnonzero(net.pre[t])]
        change = [(int(p), int(d)) for p, d in enumerate(net.post[t] - net.pre[t]) if d]
        rows.append((t, need, change))
    m0 = tuple(int(x) for x in net.initial)
    order = [m0]
    index = {m0: 0}
    parent, parent_t = [-1], [-1]
    dead: list[int] = []
    src: list[int] = []
    via: list[int] = []
    dst: list[int] = []
    n_edges = 0
    head = 0
    complete = True
    while head < len(order):
        m = order[head]
        fired = False
        stop = False
        for t, need, change in rows:
            if any(m[p] < w for p, w in need):
                continue
            fired = True
            nxt = list(m)
            for p, d in change:
                nxt[p] += d
            key = tuple(nxt)
            j = index.get(key)
            if j is None:
                if len(order) >= limit:
                    stop = True
                    break
                if len(order) >= give_up:
                    return None
                j = len(order)
                index[key] = j
                order.append(key)
                parent.append(head)
                parent_t.append(t)
            n_edges += 1
            if store_edges:
                src.append(head)
                via.append(t)
                dst.append(j)
        if stop:
            complete = False
            break
        if not fired:
            dead.append(head)
        head += 1
    edges = None
    if store_edges:
        edges = tuple(np.array(a, dtype=np.int32) for a in (src, via, dst))
    return SmallSearch(
        markings=np.array(order, dtype=np.int64).reshape(len(order), len(net.places)),
        parent=np.array(parent, dtype=np.int64), parent_t=np.array(parent_t, dtype=np.int32),
        dead=np.array(dead, dtype=np.int32), edges=edges,  # type: ignore[arg-type]
        n_edges=n_edges, n_expanded=head, complete=complete,
    )


def can_reach(n: int, src: np.ndarray, dst: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per state, whether some path of the graph ``src -> dst`` leads from it into ``targets``."""
    back: list[list[int]] = [[] for _ in range(n)]
    for a, b in zip(src.tolist(), dst.tolist()):
        back[b].append(a)
    seen = np.zeros(n, dtype=bool)
    todo = [int(x) for x in targets]
    seen[todo] = True
    while todo:
        v = todo.pop()
        for u in back[v]:
            if not seen[u]:
                seen[u] = True
                todo.append(u)
    return seen


def strong_components(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """A component label per state (Tarjan's algorithm, iterative: deep graphs do not hit the recursion limit)."""
    succ: list[list[int]] = [[] for _ in range(n)]
    for a, b in zip(src.tolist(), dst.tolist()):
        succ[a].append(b)
    index = [-1] * n
    low = [0] * n
    on = [False] * n
    label = np.full(n, -1, dtype=np.int64)
    stack: list[int] = []
    counter = 0
    components = 0
    for root in range(n):
        if index[root] >= 0:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on[v] = True
            if i < len(succ[v]):
                work.append((v, i + 1))
                w = succ[v][i]
                if index[w] < 0:
                    work.append((w, 0))
                elif on[w]:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                while True:
                    w = stack.pop()
                    on[w] = False
                    label[w] = components
                    if w == v:
                        break
                components += 1
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
    return label
