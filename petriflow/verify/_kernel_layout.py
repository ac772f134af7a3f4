"""How markings are packed into uint64 words, and the per-net tables the kernels read.

A :class:`Layout` gives every place a bit field (word, shift, width). Fields
never straddle two words, so one word holds ``64 // width`` places of one
width. A 1-safe net of up to 64 places packs into a single word; a place that
turns out to need more bits is widened (:meth:`Layout.widen`) and every stored
state repacked, so counts never wrap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from petriflow.errors import BudgetExceeded
from petriflow.net.petrinet import PetriNet

MAX_WIDTH = 63  # a field must fit a non-negative int64
_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class Layout:
    """Bit fields of the places; ``W`` words per marking (at least one)."""

    widths: tuple[int, ...]
    word: np.ndarray  # (P,) int64
    shift: np.ndarray  # (P,) uint64
    mask: np.ndarray  # (P,) uint64, the field's maximum value
    W: int

    @classmethod
    def of(cls, widths: tuple[int, ...]) -> Layout:
        word, shift = [], []
        w, used = 0, 0
        for b in widths:
            if used + b > 64:
                w, used = w + 1, 0
            word.append(w)
            shift.append(used)
            used += b
        return cls(
            widths=widths,
            word=np.array(word, dtype=np.int64),
            shift=np.array(shift, dtype=np.uint64),
            mask=np.array([(1 << b) - 1 for b in widths], dtype=np.uint64),
            W=w + 1,
        )

    @classmethod
    def initial(cls, net: PetriNet, bounds: np.ndarray | None = None) -> Layout:
        """One bit per place unless the initial marking or a known bound (e.g. from P-invariants) needs more."""
        top = net.initial if bounds is None else np.maximum(net.initial, np.asarray(bounds, dtype=np.int64))
        return cls.of(tuple(min(MAX_WIDTH, max(1, int(v).bit_length())) for v in top))

    @classmethod
    def fitting(cls, net: PetriNet, maxima: np.ndarray) -> Layout:
        """The narrowest fields that hold ``maxima`` (per place): for markings already found."""
        top = np.asarray(maxima, dtype=np.int64)
        widths = tuple(max(1, int(v).bit_length()) for v in top)
        for p, b in enumerate(widths):
            if b > MAX_WIDTH:
                raise BudgetExceeded(f"place '{net.places[p]}' holds more than 2**63 - 1 tokens", where=net.places[p])
        return cls.of(widths)

    def pack_rows(self, markings: np.ndarray) -> np.ndarray:
        """``(n, W)`` packed rows of ``(n, P)`` markings that fit their fields."""
        out = np.zeros((markings.shape[0], self.W), dtype=np.uint64)
        for p in range(len(self.widths)):
            out[:, self.word[p]] |= markings[:, p].astype(np.uint64) << self.shift[p]
        return out

    def widen(self, place: int, name: str) -> Layout:
        """The same layout with ``place``'s field one bit wider (up to 8 bits), then twice as wide.

        One bit at a time keeps small bounds tight (a place bounded by 5 gets
        3 bits, not 4); doubling beyond keeps the number of repacks of a big
        counter small.
        """
        b = self.widths[place]
        if b >= MAX_WIDTH:
            raise BudgetExceeded(f"place '{name}' holds more than 2**63 - 1 tokens", where=name)
        widths = list(self.widths)
        widths[place] = b + 1 if b < 8 else min(MAX_WIDTH, 2 * b)
        return Layout.of(tuple(widths))

    @property
    def safe(self) -> bool:
        return all(b == 1 for b in self.widths)

    def pack(self, marking: np.ndarray) -> np.ndarray | None:
        """``(1, W)`` uint64 words of ``marking``, or None if some count does not fit its field."""
        m = np.asarray(marking, dtype=np.int64)
        out = np.zeros((1, self.W), dtype=np.uint64)
        if m.shape != self.word.shape or (m < 0).any() or (m.astype(np.uint64) > self.mask).any():
            return None
        vals = m.astype(np.uint64) << self.shift
        np.bitwise_or.at(out[0], self.word, vals)
        return out

    def unpack(self, packed: np.ndarray) -> np.ndarray:
        """``(n, P)`` int64 markings from ``(n, W)`` packed rows."""
        P = len(self.widths)
        out = np.empty((packed.shape[0], P), dtype=np.int64)
        for p in range(P):
            out[:, p] = (packed[:, self.word[p]] >> self.shift[p]) & self.mask[p]
        return out

    def place_of_bit(self, w: int, bit: int) -> int:
        """The place whose field starts at ``bit`` of word ``w`` (used for 1-bit overflows)."""
        hits = np.flatnonzero((self.word == w) & (self.shift == np.uint64(bit)))
        return int(hits[0])

    # -- what the kernels read -------------------------------------------------
    def safe_tables(self, net: PetriNet, *, sparse: bool = False) -> tuple[Any, ...]:
        """Tables of the 1-bit kernel (1-bit fields, unit arcs).

        ``pre``, ``~pre``, ``post`` bit masks ``(T, W)`` uint64; ``pre``
        transposed ``(W, T)`` for the vectorised dense test; then ``sparse``
        and, for sparse mode, each transition filed under its pivot (the input
        place that the fewest transitions consume) by bit position
        ``word * 64 + shift`` (CSR ``piv_ptr``/``piv_t``), and the transitions
        with no input.
        """
        T = len(net.transitions)
        pre = np.zeros((T, self.W), dtype=np.uint64)
        post = np.zeros((T, self.W), dtype=np.uint64)
        for t in range(T):
            for p in np.flatnonzero(net.pre[t]):
                pre[t, self.word[p]] |= np.uint64(1) << self.shift[p]
            for p in np.flatnonzero(net.post[t]):
                post[t, self.word[p]] |= np.uint64(1) << self.shift[p]
        consumers = (net.pre > 0).sum(axis=0)
        lists: list[list[int]] = [[] for _ in range(64 * self.W)]
        always: list[int] = []
        for t in range(T):
            inputs = np.flatnonzero(net.pre[t])
            if inputs.size == 0:
                always.append(t)
                continue
            pivot = int(inputs[np.argmin(consumers[inputs])])
            lists[int(self.word[pivot]) * 64 + int(self.shift[pivot])].append(t)
        piv_ptr = np.zeros(64 * self.W + 1, dtype=np.int64)
        piv_ptr[1:] = np.cumsum([len(x) for x in lists])
        piv_t = np.array([t for x in lists for t in x], dtype=np.int64)
        return (pre, ~pre, post, np.ascontiguousarray(pre.T), sparse, piv_ptr, piv_t,
                np.array(always, dtype=np.int64))

    def general_tables(self, net: PetriNet, *, backwards: bool = False) -> tuple[np.ndarray, ...]:
        """CSR lists of input checks and growth checks, and the packed effect ``delta`` (T, W).

        ``backwards`` swaps ``pre`` and ``post``: the tables then un-fire
        transitions, for walking from a state back to its predecessors.
        """
        pre_m, post_m = (net.post, net.pre) if backwards else (net.pre, net.post)
        T = len(net.transitions)
        pre_ptr, pre_p, pre_w = [0], [], []
        inc_ptr, inc_p, inc_v = [0], [], []
        delta = np.zeros((T, self.W), dtype=np.uint64)
        for t in range(T):
            for p in np.flatnonzero(pre_m[t]):
                pre_p.append(p)
                pre_w.append(int(pre_m[t, p]))
            pre_ptr.append(len(pre_p))
            eff = post_m[t] - pre_m[t]
            words = [0] * self.W
            for p in np.flatnonzero(eff):
                d = int(eff[p])
                words[int(self.word[p])] += d << int(self.shift[p])
                if d > 0:
                    inc_p.append(p)
                    inc_v.append(d)
            inc_ptr.append(len(inc_p))
            delta[t] = [x & _U64 for x in words]
        pre_idx = np.array(pre_p, dtype=np.int64)
        inc_idx = np.array(inc_p, dtype=np.int64)
        # a weight larger than its field can never be met until the field widens: clip to mask + 1
        weights = np.array([min(w, int(self.mask[p]) + 1) for p, w in zip(pre_p, pre_w)], dtype=np.uint64)
        room = np.array([int(self.mask[p]) - v for p, v in zip(inc_p, inc_v)], dtype=np.int64)
        return (
            np.array(pre_ptr, dtype=np.int64), self.word[pre_idx], self.shift[pre_idx], self.mask[pre_idx], weights,
            np.array(inc_ptr, dtype=np.int64), self.word[inc_idx], self.shift[inc_idx], self.mask[inc_idx], room,
            inc_idx, delta,
        )
