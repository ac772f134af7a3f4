"""The result of a reachability search: :class:`StateSpace`, and the questions it answers.

:mod:`petriflow.verify.statespace` finds the states (and re-exports this
class, its public home); this module keeps what a found space is and reads
from it: markings unpacked from the packed words, lookups through a lazily
built index, shortest paths by firing backwards, bounds, edges. A space the
plain-Python engine found (:mod:`petriflow.verify._small`) keeps its BFS
tree and never loads compiled code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from petriflow.errors import NetError
from petriflow.net.petrinet import PetriNet
from petriflow.verify._kernel_layout import Layout
from petriflow.verify._tree import tree_path

__all__ = ["StateSpace"]


@dataclass(frozen=True, eq=False)
class StateSpace:
    """The (possibly partial) reachability graph of a net.

    ``complete`` is False when a budget stopped the search; then
    ``stop_reason`` says which one (``"max_states"`` or ``"max_bytes"``), the
    stored states are all reachable, and the states not yet expanded (numbers
    ``n_expanded`` and up) are never reported as dead. ``bytes_per_state``
    counts the visited-state store: packed markings and hash set (plus the
    set's state numbers when edges are stored; not the edge list itself).
    ``seconds`` (wall clock) and ``cpu_seconds`` (this process) exclude
    numba's one-off compile or cache load, which is in ``compile_seconds``.
    A space found by the plain-Python engine (small nets, ``plain`` True)
    keeps its BFS tree and answers every question without compiled code;
    its ``bytes_per_state`` is that engine's estimate of its Python objects.
    """

    net: PetriNet
    complete: bool
    stop_reason: str | None
    n_states: int
    n_edges: int
    seconds: float
    bytes_per_state: float
    n_expanded: int = 0
    compile_seconds: float = 0.0
    cpu_seconds: float = 0.0
    _layout: Layout | None = field(default=None, repr=False)
    _packed: np.ndarray | None = field(default=None, repr=False)
    _dead: np.ndarray | None = field(default=None, repr=False)
    _edges: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)
    _tree: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def plain(self) -> bool:
        """Whether the plain-Python engine found this space (then no compiled code is ever loaded for it)."""
        return self._tree is not None

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"partial ({self.stop_reason}, {self.n_expanded:,} expanded)"
        return (f"StateSpace({self.net.name!r}: {self.n_states:,} states, {self.n_edges:,} edges, {state}, "
                f"{self.seconds:.3g} s, {self.bytes_per_state:.1f} B/state)")

    @property
    def _pk(self) -> np.ndarray:
        """The packed states (always set by :func:`explore`)."""
        assert self._packed is not None
        return self._packed

    @property
    def states_per_second(self) -> float:
        """Stored states per wall-clock second of the search."""
        return self.n_states / self.seconds if self.seconds > 0 else float("inf")

    @property
    def bits_per_place(self) -> tuple[int, ...]:
        """The packing width chosen for each place (1 for places that stayed 1-safe)."""
        assert self._layout is not None
        return self._layout.widths

    def marking(self, i: int) -> np.ndarray:
        """The int64 marking of state ``i`` (0 is the initial marking)."""
        self._check(i)
        assert self._layout is not None and self._packed is not None
        return np.asarray(self._layout.unpack(self._packed[i : i + 1])[0])

    def markings(self) -> np.ndarray:
        """All markings, shape ``(n_states, places)``, int64, in state order (8 bytes per place per state)."""
        assert self._layout is not None and self._packed is not None
        return self._layout.unpack(self._packed)

    def tokens(self, place: str | int) -> np.ndarray:
        """Tokens in one place in every state, shape ``(n_states,)`` int64 (cheap: one field of the packed words)."""
        p = place if isinstance(place, (int, np.integer)) else self.net.place_index(place)
        lay = self._layout
        assert lay is not None and self._packed is not None
        return np.asarray(((self._packed[:, lay.word[p]] >> lay.shift[p]) & lay.mask[p]).astype(np.int64))

    def states_with(self, marking: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Indices of the states whose marking equals ``marking`` on the places of ``mask`` (all if None).

        Compares packed words directly, so it needs no ``(n_states, places)``
        matrix: use it for partial final markings on big state spaces.
        """
        lay = self._layout
        assert lay is not None and self._packed is not None
        m = np.asarray(marking, dtype=np.int64)
        sel = np.ones(len(self.net.places), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if (m[sel] < 0).any() or (m[sel].astype(np.uint64) > lay.mask[sel]).any():
            return np.zeros(0, dtype=np.int64)
        want = np.zeros(lay.W, dtype=np.uint64)
        care = np.zeros(lay.W, dtype=np.uint64)
        idx = np.flatnonzero(sel)
        np.bitwise_or.at(want, lay.word[idx], m[idx].astype(np.uint64) << lay.shift[idx])
        np.bitwise_or.at(care, lay.word[idx], lay.mask[idx] << lay.shift[idx])
        return np.flatnonzero(np.all((self._packed & care) == want, axis=1))

    def index_of(self, marking: np.ndarray) -> int | None:
        """The state number of ``marking``, or None if it was not reached."""
        assert self._layout is not None
        key = self._layout.pack(marking)
        if key is None:
            return None
        if self.plain:
            hits = self.states_with(np.asarray(marking))
            return int(hits[0]) if hits.size else None
        from petriflow.verify import _kernel

        j = int(_kernel.lookup(self._index(), self._pk, key))
        return None if j < 0 else j

    def _index(self) -> np.ndarray:
        """A hash table from packed marking to state number, built on first use (8-16 bytes per state)."""
        if "index" not in self._cache:
            from petriflow.verify import _kernel

            size = 1 << max(4, (2 * self.n_states).bit_length())
            table = np.full(size, -1, dtype=np.int32)
            _kernel.rehash(table, self._pk, self.n_states)
            self._cache["index"] = table
        index: np.ndarray = self._cache["index"]
        return index

    def dead_states(self) -> np.ndarray:
        """Indices of expanded states that enable no transition, ascending."""
        assert self._dead is not None
        return self._dead.astype(np.int64)

    def path_to(self, i: int) -> list[str]:
        """A shortest firing sequence (transition ids) from the initial marking to state ``i``.

        It is the path of the BFS tree: states are numbered in BFS order, so
        the first state that reached ``i`` is its lowest-numbered predecessor,
        one layer up. Predecessors are found by firing backwards (``m - post +
        pre`` for every transition with ``post <= m``), in compiled code:
        ``len(path) * transitions`` lookups, instead of 8 bytes per state for a
        stored BFS tree. Among several states, the lowest-numbered one has the
        shortest path.
        """
        self._check(i)
        if self._tree is not None:
            return tree_path(self._tree[0], self._tree[1], self.net.transitions, i)
        from petriflow.verify import _kernel

        assert self._layout is not None
        if "back" not in self._cache:
            self._cache["back"] = self._layout.general_tables(self.net, backwards=True)
        steps = _kernel.walk_back(self._index(), self._pk, i, *self._cache["back"])
        if i != 0 and steps.size == 0:  # pragma: no cover - would be an engine bug
            raise RuntimeError(f"state {i} has no lower-numbered predecessor")
        return [self.net.transitions[int(t)] for t in steps[::-1]]

    def depth(self, i: int) -> int:
        """Length of a shortest firing sequence to state ``i`` (its BFS layer; never less than a lower number's)."""
        return len(self.path_to(i))

    def place_bounds(self) -> np.ndarray:
        """Per place, the most tokens it holds in any stored state."""
        return self._bounds()[0].copy()

    def max_tokens_per_place(self) -> int:
        """The k of k-boundedness over the stored states (MCC ``MAX_TOKEN_IN_PLACE``)."""
        b = self._bounds()[0]
        return int(b.max()) if b.size else 0

    def max_tokens_per_marking(self) -> int:
        """The largest total token count of a stored state (MCC ``MAX_TOKEN_PER_MARKING``)."""
        return self._bounds()[1]

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(src, transition index, dst)`` int32 arrays, one entry per firing; needs ``store_edges=True``."""
        if self._edges is None:
            raise NetError("edges were not stored", hint="call explore(net, store_edges=True)")
        return self._edges

    def _bounds(self) -> tuple[np.ndarray, int]:
        if "bounds" not in self._cache:
            lay = self._layout
            assert lay is not None
            if self.plain:
                m = self.markings()
                out = m.max(axis=0) if m.size else np.zeros(len(self.net.places), dtype=np.int64)
                total = int(m.sum(axis=1).max()) if m.size else 0
            else:
                from petriflow.verify import _kernel_scan

                out = np.zeros(len(self.net.places), dtype=np.int64)
                total = int(_kernel_scan.bounds(self._pk, self.n_states, lay.word, lay.shift, lay.mask, out))
            out.flags.writeable = False
            self._cache["bounds"] = (out, total)
        found: tuple[np.ndarray, int] = self._cache["bounds"]
        return found

    def _check(self, i: int) -> None:
        if not 0 <= i < self.n_states:
            raise IndexError(f"state {i} out of range 0..{self.n_states - 1}")
