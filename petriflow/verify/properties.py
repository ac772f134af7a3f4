"""Behavioural properties read off an explored state space, one question per function.

Each function takes a complete :class:`StateSpace` (explored with
``store_edges=True`` where it needs the graph) and answers one question.
Graph questions (who can reach the final marking, terminal strongly
connected components) use ``scipy.sparse.csgraph``, which handles the
millions of states that networkx cannot hold; a small graph is answered in
plain Python (:mod:`petriflow.verify._small`) while scipy is not loaded,
since importing it costs more (half a second) than the whole question.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

from petriflow.net.petrinet import PetriNet
from petriflow.verify import _small
from petriflow.verify.statespace import StateSpace

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

__all__ = [
    "cannot_complete",
    "dead_transitions",
    "deadlock_states",
    "final_states",
    "improper_completions",
    "non_live_transitions",
    "shortest_path_to_any",
]


def final_states(space: StateSpace) -> np.ndarray:
    """Indices of reachable markings that are the net's declared final marking."""
    net = space.net
    if net.final is None:
        return np.zeros(0, dtype=np.int64)
    return space.states_with(net.final, net.final_mask)


def deadlock_states(space: StateSpace) -> np.ndarray:
    """Dead markings other than the final one (every dead marking when none is declared)."""
    dead = space.dead_states()
    if space.net.final is None or dead.size == 0:
        return dead
    return _without(dead, final_states(space))


def _without(states: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """Sorted ``states`` not in ``drop`` (``np.setdiff1d`` imports ``numpy.ma``: 0.1-0.2 s on a small check)."""
    if not drop.size:
        return np.sort(states)
    return np.sort(states[~np.isin(states, drop, kind="table")]) if states.size else states


def shortest_path_to_any(space: StateSpace, states: np.ndarray) -> list[str] | None:
    """A shortest firing sequence from the initial marking to one of ``states``.

    The engine numbers states in breadth-first order (depth never decreases
    with the number), so the smallest index is a closest one.
    """
    if states.size == 0:
        return None
    return space.path_to(int(states.min()))


PLAIN_EDGES = 200_000
"""Graphs with at most this many edges are searched in plain Python unless scipy is already loaded."""


def _plain(space: StateSpace) -> bool:
    """Whether to answer a graph question without scipy: a small graph, and scipy not imported yet."""
    return space.n_edges <= PLAIN_EDGES and "scipy.sparse.csgraph" not in sys.modules


def _graph(space: StateSpace, *, reverse: bool = False, extra: tuple[np.ndarray, np.ndarray] | None = None) -> csr_matrix:
    from scipy.sparse import (
        csr_matrix,  # imported on use: scipy costs a tenth of a second
    )

    src, _, dst = space.edges()
    if extra is not None:
        src, dst = np.concatenate([src, extra[0]]), np.concatenate([dst, extra[1]])
    if reverse:
        src, dst = dst, src
    n = space.n_states
    return csr_matrix((np.ones(src.size, dtype=np.int8), (src, dst)), shape=(n, n))


def cannot_complete(space: StateSpace) -> np.ndarray:
    """Reachable markings from which the final marking can no longer be reached (option to complete)."""
    finals = final_states(space)
    n = space.n_states
    if finals.size == 0:
        return np.arange(n)
    if _plain(space):
        src, _, dst = space.edges()
        return np.flatnonzero(~_small.can_reach(n, src, dst, finals))
    from scipy.sparse.csgraph import breadth_first_order

    reverse = _graph(space, reverse=True)
    can = np.zeros(n, dtype=bool)
    for f in finals:  # usually one final state
        if not can[f]:
            can[breadth_first_order(reverse, int(f), directed=True, return_predecessors=False)] = True
    return np.flatnonzero(~can)


def improper_completions(space: StateSpace, sink: str) -> np.ndarray:
    """Reachable markings with a token in the sink and something else left (proper completion)."""
    marked_sink = np.flatnonzero(space.tokens(sink) >= 1)
    return _without(marked_sink, final_states(space))


def dead_transitions(space: StateSpace) -> list[str]:
    """Transitions that no reachable marking enables (the net is not quasi-live if any)."""
    _, trans, _ = space.edges()
    fired = np.zeros(len(space.net.transitions), dtype=bool)
    fired[trans] = True
    return [t for t, f in zip(space.net.transitions, fired) if not f]


def non_live_transitions(space: StateSpace, *, short_circuit: bool = False) -> list[str]:
    """Transitions that are not live: some reachable marking never again enables them.

    A transition is live iff it labels an edge inside every terminal strongly
    connected component of the reachability graph. With ``short_circuit`` the
    final states are linked back to the initial one (the usual reading of
    liveness for workflow nets: the case can always be started again).
    """
    net: PetriNet = space.net
    extra = None
    if short_circuit:
        finals = final_states(space)
        extra = (finals, np.zeros(finals.size, dtype=np.int64))
    src, trans, dst = space.edges()
    if _plain(space):
        every_src = src if extra is None else np.concatenate([src, extra[0]])
        every_dst = dst if extra is None else np.concatenate([dst, extra[1]])
        labels = _small.strong_components(space.n_states, every_src, every_dst)
    else:
        from scipy.sparse.csgraph import connected_components

        _, labels = connected_components(_graph(space, extra=extra), directed=True, connection="strong")
    if extra is not None:
        src = np.concatenate([src, extra[0]])
        dst = np.concatenate([dst, extra[1]])
        trans = np.concatenate([trans, np.full(extra[0].size, -1)])
    leaving = labels[src] != labels[dst]
    terminal = np.ones(labels.max() + 1, dtype=bool)
    terminal[labels[src[leaving]]] = False
    inside = ~leaving & (trans >= 0)
    live = np.ones(len(net.transitions), dtype=bool)
    for comp in np.flatnonzero(terminal):
        in_comp = inside & (labels[src] == comp)
        seen = np.zeros(len(net.transitions), dtype=bool)
        seen[trans[in_comp]] = True
        live &= seen
    return [t for t, ok in zip(net.transitions, live) if not ok]
