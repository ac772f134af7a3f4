"""Siphons and traps, and Commoner's siphon-trap property: liveness read off the net's structure.

A *siphon* ``S`` (``•S ⊆ S•``: every transition that puts a token into ``S``
takes one from ``S``) once empty stays empty; a *trap* (``S• ⊆ •S``) once
marked stays marked. A net where every siphon holds an initially marked trap
(Commoner's property) never empties a siphon, so for ordinary nets it never
deadlocks, and for free-choice nets it is exactly liveness.

The largest siphon inside a set of places is a linear worklist fixpoint,
compiled with numba on first use; a trap of a net is a siphon of the reversed
net, so the same kernel answers both. The numba function lives in this file
with everything it calls, because numba's ``cache=True`` only notices changes
to the compiled function's own file.

>>> from petriflow.net.petrinet import PetriNet
>>> mutex = PetriNet.from_arcs(
...     places={"idle": 1, "busy": 0}, transitions=["enter", "leave"],
...     arcs=[("idle", "enter", 1), ("enter", "busy", 1), ("busy", "leave", 1), ("leave", "idle", 1)])
>>> minimal_siphons(mutex), commoner_holds(mutex)
([('idle', 'busy')], True)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from petriflow.errors import BudgetExceeded
from petriflow.net.petrinet import PetriNet

__all__ = [
    "commoner_holds",
    "maximal_siphon_in",
    "maximal_trap_in",
    "minimal_siphons",
    "siphon_without_marked_trap",
]


def _mask(net: PetriNet, places: Iterable[str | int]) -> np.ndarray:
    m = np.zeros(len(net.places), dtype=bool)
    for p in places:
        m[net.place_index(p) if isinstance(p, str) else int(p)] = True
    return m


class _Flow:
    """Sparse arcs of a net for the siphon fixpoint: inputs and outputs of transitions, producers and consumers of places.

    A trap of a net is a siphon of the reversed net, so ``_Flow(post, pre)``
    answers trap questions with the same code.
    """

    def __init__(self, pre: np.ndarray, post: np.ndarray) -> None:
        def csr(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
            ptr = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
            return ptr, np.array([x for r in rows for x in r], dtype=np.int64)

        T, P = pre.shape
        self.arrays = (
            *csr([np.flatnonzero(pre[t]).tolist() for t in range(T)]),  # inputs of t
            *csr([np.flatnonzero(post[t]).tolist() for t in range(T)]),  # outputs of t
            *csr([np.flatnonzero(post[:, p]).tolist() for p in range(P)]),  # producers of p
            *csr([np.flatnonzero(pre[:, p]).tolist() for p in range(P)]),  # consumers of p
        )

    def max_siphon(self, Q: np.ndarray) -> np.ndarray:
        """Largest siphon inside ``Q`` (bool mask)."""
        return np.asarray(_jit_max_siphon()(*self.arrays, Q.astype(np.bool_)))


def _max_siphon_py(in_ptr, in_idx, out_ptr, out_idx, prod_ptr, prod_idx, cons_ptr, cons_idx, Q):  # type: ignore[no-untyped-def]
    """Worklist fixpoint, linear in the arcs: a place fed by a transition with no input left in the set goes."""
    T = in_ptr.shape[0] - 1
    P = Q.shape[0]
    inq = Q.copy()
    cnt = np.zeros(T, dtype=np.int64)
    for t in range(T):
        for j in range(in_ptr[t], in_ptr[t + 1]):
            if inq[in_idx[j]]:
                cnt[t] += 1
    stack = np.empty(P, dtype=np.int64)
    queued = np.zeros(P, dtype=np.bool_)
    top = 0
    for p in range(P):
        if inq[p]:
            for j in range(prod_ptr[p], prod_ptr[p + 1]):
                if cnt[prod_idx[j]] == 0:
                    stack[top] = p
                    top += 1
                    queued[p] = True
                    break
    while top > 0:
        top -= 1
        p = stack[top]
        inq[p] = False
        for j in range(cons_ptr[p], cons_ptr[p + 1]):
            t = cons_idx[j]
            cnt[t] -= 1
            if cnt[t] == 0:
                for jj in range(out_ptr[t], out_ptr[t + 1]):
                    q = out_idx[jj]
                    if inq[q] and not queued[q]:
                        stack[top] = q
                        top += 1
                        queued[q] = True
    return inq


_MAX_SIPHON: Callable[..., Any] | None = None


def _jit_max_siphon() -> Callable[..., Any]:
    """The compiled maximal-siphon kernel, compiled (or loaded from numba's cache) on first use."""
    global _MAX_SIPHON
    if _MAX_SIPHON is None:
        import numba

        _MAX_SIPHON = numba.njit(cache=True)(_max_siphon_py)
    return _MAX_SIPHON


def maximal_siphon_in(net: PetriNet, places: Iterable[str | int]) -> tuple[str, ...]:
    """The largest siphon (``•S ⊆ S•``: once empty, empty forever) made of ``places`` (ids); may be empty."""
    Q = _Flow(net.pre, net.post).max_siphon(_mask(net, places))
    return tuple(net.places[i] for i in np.flatnonzero(Q))


def maximal_trap_in(net: PetriNet, places: Iterable[str | int]) -> tuple[str, ...]:
    """The largest trap (``S• ⊆ •S``: once marked, marked forever) made of ``places`` (ids); may be empty."""
    Q = _Flow(net.post, net.pre).max_siphon(_mask(net, places))
    return tuple(net.places[i] for i in np.flatnonzero(Q))


def minimal_siphons(net: PetriNet, *, limit: int = 1000, max_calls: int = 20_000) -> list[tuple[str, ...]]:
    """Every minimal non-empty siphon, as sorted tuples of place ids (sorted list).

    A search over subproblems (required places R, excluded places E), after
    Cordone, Ferrarini and Piroddi (2005): the largest siphon avoiding E is
    shrunk to a globally minimal siphon M, keeping R while it can. Any other
    minimal siphon holding R misses a place of M outside R, so the branches
    "exclude the i-th such place, require the ones before it" cover the rest
    without overlap; branching only on minimal siphons keeps the tree small.
    More than ``limit`` siphons or ``max_calls`` subproblems raise
    :class:`BudgetExceeded`.
    """
    flow = _Flow(net.pre, net.post)
    P = len(net.places)
    found: set[frozenset[int]] = set()
    calls = 0
    todo: list[tuple[frozenset[int], frozenset[int]]] = [(frozenset(), frozenset())]
    while todo:
        required, excluded = todo.pop()
        calls += 1
        if calls > max_calls:
            raise BudgetExceeded(f"siphon search passed {max_calls} subproblems", where=net.name, hint="raise max_calls")
        Q = np.ones(P, dtype=bool)
        Q[list(excluded)] = False
        S: np.ndarray = flow.max_siphon(Q)
        req = list(required)
        if not S.any() or not S[req].all():
            continue
        # shrink: first keep the required places, then to global minimality
        for keep in (True, False):
            for q in np.flatnonzero(S):
                if keep and int(q) in required:
                    continue
                trial = S.copy()
                trial[q] = False
                T2: np.ndarray = flow.max_siphon(trial)
                if T2.any() and (not keep or T2[req].all()):
                    S = T2
        found.add(frozenset(int(i) for i in np.flatnonzero(S)))
        if len(found) > limit:
            raise BudgetExceeded(f"more than {limit} minimal siphons", where=net.name, hint="raise limit")
        free = [int(x) for x in np.flatnonzero(S) if int(x) not in required]
        for i, x in enumerate(free):
            todo.append((required | frozenset(free[:i]), excluded | {x}))
    return sorted(tuple(net.places[i] for i in sorted(s)) for s in found)



def siphon_without_marked_trap(net: PetriNet, *, limit: int = 1000) -> tuple[str, ...] | None:
    """A minimal siphon whose largest trap is initially unmarked, or None (Commoner's property holds)."""
    m0 = net.initial
    traps = _Flow(net.post, net.pre)
    for S in minimal_siphons(net, limit=limit):
        trap = traps.max_siphon(_mask(net, S))
        if not (m0[trap] > 0).any():
            return S
    return None


def commoner_holds(net: PetriNet, *, limit: int = 1000) -> bool:
    """Commoner's property: every siphon contains an initially marked trap.

    For (extended) free-choice nets it is equivalent to liveness; for any
    ordinary net it implies deadlock freedom. Checking the minimal siphons is
    enough, since every siphon contains one.
    """
    return siphon_without_marked_trap(net, limit=limit) is None
