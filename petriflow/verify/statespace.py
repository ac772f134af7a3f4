"""Explicit-state reachability: every reachable marking, breadth first.

``explore(net)`` returns a :class:`StateSpace`. States are numbered in BFS
order (0 is the initial marking), so the parent of every state is a state
with a smaller number and ``path_to(i)`` is a shortest firing sequence.

Markings are identified by their packed binary form, never by a string
(pm4py names states by ``repr`` and merges ``{p1: 11}`` with ``{p11: 1}``).

>>> from petriflow.net.petrinet import PetriNet
>>> net = PetriNet.from_arcs(places={"a": 1, "b": 0}, transitions=["t"],
...                          arcs=[("a", "t", 1), ("t", "b", 1)])
>>> ss = explore(net)
>>> ss.n_states, ss.n_edges, ss.dead_states().tolist(), ss.path_to(1)
(2, 1, [1], ['t'])
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from petriflow.errors import InputError, NetError
from petriflow.net.petrinet import PetriNet

__all__ = ["StateSpace", "explore"]


@dataclass(frozen=True, eq=False)
class StateSpace:
    """The (possibly partial) reachability graph of a net.

    ``complete`` is False when a budget stopped the search; then
    ``stop_reason`` says which one, the stored states are all reachable, but
    states not yet expanded are never reported as dead.
    """

    net: PetriNet
    complete: bool
    stop_reason: str | None
    n_states: int
    n_edges: int
    seconds: float
    bytes_per_state: float
    _markings: np.ndarray
    _parent: np.ndarray
    _parent_t: np.ndarray
    _dead: np.ndarray
    _edges: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    _index: dict[bytes, int]

    def marking(self, i: int) -> np.ndarray:
        """The int64 marking of state ``i`` (0 is the initial marking)."""
        self._check(i)
        return self._markings[i].copy()

    def markings(self) -> np.ndarray:
        """All markings, shape ``(n_states, places)``, int64, in state order."""
        return self._markings.copy()

    def index_of(self, marking: np.ndarray) -> int | None:
        """The state number of ``marking``, or None if it was not reached."""
        key = np.asarray(marking, dtype=np.int64).tobytes()
        return self._index.get(key)

    def dead_states(self) -> np.ndarray:
        """Indices of expanded states that enable no transition, ascending."""
        return self._dead.copy()

    def path_to(self, i: int) -> list[str]:
        """A shortest firing sequence (transition ids) from the initial marking to state ``i``."""
        self._check(i)
        seq: list[str] = []
        while i != 0:
            seq.append(self.net.transitions[int(self._parent_t[i])])
            i = int(self._parent[i])
        seq.reverse()
        return seq

    def place_bounds(self) -> np.ndarray:
        """Per place, the most tokens it holds in any stored state."""
        return self._markings.max(axis=0) if self.n_states else np.zeros(len(self.net.places), np.int64)

    def max_tokens_per_place(self) -> int:
        """The k of k-boundedness over the stored states (MCC ``MAX_TOKEN_IN_PLACE``)."""
        b = self.place_bounds()
        return int(b.max()) if b.size else 0

    def max_tokens_per_marking(self) -> int:
        """The largest total token count of a stored state (MCC ``MAX_TOKEN_PER_MARKING``)."""
        return int(self._markings.sum(axis=1).max()) if self.n_states else 0

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(src, transition index, dst)`` arrays, one entry per firing; needs ``store_edges=True``."""
        if self._edges is None:
            raise NetError("edges were not stored", hint="call explore(net, store_edges=True)")
        return tuple(a.copy() for a in self._edges)  # type: ignore[return-value]

    def _check(self, i: int) -> None:
        if not 0 <= i < self.n_states:
            raise IndexError(f"state {i} out of range 0..{self.n_states - 1}")


def explore(
    net: PetriNet,
    *,
    max_states: int | None = None,
    max_bytes: int | None = None,
    store_edges: bool = False,
    progress: bool = False,
) -> StateSpace:
    """Explore the reachable markings of ``net`` breadth first.

    ``max_states`` and ``max_bytes`` bound the search; when one is hit the
    result has ``complete=False`` and ``stop_reason`` set (an unbounded net is
    always stopped this way). ``store_edges`` keeps every firing for
    :meth:`StateSpace.edges`.
    """
    if max_states is not None and max_states < 1:
        raise InputError(f"max_states is {max_states}", hint="pass a budget of at least 1 state")
    start = time.perf_counter()
    pre, post = net.pre, net.post
    delta = post - pre
    T = len(net.transitions)
    P = len(net.places)
    markings: list[np.ndarray] = [net.initial.copy()]
    index: dict[bytes, int] = {net.initial.tobytes(): 0}
    parent = [0]
    parent_t = [0]
    dead: list[int] = []
    src: list[int] = []
    tr: list[int] = []
    dst: list[int] = []
    n_edges = 0
    stop: str | None = None
    per_state = P * 8 + 64
    queue = deque([0])
    while queue:
        i = queue[0]
        m = markings[i]
        enabled = np.flatnonzero(np.all(pre <= m, axis=1))
        if enabled.size == 0:
            dead.append(i)
        new: list[tuple[int, int]] = []
        overflow = False
        for t in enabled:
            m2 = m + delta[t]
            key = m2.tobytes()
            j = index.get(key)
            if j is None:
                if max_states is not None and len(markings) >= max_states:
                    stop = "max_states"
                    overflow = True
                    break
                if max_bytes is not None and (len(markings) + 1) * per_state > max_bytes:
                    stop = "max_bytes"
                    overflow = True
                    break
                j = len(markings)
                index[key] = j
                markings.append(m2)
                parent.append(i)
                parent_t.append(int(t))
                queue.append(j)
            new.append((int(t), j))
        if overflow:
            if enabled.size == 0:
                dead.pop()
            break
        queue.popleft()
        n_edges += len(new)
        if store_edges:
            for t, j in new:
                src.append(i)
                tr.append(t)
                dst.append(j)
    n = len(markings)
    arr = np.array(markings, dtype=np.int64).reshape(n, P)
    edges = None
    if store_edges:
        edges = (np.array(src, np.int64), np.array(tr, np.int64), np.array(dst, np.int64))
    return StateSpace(
        net=net,
        complete=stop is None,
        stop_reason=stop,
        n_states=n,
        n_edges=n_edges,
        seconds=time.perf_counter() - start,
        bytes_per_state=float(per_state),
        _markings=arr,
        _parent=np.array(parent, np.int64),
        _parent_t=np.array(parent_t, np.int64),
        _dead=np.array(sorted(dead), np.int64),
        _edges=edges,
        _index=index,
    )
