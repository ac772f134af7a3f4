"""Compiled inner loops of the explicit-state engine (numba, cached on disk).

Private to :mod:`petriflow.verify.statespace`, which owns the data layout.
Everything here works on a few flat numpy arrays:

- ``packed[i, :]``: state ``i``'s marking packed into ``W`` uint64 words; states
  are appended in BFS order, so the BFS queue is simply ``packed[head:n]``;
- ``keys``: the visited set, an open-addressing hash table (linear probing,
  power-of-two size) whose rows hold the *complemented* packed markings
  (``~x``), so an all-zero row means empty and a lookup that hits touches
  one cache line and never the ``packed`` array. The one marking whose
  complement is all zeros (every field at its maximum) lives in ``special``.
  No BFS tree is stored: the parent of a state is its lowest-numbered
  predecessor, found backwards when a path is asked for (statespace.py).
- ``index``: a second, lazily built table of state numbers (``-1`` = empty)
  for ``index_of``; ``tidx``: state numbers parallel to ``keys``, kept only
  when edges are stored (an edge needs its target's number).

A kernel call expands states from ``head`` until the queue is empty or it must
return to Python: an array must grow, a place needs a wider field (overflow:
nothing of the state being expanded is stored yet; it is expanded again after
repacking, so a count never wraps), the state budget is hit, or a chunk ends
(progress bar).
Numba is a wheel on PyPI, so nothing is compiled at install time; the first
call compiles (a few seconds) and caches the machine code next to this file.
The expansion kernels and the helpers they inline stay in this one file:
numba's on-disk cache is invalidated only when the cached function's own
file changes, so a helper moved to another module could be edited and the
kernels that inlined it would keep running the old machine code. Passes
that inline nothing (repacking, bounds) are in :mod:`petriflow.verify._kernel_scan`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

__all__ = [
    "CHUNK",
    "DONE",
    "GROW",
    "GROW_DEAD",
    "GROW_EDGES",
    "LIMIT",
    "OVERFLOW",
    "expand_general",
    "expand_safe",
    "fill_keys",
    "grow_keys",
    "lookup",
    "rehash",
    "walk_back",
]

DONE, CHUNK, GROW, GROW_DEAD, GROW_EDGES, OVERFLOW, LIMIT = range(7)

A = np.ndarray
Status = tuple[int, int, int, int, int, int, int]
"""What an ``expand_*`` call returns: ``(status, n, head, n_dead, n_stored, n_edges, overflowing place)``."""

_SEED = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_ONE = np.uint64(1)
_ZERO = np.uint64(0)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_PREFETCH_FROM = (1 << 20) - 1
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_S58 = np.uint64(58)
_BIT_OF = np.zeros(64, dtype=np.int64)  # (lowest bit * _DEBRUIJN) >> 58  ->  its position
for _i in range(64):
    _BIT_OF[((1 << _i) * 0x03F79D71B4CB0A89 % (1 << 64)) >> 58] = _i
assert sorted(_BIT_OF.tolist()) == list(range(64))  # table mask from which successor lookups are batched


@njit(inline="always", cache=True)
def _mix(x: np.uint64) -> np.uint64:
    """splitmix64's finaliser: every input bit flips about half the output bits."""
    x ^= x >> _S30
    x *= _M1
    x ^= x >> _S27
    x *= _M2
    x ^= x >> _S31
    return x


@njit(inline="always", cache=True)
def _hash_row(packed: np.ndarray, i: int, W: int) -> np.uint64:
    h = _mix(packed[i, 0] ^ _SEED)
    for w in range(1, W):
        h = _mix(h ^ packed[i, w])
    return h


@njit(inline="always", cache=True)
def _slot(x: np.ndarray, k: int, W: int, smask: int) -> Any:
    """The home slot of row ``k`` of ``x`` in a table of ``smask + 1`` slots (both tables hash alike)."""
    return np.int64(_hash_row(x, k, W) & np.uint64(smask))


@njit(inline="always", cache=True)
def _probe(table: np.ndarray, packed: np.ndarray, key: np.ndarray, k: int, W: int) -> tuple[Any, Any]:
    """Find row ``k`` of ``key`` among the stored states: ``(slot, state)``, state -1 if absent."""
    smask = table.shape[0] - 1
    s = _slot(key, k, W, smask)
    while True:
        j = table[s]
        if j < 0:
            return s, -1
        same = True
        for w in range(W):
            if packed[j, w] != key[k, w]:
                same = False
                break
        if same:
            return s, j
        s = (s + 1) & smask


@njit(cache=True)
def rehash(table: np.ndarray, packed: np.ndarray, n: int) -> None:
    """Fill an empty (all -1) ``table`` with states ``0..n-1``."""
    W = packed.shape[1]
    smask = table.shape[0] - 1
    for i in range(n):
        s = _slot(packed, i, W, smask)
        while table[s] >= 0:
            s = (s + 1) & smask
        table[s] = i


@njit(cache=True)
def lookup(table: np.ndarray, packed: np.ndarray, key: np.ndarray) -> Any:
    """The state whose packed marking is ``key[0]``, or -1."""
    return _probe(table, packed, key, 0, packed.shape[1])[1]


@njit(cache=True)
def walk_back(index: A, packed: A, i: int, pre_ptr: A, pre_word: A, pre_shift: A, pre_mask: A, pre_w: A,
              inc_ptr: A, inc_word: A, inc_shift: A, inc_mask: A, inc_room: A, inc_place: A,
              delta: A) -> A:  # pragma: no cover
    """Transitions of the BFS-tree path from state ``i`` back to state 0, last one first.

    The tables un-fire transitions (``Layout.general_tables(backwards=True)``).
    At each step the predecessor with the lowest number is taken: states are
    numbered in BFS order, so it is the state that first reached this one,
    one layer closer to the start. Returns an empty array if a state has no
    stored predecessor (which would be a bug).
    """
    W = packed.shape[1]
    T = delta.shape[0]
    key = np.empty((1, W), dtype=np.uint64)
    out = np.empty(64, dtype=np.int64)
    L = 0
    while i != 0:
        best, best_t = i, -1
        for t in range(T):
            ok = True
            for k in range(pre_ptr[t], pre_ptr[t + 1]):
                if (packed[i, pre_word[k]] >> pre_shift[k]) & pre_mask[k] < pre_w[k]:
                    ok = False
                    break
            for k in range(inc_ptr[t], inc_ptr[t + 1]):
                if not ok:
                    break
                if np.int64((packed[i, inc_word[k]] >> inc_shift[k]) & inc_mask[k]) > inc_room[k]:
                    ok = False
            if not ok:
                continue
            for w in range(W):
                key[0, w] = packed[i, w] + delta[t, w]
            j = _probe(index, packed, key, 0, W)[1]
            if j >= 0 and j < best:
                best, best_t = j, t
        if best_t < 0:
            return out[:0]
        if L == out.shape[0]:
            bigger = np.empty(2 * L, dtype=np.int64)
            bigger[:L] = out
            out = bigger
        out[L] = best_t
        L += 1
        i = best
    return out[:L]


@njit(inline="always", cache=True)
def _find(keys: np.ndarray, s: int, x: np.ndarray, k: int, W: int) -> tuple[int, bool]:
    """Probe ``keys`` from slot ``s`` for row ``k`` of ``x``: ``(slot, found)``; the slot is free if not found."""
    smask = keys.shape[0] - 1
    while True:
        empty = True
        same = True
        for w in range(W):
            v = keys[s, w]
            if v != _ZERO:
                empty = False
            if v != ~x[k, w]:
                same = False
        if same:
            return s, True
        if empty:
            return s, False
        s = (s + 1) & smask


@njit(inline="always", cache=True)
def _all_ones(x: np.ndarray, k: int, W: int) -> bool:
    for w in range(W):
        if x[k, w] != _ALL:
            return False
    return True


@njit(cache=True)
def fill_keys(keys: np.ndarray, tidx: np.ndarray, special: np.ndarray, packed: np.ndarray, n: int,
              with_index: bool) -> None:
    """Fill an all-zero ``keys`` table (and ``tidx`` if ``with_index``) with states ``0..n-1``."""
    W = packed.shape[1]
    smask = keys.shape[0] - 1
    special[0] = -1
    for i in range(n):
        if _all_ones(packed, i, W):
            special[0] = i
            continue
        s, _ = _find(keys, _slot(packed, i, W, smask), packed, i, W)
        for w in range(W):
            keys[s, w] = ~packed[i, w]
        if with_index:
            tidx[s] = i


@njit(cache=True)
def grow_keys(old: np.ndarray, old_tidx: np.ndarray, keys: np.ndarray, tidx: np.ndarray, with_index: bool) -> None:
    """Move every key of ``old`` into the larger, all-zero ``keys`` (and their numbers into ``tidx``).

    Walking the old table in slot order, each key lands at or near slot ``s``
    or ``s + len(old)`` of a table twice as large, so the writes stream
    through memory instead of jumping about as a rebuild from ``packed`` would.
    """
    W = old.shape[1]
    smask = keys.shape[0] - 1
    key = np.empty((1, W), dtype=np.uint64)
    for s in range(old.shape[0]):
        used = False
        for w in range(W):
            key[0, w] = ~old[s, w]
            if old[s, w] != _ZERO:
                used = True
        if not used:
            continue
        t = _slot(key, 0, W, smask)
        while True:
            free = True
            for w in range(W):
                if keys[t, w] != _ZERO:
                    free = False
                    break
            if free:
                break
            t = (t + 1) & smask
        for w in range(W):
            keys[t, w] = old[s, w]
        if with_index:
            tidx[t] = old_tidx[s]


@njit(inline="always", cache=True)
def _resolve(packed: A, n: int, head: int, keys: A, tidx: A, special: A, esrc: A, etr: A, edst: A,
             n_stored: int, store_edges: bool, n_edges: int, limit: int,
             succ: A, st: A, hs: A, K: int, sink: A) -> tuple[bool, int, int, int]:
    """Look up the ``K`` successors in ``succ`` (BFS order kept); append the new ones.

    On large tables the slots of all successors are touched first, so that
    their cache misses overlap instead of queueing. Returns ``(limit hit, n,
    n_stored, n_edges)``.
    """
    W = packed.shape[1]
    smask = keys.shape[0] - 1
    s0, e0 = n_stored, n_edges
    for k in range(K):
        hs[k] = _slot(succ, k, W, smask)
    if smask >= _PREFETCH_FROM and K > 1:  # tables that do not fit in cache
        acc = _ZERO
        for k in range(K):
            acc ^= keys[hs[k], 0]
        sink[0] ^= acc
    for k in range(K):
        if _all_ones(succ, k, W):
            found = special[0] >= 0
            j = special[0]
            s = -1
        else:
            s, found = _find(keys, hs[k], succ, k, W)
            j = tidx[s] if (found and store_edges) else -1
        if not found:
            if n >= limit:  # the budget: keep the states found, not the half-expanded state's edges
                return True, n, s0, e0
            for w in range(W):
                packed[n, w] = succ[k, w]
            if s < 0:
                special[0] = n
            else:
                for w in range(W):
                    keys[s, w] = ~succ[k, w]
                if store_edges:
                    tidx[s] = n
            j = n
            n += 1
        if store_edges:
            esrc[n_stored] = head
            etr[n_stored] = st[k]
            edst[n_stored] = j
            n_stored += 1
        n_edges += 1
    return False, n, n_stored, n_edges


@njit(inline="always", cache=True)
def _settle(packed: A, n: int, head: int, keys: A, tidx: A, special: A, dead: A, n_dead: int, esrc: A, etr: A,
            edst: A, n_stored: int, store_edges: bool, n_edges: int, limit: int, succ: A, st: A, hs: A, K: int,
            sink: A) -> tuple[bool, int, int, int, int]:
    """The end of expanding ``head`` in both kernels: dead, or its ``K`` successors stored (``_resolve``)."""
    if K == 0:
        dead[n_dead] = head
        return False, n, n_dead + 1, n_stored, n_edges
    hit, n, n_stored, n_edges = _resolve(packed, n, head, keys, tidx, special, esrc, etr, edst,
                                         n_stored, store_edges, n_edges, limit, succ, st, hs, K, sink)
    return hit, n, n_dead, n_stored, n_edges


@njit(inline="always", cache=True)
def _pause(head: int, stop_head: int, n: int, T: int, cap: int, table_limit: int, n_dead: int, dead_cap: int,
           store_edges: bool, n_stored: int, edges_cap: int) -> int:
    """Why an ``expand_*`` kernel must return to Python before expanding state ``head``, or ``DONE`` if it need not.

    Checked before each expansion, for the worst case of that one state (all
    ``T`` transitions enabled, every successor new), so nothing is stored
    half-way: the chunk ended (``CHUNK``), the state store or the hash table
    is full (``GROW``), or the dead-state or edge list is (``GROW_DEAD``,
    ``GROW_EDGES``). Both kernels share it so they pause for the same reasons.
    """
    if head >= stop_head:
        return CHUNK
    if n + T + 1 > cap or n + T > table_limit:
        return GROW
    if n_dead >= dead_cap:
        return GROW_DEAD
    if store_edges and n_stored + T > edges_cap:
        return GROW_EDGES
    return DONE


@njit(cache=True)
def expand_safe(packed: A, n: int, head: int, stop_head: int, keys: A, table_limit: int, tidx: A, special: A,
                dead: A, n_dead: int, esrc: A, etr: A, edst: A, n_stored: int, store_edges: bool,
                n_edges: int, limit: int, pre: A, notpre: A, post: A, preT: A,
                sparse: bool, piv_ptr: A, piv_t: A, always: A) -> Status:  # pragma: no cover
    """BFS over a net whose places are one bit wide and whose arcs have weight 1.

    Enabled: ``x & pre == pre``. Dense mode tests all transitions at once,
    word by word (no branches, so LLVM vectorises it). Sparse mode, for nets
    with many transitions per word, tests only the transitions whose *pivot*
    (one chosen input place, ``piv_ptr``/``piv_t`` by bit position) is
    marked, plus those with no input (``always``), then sorts them so that
    states keep the same numbers as in dense mode. Successor ``(x & ~pre) |
    post``; a place that would get a second token (``(x & ~pre) & post !=
    0``) overflows its bit. Returns ``(status, n, head, n_dead, n_stored,
    n_edges, overflowing place bit)``.
    """
    W = packed.shape[1]
    T = pre.shape[0]
    cap = packed.shape[0]
    succ = np.empty((T + 1, W), dtype=np.uint64)
    st = np.empty(T + 1, dtype=np.int32)
    hs = np.empty(T + 1, dtype=np.int64)
    sink = np.zeros(1, dtype=np.uint64)
    en = np.empty(T, dtype=np.bool_)
    elist = np.empty(T + 1, dtype=np.int64)
    while head < n:
        pause = _pause(head, stop_head, n, T, cap, table_limit, n_dead, dead.shape[0], store_edges, n_stored,
                       esrc.shape[0])
        if pause != DONE:
            return pause, n, head, n_dead, n_stored, n_edges, -1
        E = 0
        if sparse:
            for a in range(always.shape[0]):
                elist[E] = always[a]
                E += 1
            for w in range(W):
                x = packed[head, w]
                while x != _ZERO:
                    low = x & (~x + _ONE)
                    base = w * 64 + _BIT_OF[np.int64((low * _DEBRUIJN) >> _S58)]
                    for q in range(piv_ptr[base], piv_ptr[base + 1]):
                        t = piv_t[q]
                        ok = True
                        for v in range(W):
                            if packed[head, v] & pre[t, v] != pre[t, v]:
                                ok = False
                                break
                        if ok:
                            elist[E] = t
                            E += 1
                    x ^= low
            for a in range(1, E):  # insertion sort: E is the handful of enabled transitions
                v = elist[a]
                b = a - 1
                while b >= 0 and elist[b] > v:
                    elist[b + 1] = elist[b]
                    b -= 1
                elist[b + 1] = v
        else:
            x = packed[head, 0]
            for t in range(T):
                en[t] = (x & preT[0, t]) == preT[0, t]
            for w in range(1, W):
                x = packed[head, w]
                for t in range(T):
                    en[t] &= (x & preT[w, t]) == preT[w, t]
            for t in range(T):
                if en[t]:
                    elist[E] = t
                    E += 1
        for e in range(E):
            t = elist[e]
            for w in range(W):
                a = packed[head, w] & notpre[t, w]
                c = a & post[t, w]
                if c != _ZERO:
                    bit = 0
                    while (c >> np.uint64(bit)) & _ONE == _ZERO:
                        bit += 1
                    return OVERFLOW, n, head, n_dead, n_stored, n_edges, w * 64 + bit
                succ[e, w] = a | post[t, w]
            st[e] = t
        hit, n, n_dead, n_stored, n_edges = _settle(packed, n, head, keys, tidx, special, dead, n_dead, esrc, etr,
                                                    edst, n_stored, store_edges, n_edges, limit, succ, st, hs, E, sink)
        if hit:
            return LIMIT, n, head, n_dead, n_stored, n_edges, -1
        head += 1
    return DONE, n, head, n_dead, n_stored, n_edges, -1


@njit(cache=True)
def expand_general(packed: A, n: int, head: int, stop_head: int, keys: A, table_limit: int, tidx: A,
                   special: A, dead: A, n_dead: int, esrc: A, etr: A, edst: A, n_stored: int,
                   store_edges: bool, n_edges: int, limit: int,
                   pre_ptr: A, pre_word: A, pre_shift: A, pre_mask: A, pre_w: A,
                   inc_ptr: A, inc_word: A, inc_shift: A, inc_mask: A, inc_room: A, inc_place: A,
                   delta: A) -> Status:  # pragma: no cover
    """BFS over any P/T net whose places have fields of any width.

    Enabled: every input field holds at least the arc weight (read from the
    packed words). Before firing, every place the transition grows is checked
    against its field's room (``inc_room`` = field maximum - growth, may be
    negative); then the successor is ``x + delta[t]`` word by word (wrapping
    uint64 arithmetic is exact because no field borrows or carries). Returns
    like :func:`expand_safe`, with the overflowing place index.
    """
    W = packed.shape[1]
    T = delta.shape[0]
    cap = packed.shape[0]
    succ = np.empty((T + 1, W), dtype=np.uint64)
    st = np.empty(T + 1, dtype=np.int32)
    hs = np.empty(T + 1, dtype=np.int64)
    sink = np.zeros(1, dtype=np.uint64)
    while head < n:
        pause = _pause(head, stop_head, n, T, cap, table_limit, n_dead, dead.shape[0], store_edges, n_stored,
                       esrc.shape[0])
        if pause != DONE:
            return pause, n, head, n_dead, n_stored, n_edges, -1
        K = 0
        for t in range(T):
            ok = True
            for k in range(pre_ptr[t], pre_ptr[t + 1]):
                if (packed[head, pre_word[k]] >> pre_shift[k]) & pre_mask[k] < pre_w[k]:
                    ok = False
                    break
            if not ok:
                continue
            for k in range(inc_ptr[t], inc_ptr[t + 1]):
                v = (packed[head, inc_word[k]] >> inc_shift[k]) & inc_mask[k]
                if np.int64(v) > inc_room[k]:
                    return OVERFLOW, n, head, n_dead, n_stored, n_edges, inc_place[k]
            for w in range(W):
                succ[K, w] = packed[head, w] + delta[t, w]
            st[K] = t
            K += 1
        hit, n, n_dead, n_stored, n_edges = _settle(packed, n, head, keys, tidx, special, dead, n_dead, esrc, etr,
                                                    edst, n_stored, store_edges, n_edges, limit, succ, st, hs, K, sink)
        if hit:
            return LIMIT, n, head, n_dead, n_stored, n_edges, -1
        head += 1
    return DONE, n, head, n_dead, n_stored, n_edges, -1
