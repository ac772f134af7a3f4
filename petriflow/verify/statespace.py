"""Explicit-state reachability: every reachable marking, breadth first, compiled.

``explore(net)`` returns a :class:`StateSpace`. States are numbered in BFS
order (0 is the initial marking), so the parent of every state is a state
with a smaller number and ``path_to(i)`` is a shortest firing sequence.

How it is fast and small (see :mod:`petriflow.verify._kernel`): a marking is
packed into uint64 words (1 bit per place while the net behaves 1-safe,
wider fields for places that need them, found by trying: a field that would
overflow is widened and every state repacked, never wrapped); visited states
live in one ``(n, W)`` array in BFS order, which doubles as the BFS queue,
plus an open-addressing hash set of the packed words themselves; the BFS
loop runs in numba. No BFS tree is stored: a state's BFS parent is its
lowest-numbered predecessor, found backwards when a path is asked for.
Markings are identified by their packed binary form, never by a string
(pm4py names states by ``repr`` and merges ``{p1: 11}`` with ``{p11: 1}``).

Small nets never load the compiled code: :func:`explore` first runs a
plain-Python BFS (:mod:`petriflow.verify._small`) with a cap on its work,
and only a net that outgrows it loads numba (about a second from the cache;
10-20 s to compile on a machine's first run, announced on stderr; ``python
-m petriflow.verify.warm`` does it ahead of time).

>>> from petriflow.net.petrinet import PetriNet
>>> net = PetriNet.from_arcs(places={"a": 1, "b": 0}, transitions=["t"],
...                          arcs=[("a", "t", 1), ("t", "b", 1)])
>>> ss = explore(net)
>>> ss.n_states, ss.n_edges, ss.dead_states().tolist(), ss.path_to(1)
(2, 1, [1], ['t'])
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Literal

import numpy as np

from petriflow.errors import InputError
from petriflow.net.petrinet import PetriNet
from petriflow.verify import _small
from petriflow.verify._jit import announce_compile
from petriflow.verify._kernel_layout import Layout
from petriflow.verify._space import StateSpace

__all__ = ["StateSpace", "explore", "warm_up"]

MAX_STATES = 2**31 - 2  # state numbers are int32
_LOAD = 0.7  # hash table load factor before it doubles
_CHUNK = 1 << 17  # states expanded per kernel call (progress bar granularity)
_SPARSE_FROM = 400  # transitions per packed word from which the 1-bit kernel tests only pivot-marked ones


_WARM: list[float] = []


def warm_up() -> float:
    """Load (or, the first time on a machine, compile) the numba kernels; returns the seconds spent.

    :func:`explore` calls it once per process before its first compiled
    search, so its ``seconds`` measure exploration only; call it yourself to
    pay the cost up front. A compile that takes more than a moment says so
    on stderr.
    """
    if _WARM:
        return 0.0
    t0 = time.perf_counter()
    with announce_compile("the state-space kernels", "10-20 s"):
        # a 1-safe start that overflows: covers both kernels, repacking, the budget stop and the helpers
        net = PetriNet.from_arcs(places={"a": 1, "b": 0}, transitions=["t", "u"],
                                 arcs=[("a", "t", 1), ("t", "a", 1), ("t", "b", 1), ("b", "u", 1)])
        ss = _explore(net, max_states=6, max_bytes=None, store_edges=True, progress=False)
        ss.place_bounds()
        ss.index_of(net.initial)
        ss.path_to(ss.n_states - 1)
        from petriflow.verify import _kernel

        small, idx = np.zeros((2, 1), dtype=np.uint64), np.zeros(2, dtype=np.int32)
        _kernel.grow_keys(small, idx, np.zeros((4, 1), dtype=np.uint64), np.zeros(4, dtype=np.int32), True)
    _WARM.append(time.perf_counter() - t0)
    return _WARM[0]


Engine = Literal["auto", "plain", "compiled"]


def explore(
    net: PetriNet,
    *,
    max_states: int | None = None,
    max_bytes: int | None = None,
    store_edges: bool = False,
    progress: bool = False,
    bounds: np.ndarray | None = None,
    engine: Engine = "auto",
) -> StateSpace:
    """Explore the reachable markings of ``net`` breadth first.

    ``max_states`` and ``max_bytes`` bound the search (``max_bytes`` counts
    the state store and the edge list); when one is hit the result has
    ``complete=False`` and ``stop_reason`` set; an unbounded net always ends
    that way (coverability decides unboundedness, not this). ``store_edges``
    keeps every firing for :meth:`StateSpace.edges`. ``progress`` draws a tqdm
    bar on stderr (states, states/s, frontier). ``bounds`` (per place, e.g.
    proven by place invariants) sizes the packed fields up front; without it
    fields start at one bit and widen when a count would overflow (a wrong
    bound only costs a repack, never a wrong answer).

    Without ``max_bytes`` the search still stops (``stop_reason="max_bytes"``)
    before its arrays would take half of the machine's physical memory, so
    an unbounded net without a budget ends with a partial result, not with
    the out-of-memory killer.

    ``engine``: ``"auto"`` tries the plain-Python BFS first while the
    compiled kernels are not loaded in this process (a small net then never
    loads them; a bigger one costs the plain engine's capped work, about
    0.3 s, before the compiled search), ``"plain"`` only that (up to
    ``max_states``; slow on big nets), ``"compiled"`` only numba.
    Both give the same states in the same order.
    """
    if max_states is not None and max_states < 1:
        raise InputError(f"max_states is {max_states}", hint="pass a budget of at least 1 state")
    if max_bytes is not None and max_bytes < 1:
        raise InputError(f"max_bytes is {max_bytes}", hint="pass a memory budget of at least 1 byte")
    if max_bytes is None:
        max_bytes = _half_of_memory()
    if engine == "plain" or (engine == "auto" and not _WARM):
        give_up = MAX_STATES if engine == "plain" else _small.cap(net)
        if engine == "plain" or max_bytes is None or _small.bytes_needed(net, give_up) <= max_bytes:
            found = _explore_plain(net, max_states=max_states, store_edges=store_edges, give_up=give_up)
            if found is not None:
                return found
    compile_seconds = warm_up()
    if bounds is not None and np.shape(bounds) != (len(net.places),):
        raise InputError(f"bounds has shape {np.shape(bounds)}, expected ({len(net.places)},)",
                         hint="give one bound per place")
    ss = _explore(net, max_states=max_states, max_bytes=max_bytes, store_edges=store_edges, progress=progress,
                  bounds=bounds)
    object.__setattr__(ss, "compile_seconds", compile_seconds)
    return ss


def _explore(net: PetriNet, *, max_states: int | None, max_bytes: int | None, store_edges: bool,
             progress: bool, bounds: np.ndarray | None = None) -> StateSpace:
    from petriflow.verify import _kernel as K
    from petriflow.verify._kernel_scan import repack

    start, cpu = time.perf_counter(), time.process_time()
    T = len(net.transitions)
    limit = min(max_states or MAX_STATES, MAX_STATES)
    unit = bool((net.pre <= 1).all() and (net.post <= 1).all())
    lay = Layout.initial(net, bounds)
    cap = 1024
    while cap < 2 * (T + 2):
        cap *= 2
    packed = np.zeros((cap, lay.W), dtype=np.uint64)
    first = lay.pack(net.initial)
    assert first is not None
    packed[0] = first[0]
    tsize = 2 * cap
    special = np.full(1, -1, dtype=np.int64)

    def new_keys(tsize: int, W: int) -> tuple[np.ndarray, np.ndarray]:
        keys = np.zeros((tsize, W), dtype=np.uint64)
        tidx = np.zeros(tsize if store_edges else 1, dtype=np.int32)
        K.fill_keys(keys, tidx, special, packed, n, store_edges)
        return keys, tidx

    n, head, n_dead, n_stored, n_edges = 1, 0, 0, 0, 0
    keys, tidx = new_keys(tsize, lay.W)
    dead = np.zeros(256, dtype=np.int32)
    ecap = 4 * cap if store_edges else 0
    esrc, etr, edst = (np.zeros(ecap, dtype=np.int32) for _ in range(3))
    stop: str | None = None

    def tables(lay: Layout) -> tuple[bool, tuple[Any, ...]]:
        if lay.safe and unit:
            return True, lay.safe_tables(net, sparse=T >= _SPARSE_FROM * lay.W)
        return False, lay.general_tables(net)

    def nbytes(*arrays: np.ndarray) -> int:
        return sum(a.nbytes for a in arrays)

    safe, tab = tables(lay)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=max_states, unit=" states", file=sys.stderr, desc=net.name, dynamic_ncols=True)
    chunk = _CHUNK if progress else 8 * _CHUNK
    while True:
        args = (packed, n, head, head + chunk, keys, int(tsize * _LOAD), tidx, special, dead, n_dead,
                esrc, etr, edst, n_stored, store_edges, n_edges, limit)
        kernel = K.expand_safe if safe else K.expand_general
        status, n, head, n_dead, n_stored, n_edges, over = kernel(*args, *tab)
        if bar is not None:
            bar.update(n - bar.n)
            bar.set_postfix(frontier=n - head, refresh=False)
        if status == K.DONE:
            break
        if status == K.LIMIT:
            stop = "max_states"
            break
        if status == K.GROW:
            new_cap = max(2 * cap, 2 * (n + T + 2)) if n + T + 1 > cap else cap
            new_tsize = tsize
            while n + T > int(new_tsize * _LOAD):
                new_tsize *= 2
            now = nbytes(packed, keys, tidx, dead, esrc, etr, edst)
            # peak use: the old arrays are alive while the new ones fill
            grow = (new_cap * 8 * lay.W if new_cap != cap else 0) + (
                new_tsize * (8 * lay.W + (4 if store_edges else 0)) if new_tsize != tsize else 0)
            if max_bytes is not None and now + grow > max_bytes:
                stop = "max_bytes"
                break
            if new_cap != cap:
                packed = _resized(packed, new_cap)
                cap = new_cap
            if new_tsize != tsize:
                tsize = new_tsize
                bigger = np.zeros((tsize, lay.W), dtype=np.uint64)
                bigger_idx = np.zeros(tsize if store_edges else 1, dtype=np.int32)
                K.grow_keys(keys, tidx, bigger, bigger_idx, store_edges)
                keys, tidx = bigger, bigger_idx
        elif status == K.GROW_DEAD:
            dead = _resized(dead, 2 * dead.shape[0])
        elif status == K.GROW_EDGES:
            grow = 3 * 4 * esrc.shape[0]
            if max_bytes is not None and nbytes(packed, keys, tidx, dead, esrc, etr, edst) + grow > max_bytes:
                stop = "max_bytes"
                break
            esrc, etr, edst = (_resized(a, 2 * a.shape[0] + 4 * (T + 1)) for a in (esrc, etr, edst))
        elif status == K.OVERFLOW:
            place = lay.place_of_bit(over // 64, over % 64) if safe else over
            new = lay.widen(place, net.places[place])
            repacked = np.zeros((cap, new.W), dtype=np.uint64)
            repack(packed, n, lay.word, lay.shift, lay.mask, repacked, new.word, new.shift)
            packed, lay = repacked, new
            keys, tidx = new_keys(tsize, lay.W)
            safe, tab = tables(lay)
    if bar is not None:
        bar.close()
    store = nbytes(packed[:n], keys, tidx if store_edges else tidx[:0])
    del keys, tidx
    packed = packed[:n].copy()
    packed.flags.writeable = False
    edges = None
    if store_edges:
        edges = tuple(a[:n_stored].copy() for a in (esrc, etr, edst))
        for a in edges:
            a.flags.writeable = False
    return StateSpace(
        net=net,
        complete=stop is None,
        stop_reason=stop,
        n_states=n,
        n_edges=n_edges,
        seconds=time.perf_counter() - start,
        bytes_per_state=store / n,
        n_expanded=head,
        cpu_seconds=time.process_time() - cpu,
        _layout=lay,
        _packed=packed,
        _dead=dead[:n_dead].copy(),
        _edges=edges,  # type: ignore[arg-type]
    )


def explore_small(net: PetriNet, *, max_states: int | None, store_edges: bool) -> StateSpace | None:
    """A quarter of the plain engine's capped search (no numba): a small net's state space, None for a bigger one."""
    return _explore_plain(net, max_states=max_states, store_edges=store_edges, give_up=_small.cap(net) // 4)


def _explore_plain(net: PetriNet, *, max_states: int | None, store_edges: bool, give_up: int) -> StateSpace | None:
    """The plain-Python BFS as a :class:`StateSpace`, packed like the compiled engine's; None past ``give_up``."""
    start, cpu = time.perf_counter(), time.process_time()
    found = _small.bfs(net, limit=min(max_states or MAX_STATES, MAX_STATES), store_edges=store_edges, give_up=give_up)
    if found is None:
        return None
    m = found.markings
    lay = Layout.fitting(net, m.max(axis=0) if m.size else net.initial)
    packed = lay.pack_rows(m)
    for a in (packed, found.parent, found.parent_t, found.dead, *(found.edges or ())):
        a.flags.writeable = False
    return StateSpace(
        net=net, complete=found.complete, stop_reason=None if found.complete else "max_states",
        n_states=m.shape[0], n_edges=found.n_edges, seconds=time.perf_counter() - start,
        bytes_per_state=_small.bytes_needed(net, 1), n_expanded=found.n_expanded,
        cpu_seconds=time.process_time() - cpu, _layout=lay, _packed=packed, _dead=found.dead, _edges=found.edges,
        _tree=(found.parent, found.parent_t),
    )


def _half_of_memory() -> int | None:
    """Half the physical memory in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def _resized(a: np.ndarray, rows: int) -> np.ndarray:
    """``a`` copied into a zeroed array of ``rows`` rows (same trailing shape and dtype)."""
    out = np.zeros((rows, *a.shape[1:]), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out
