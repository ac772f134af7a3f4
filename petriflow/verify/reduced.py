"""Deadlock and termination checks on a stubborn-set reduced state space (partial-order reduction).

In each state the search fires only the enabled transitions of one
*stubborn set* (Valmari), computed from the net structure:

* an **enabled** transition in the set pulls in every transition that
  consumes from one of its input places, unless both only read that place
  (the ones that could disable it, or that it could disable), so what lies
  outside the set commutes with it;
* a **disabled** transition in the set names one input place that lacks
  tokens and pulls in every transition that can add tokens to that place
  (``post > pre``), so nothing outside the set can enable it.

Such a set keeps every reachable dead marking reachable in the reduced graph
(Valmari's theorem for deadlock-preserving stubborn sets, conditions D1 and
D2; every enabled member is a key transition). The "pulls in" relation is a
graph on transitions; a linear pass (Tarjan) over it picks, among the
closures, one with the fewest enabled transitions. So ``k`` independent
branches of a fan-out cost about ``k`` times one branch, not their product:
``fork_join(16)`` (4**16 markings) is answered in 51 states.

The search is depth first, in a numba kernel (``cache=True``) that stores
markings in the narrowest integer type that holds them (int8, widened on
demand) with an open-addressing hash index. The kernel returns to Python at
each new dead marking, so that ``final_check`` (a Python callable, e.g.
``net.is_final``) can excuse it and the search resumes where it stopped,
and whenever storage must grow (``max_bytes`` is checked there).
:func:`find_infinite_run` runs the same search looking for a back edge: a
lasso-shaped run that never ends.

>>> from petriflow.net.petrinet import PetriNet
>>> net = PetriNet.from_arcs(places={"a": 1, "b": 0}, transitions=["t"],
...                          arcs=[("a", "t", 1), ("t", "b", 1)])
>>> r = find_deadlock(net)
>>> r.deadlock, r.trace, r.complete
(True, ['t'], True)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from petriflow.errors import BudgetExceeded, InputError
from petriflow.net.petrinet import PetriNet

__all__ = ["ReducedResult", "TerminationResult", "find_deadlock", "find_infinite_run"]

# kernel return codes
_DONE, _DEAD, _GROW_STATES, _GROW_STACK, _BUDGET, _WIDEN, _CYCLE, _TICK = 0, 1, 2, 3, 4, 5, 6, 7
_TICK_EVERY = 1 << 16  # states between progress updates
_DTYPES = (np.int8, np.int16, np.int32, np.int64)


@dataclass(frozen=True)
class ReducedResult:
    """The answer of a reduced deadlock search.

    ``deadlock`` is True when a dead marking that ``final_check`` does not
    excuse was reached; then ``trace`` is a firing sequence (transition ids)
    from the initial marking to it, and ``marking`` is that marking.
    ``complete`` is True when the verdict is definitive: a deadlock was found,
    or the reduced space was exhausted without one. When a budget stopped the
    search, ``deadlock`` is False, ``complete`` is False and ``stop_reason``
    says which budget ("no deadlock among ``states_visited`` states so far").
    ``states_visited`` counts the distinct markings stored by the reduced
    search (the JSON's ``states_reduced``); ``dead_final`` counts the dead
    markings that ``final_check`` accepted.
    """

    deadlock: bool
    trace: list[str] | None
    marking: np.ndarray | None
    states_visited: int
    complete: bool
    stop_reason: str | None = None
    dead_final: int = 0
    seconds: float = 0.0


def _csr(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    for i, r in enumerate(rows):
        ptr[i + 1] = ptr[i] + len(r)
    idx = np.array([x for r in rows for x in r], dtype=np.int64)
    return ptr, idx


def _structure(net: PetriNet) -> tuple[np.ndarray, ...]:
    """Sparse adjacency the kernel needs: inputs of each transition, consumers and producers of each place."""
    pre, post = net.pre, net.post
    T, P = pre.shape
    t_in = [np.flatnonzero(pre[t]).tolist() for t in range(T)]
    consumers = [np.flatnonzero(pre[:, p]).tolist() for p in range(P)]
    producers = [np.flatnonzero(post[:, p] > pre[:, p]).tolist() for p in range(P)]
    return (*_csr(t_in), *_csr(consumers), *_csr(producers))


# -- the numba kernel (plain Python here; compiled lazily by _kernels) --------


def _rehash_py(states: np.ndarray, n: int, table: np.ndarray) -> None:
    """Rebuild the open-addressing index (slot holds state number + 1) after the arrays grew."""
    mask = table.shape[0] - 1
    for i in range(n):
        h = 1469598103934665603
        for v in states[i]:
            h = (h ^ v) * 1099511628211
        k = (h ^ (h >> 29)) & mask
        while table[k] != 0:
            k = (k + 1) & mask
        table[k] = i + 1


def _stubborn_py(m, pre, delta, t_in_ptr, t_in_idx, cons_ptr, cons_idx, prod_ptr, prod_idx,
                 scratch, edges) -> int:
    """Write the enabled transitions of a smallest candidate stubborn set of ``m`` into
    ``scratch[9]`` and return how many there are (0: ``m`` is dead).

    The "pulls in" relation is a graph on transitions; the closure of any
    transition is a stubborn set. Its strongly connected components (Tarjan,
    one linear pass) are emitted sinks first, so the best set is the closure of
    a component that holds enabled transitions while none of its descendants
    does: then its enabled transitions are exactly that component's.
    """
    T = pre.shape[0]
    en, index, low, onst = scratch[0], scratch[1], scratch[2], scratch[3]
    tstack, call_t, call_pos, comp = scratch[4], scratch[5], scratch[6], scratch[7]
    eptr, best, comp_en, comp_desc = scratch[8], scratch[9], scratch[10], scratch[11]
    eend = scratch[12]
    n_en = 0
    for t in range(T):
        e = 1
        for j in range(t_in_ptr[t], t_in_ptr[t + 1]):
            p = t_in_idx[j]
            if m[p] < pre[t, p]:
                e = 0
                break
        en[t] = e
        n_en += e
    if n_en == 0:
        return 0
    for t in range(T):
        index[t] = -1
        onst[t] = 0
    counter = 0
    sp = 0  # Tarjan stack
    ne = 0  # edges of the "pulls in" graph, generated for the transitions the search reaches
    n_comp = 0
    best_k = T + 1
    best_c = -1
    for root in range(T):
        if en[root] == 0 or index[root] >= 0:
            continue
        cd = 0  # call depth
        call_t[0] = root
        call_pos[0] = -1
        while cd >= 0:
            v = call_t[cd]
            if call_pos[cd] < 0:  # first visit: number v and generate its edges
                index[v] = counter
                low[v] = counter
                counter += 1
                tstack[sp] = v
                sp += 1
                onst[v] = 1
                eptr[v] = ne
                if en[v] == 1:
                    for j in range(t_in_ptr[v], t_in_ptr[v + 1]):
                        p = t_in_idx[j]
                        v_takes = delta[v, p] < 0
                        for jj in range(cons_ptr[p], cons_ptr[p + 1]):
                            t2 = cons_idx[jj]
                            # two transitions that only read p do not interfere through p
                            if t2 != v and (v_takes or delta[t2, p] < 0):
                                edges[ne] = t2
                                ne += 1
                else:
                    missing = -1
                    fewest = T + 1
                    for j in range(t_in_ptr[v], t_in_ptr[v + 1]):
                        p = t_in_idx[j]
                        if m[p] < pre[v, p] and prod_ptr[p + 1] - prod_ptr[p] < fewest:
                            fewest = prod_ptr[p + 1] - prod_ptr[p]
                            missing = p
                    for jj in range(prod_ptr[missing], prod_ptr[missing + 1]):
                        edges[ne] = prod_idx[jj]
                        ne += 1
                eend[v] = ne
                call_pos[cd] = eptr[v]
                continue
            pos = call_pos[cd]
            if pos < eend[v]:
                call_pos[cd] = pos + 1
                w = edges[pos]
                if index[w] < 0:
                    cd += 1
                    call_t[cd] = w
                    call_pos[cd] = -1
                elif onst[w] == 1 and index[w] < low[v]:
                    low[v] = index[w]
                continue
            if low[v] == index[v]:  # v roots a component: pop it
                c = n_comp
                n_comp += 1
                k = 0
                desc = 0
                top = sp
                while True:
                    sp -= 1
                    w = tstack[sp]
                    onst[w] = 0
                    comp[w] = c
                    k += en[w]
                    if w == v:
                        break
                # descendants: components reached by edges out of this one (all emitted already)
                for j in range(sp, top):
                    w = tstack[j]
                    for q in range(eptr[w], eend[w]):
                        cx = comp[edges[q]]
                        if cx != c and (comp_en[cx] > 0 or comp_desc[cx] == 1):
                            desc = 1
                            break
                    if desc == 1:
                        break
                comp_en[c] = k
                comp_desc[c] = desc
                if k > 0 and desc == 0 and k < best_k:
                    best_k = k
                    best_c = c
            cd -= 1
            if cd >= 0:
                u = call_t[cd]
                low[u] = min(low[u], low[v])
    k = 0
    for t in range(T):
        if en[t] == 1 and index[t] >= 0 and comp[t] == best_c:
            best[k] = t
            k += 1
    return k


def _search_py(pre, delta, m0, t_in_ptr, t_in_idx, cons_ptr, cons_idx, prod_ptr, prod_idx,
               states, parent, parent_t, onstack, table, frames, buf, ctr, limit, scratch, edges, top_value,
               cycles, every) -> int:
    """Resumable depth-first search; returns one of the ``_DONE.._BUDGET`` codes.

    ``ctr`` = [stored states, stack depth, buffer top, last dead (or cycle source) state,
    started, cycle target, cycle transition]. With ``cycles`` a back edge (to a
    state on the DFS stack) returns ``_CYCLE``.
    Every exit leaves the arrays consistent, so the caller can grow them (or
    excuse a final dead marking) and call again.
    """
    P = states.shape[1]
    cap = states.shape[0]
    mask = table.shape[0] - 1
    best = scratch[9]
    if ctr[4] == 0:
        k = _stubborn(m0, pre, delta, t_in_ptr, t_in_idx, cons_ptr, cons_idx, prod_ptr, prod_idx, scratch, edges)
        for p in range(P):
            states[0, p] = m0[p]
        h = 1469598103934665603
        for p in range(P):
            h = (h ^ m0[p]) * 1099511628211
        table[(h ^ (h >> 29)) & mask] = 1
        ctr[0] = 1
        ctr[4] = 1
        if k == 0:
            ctr[3] = 0
            return 1
        for i in range(k):
            buf[i] = best[i]
        frames[0, 0] = 0
        onstack[0] = 1
        frames[0, 1] = 0
        frames[0, 2] = k
        frames[0, 3] = 0
        ctr[1] = 1
        ctr[2] = k
    m2 = np.empty(P, dtype=np.int64)
    while ctr[1] > 0:
        f = ctr[1] - 1
        s = frames[f, 0]
        pos = frames[f, 1]
        if pos == frames[f, 2]:
            onstack[s] = 0
            ctr[2] = frames[f, 3]
            ctr[1] = f
            continue
        t = buf[pos]
        h = 1469598103934665603
        wide = False
        for p in range(P):
            v = states[s, p] + delta[t, p]
            m2[p] = v
            h = (h ^ v) * 1099511628211
            if v > top_value:
                wide = True
        if wide:
            return 5
        slot = (h ^ (h >> 29)) & mask
        found = False
        while table[slot] != 0:
            j = table[slot] - 1
            same = True
            for p in range(P):
                if states[j, p] != m2[p]:
                    same = False
                    break
            if same:
                found = True
                break
            slot = (slot + 1) & mask
        if found:
            frames[f, 1] = pos + 1
            if cycles and onstack[table[slot] - 1] == 1:  # a back edge closes a cycle
                ctr[3] = s
                ctr[5] = table[slot] - 1
                ctr[6] = t
                return 6
            continue
        n = ctr[0]
        if limit >= 0 and n >= limit:
            return 4
        if n >= cap:
            return 2
        k = _stubborn(m2, pre, delta, t_in_ptr, t_in_idx, cons_ptr, cons_idx, prod_ptr, prod_idx, scratch, edges)
        if f + 2 >= frames.shape[0] or ctr[2] + k > buf.shape[0]:
            return 3
        for p in range(P):
            states[n, p] = m2[p]
        parent[n] = s
        parent_t[n] = t
        table[slot] = n + 1
        ctr[0] = n + 1
        frames[f, 1] = pos + 1
        if k == 0:
            ctr[3] = n
            return 1
        top = ctr[2]
        for i in range(k):
            buf[top + i] = best[i]
        frames[f + 1, 0] = n
        onstack[n] = 1
        frames[f + 1, 1] = top
        frames[f + 1, 2] = top + k
        frames[f + 1, 3] = top
        ctr[1] = f + 2
        ctr[2] = top + k
        if every > 0 and (n + 1) % every == 0:
            return 7
    return 0


_stubborn = _stubborn_py  # rebound to the compiled version by _kernels()


def _edge_bound(t_in_ptr: np.ndarray, t_in_idx: np.ndarray, cons_ptr: np.ndarray, prod_ptr: np.ndarray) -> int:
    """Most edges the "pulls in" graph can have in any state (sizes the kernel's edge buffer)."""
    cons_n = np.diff(cons_ptr)
    prod_n = np.diff(prod_ptr)
    total = 0
    for t in range(len(t_in_ptr) - 1):
        ins = t_in_idx[t_in_ptr[t] : t_in_ptr[t + 1]]
        if ins.size:
            total += max(int(cons_n[ins].sum()), int(prod_n[ins].max()))
    return total


_KERNEL: Callable[..., int] | None = None
_REHASH: Callable[..., None] | None = None


def _kernels() -> tuple[Callable[..., int], Callable[..., None]]:
    """Compile (or load from numba's cache) the search kernel, on first use only."""
    global _KERNEL, _REHASH
    if _KERNEL is not None and _REHASH is not None:
        return _KERNEL, _REHASH
    import numba

    global _stubborn
    _stubborn = numba.njit(cache=True, nogil=True)(_stubborn_py)
    _KERNEL = numba.njit(cache=True, nogil=True)(_search_py)
    _REHASH = numba.njit(cache=True, nogil=True)(_rehash_py)
    return _KERNEL, _REHASH


class _Search:
    """Resumable storage of one search: markings, parents, hash index, DFS stack."""

    def __init__(self, net: PetriNet) -> None:
        P = len(net.places)
        self.P = P
        cap = 1024
        top = int(net.initial.max()) if P else 0
        self.dtype = next(d for d in _DTYPES if top <= np.iinfo(d).max)
        self.states = np.zeros((cap, P), dtype=self.dtype)
        self.parent = np.zeros(cap, dtype=np.int64)
        self.parent_t = np.zeros(cap, dtype=np.int32)
        self.table = np.zeros(2 * cap, dtype=np.int64)
        self.frames = np.zeros((256, 4), dtype=np.int64)  # state, next position, end, start in buf
        self.buf = np.zeros(4096, dtype=np.int64)
        self.onstack = np.zeros(cap, dtype=np.int8)
        self.ctr = np.zeros(8, dtype=np.int64)  # see _search_py

    def grow_states(self, rehash: Callable[..., None]) -> None:
        cap = 2 * self.states.shape[0]
        states = np.zeros((cap, self.P), dtype=self.dtype)
        states[: self.states.shape[0]] = self.states
        self.states = states
        self.parent = np.concatenate([self.parent, np.zeros_like(self.parent)])
        self.parent_t = np.concatenate([self.parent_t, np.zeros_like(self.parent_t)])
        self.onstack = np.concatenate([self.onstack, np.zeros_like(self.onstack)])
        self.table = np.zeros(2 * cap, dtype=np.int64)
        rehash(self.states, int(self.ctr[0]), self.table)

    def nbytes(self) -> int:
        """Bytes held by the marking store and its index (what doubles when the store grows)."""
        return int(self.states.nbytes + self.parent.nbytes + self.parent_t.nbytes + self.onstack.nbytes
                   + self.table.nbytes)

    def widen(self) -> None:
        """Store markings in the next wider integer type (a place outgrew the current one)."""
        if self.dtype == np.int64:
            raise BudgetExceeded("a place holds more tokens than an int64 counts", hint="the net is unbounded")
        self.dtype = _DTYPES[_DTYPES.index(self.dtype) + 1]
        self.states = self.states.astype(self.dtype)

    @property
    def top_value(self) -> int:
        return int(np.iinfo(self.dtype).max) if self.dtype != np.int64 else int(np.iinfo(np.int64).max) - 1

    def grow_stack(self, T: int) -> None:
        if self.ctr[1] + 2 >= self.frames.shape[0]:
            self.frames = np.concatenate([self.frames, np.zeros_like(self.frames)])
        while self.buf.shape[0] < self.ctr[2] + T + 1:
            self.buf = np.concatenate([self.buf, np.zeros_like(self.buf)])

    def trace(self, net: PetriNet, i: int, stop: int = 0) -> list[str]:
        """Transition ids on the search tree from state ``stop`` (an ancestor; 0 is the initial marking) to ``i``."""
        seq: list[str] = []
        while i != stop:
            seq.append(net.transitions[int(self.parent_t[i])])
            i = int(self.parent[i])
        seq.reverse()
        return seq


def _run(
    net: PetriNet,
    max_states: int | None,
    max_bytes: int | None,
    progress: bool,
    cycles: bool,
    on_stop: Callable[[int, _Search], bool],
) -> tuple[_Search, str | None]:
    """Drive the kernel: grow storage when asked, and hand each dead marking or cycle to ``on_stop``.

    ``on_stop(code, search)`` returns True to end the search there. The result
    says where the search stands and which budget stopped it, if any.
    ``max_bytes`` is checked before every doubling of the marking store.
    """
    if max_states is not None and max_states < 1:
        raise InputError(f"max_states is {max_states}", hint="pass a budget of at least 1 state")
    if max_bytes is not None and max_bytes < 1:
        raise InputError(f"max_bytes is {max_bytes}", hint="pass a positive memory budget")
    search, rehash = _kernels()
    t_in_ptr, t_in_idx, cons_ptr, cons_idx, prod_ptr, prod_idx = _structure(net)
    pre = np.ascontiguousarray(net.pre)
    delta = np.ascontiguousarray(net.post - net.pre)
    m0 = np.ascontiguousarray(net.initial)
    s = _Search(net)
    limit = -1 if max_states is None else int(max_states)
    T = len(net.transitions)
    scratch = np.zeros((13, T + 1), dtype=np.int64)
    edges = np.zeros(_edge_bound(t_in_ptr, t_in_idx, cons_ptr, prod_ptr) + 1, dtype=np.int64)
    bar = _progress_bar(net) if progress else None
    stop: str | None = None
    try:
        while True:
            code = search(
                pre, delta, m0, t_in_ptr, t_in_idx, cons_ptr, cons_idx, prod_ptr, prod_idx, s.states, s.parent,
                s.parent_t, s.onstack, s.table, s.frames, s.buf, s.ctr, limit, scratch, edges, s.top_value, cycles,
                _TICK_EVERY if bar is not None else 0,
            )
            if code == _GROW_STATES:
                if max_bytes is not None and 2 * s.nbytes() > max_bytes:
                    stop = "max_bytes"
                    break
                s.grow_states(rehash)
            elif code == _WIDEN:
                s.widen()
            elif code == _GROW_STACK:
                s.grow_stack(T)
            elif code == _TICK and bar is not None:
                bar.update(int(s.ctr[0]) - bar.n)
                bar.set_postfix(depth=int(s.ctr[1]), refresh=False)
            elif code in (_DEAD, _CYCLE):
                if on_stop(code, s):
                    break
            elif code == _BUDGET:
                stop = "max_states"
                break
            elif code == _DONE:
                break
    finally:
        if bar is not None:
            bar.update(int(s.ctr[0]) - bar.n)
            bar.close()
    return s, stop


def _progress_bar(net: PetriNet):  # type: ignore[no-untyped-def]
    """A tqdm bar of stored states (tqdm shows states/s); imported only when asked for."""
    from tqdm import tqdm  # type: ignore[import-untyped]

    return tqdm(desc=f"reduced search {net.name}", unit=" states")


def find_deadlock(
    net: PetriNet,
    *,
    max_states: int | None = None,
    max_bytes: int | None = None,
    final_check: Callable[[np.ndarray], bool] | None = None,
    progress: bool = False,
) -> ReducedResult:
    """Search the stubborn-set reduced state space of ``net`` for a dead marking.

    ``final_check(marking) -> bool`` excuses dead markings that are the
    intended end (a workflow net's final marking): they are counted in
    ``dead_final`` and the search goes on. Without it every dead marking is a
    deadlock. ``max_states`` bounds the markings stored and ``max_bytes``
    the memory they take; an unbounded net without a deadlock is only stopped
    by them. ``progress`` shows a tqdm bar (states, states/s, DFS depth).
    """
    start = time.perf_counter()
    excused = [0]
    hit: list[int] = []

    def on_dead(code: int, s: _Search) -> bool:
        i = int(s.ctr[3])
        if final_check is not None and final_check(s.states[i].astype(np.int64)):
            excused[0] += 1
            return False
        hit.append(i)
        return True

    s, stop = _run(net, max_states, max_bytes, progress, False, on_dead)
    n = int(s.ctr[0])
    if hit:
        return ReducedResult(
            deadlock=True, trace=s.trace(net, hit[0]), marking=s.states[hit[0]].astype(np.int64), states_visited=n,
            complete=True, dead_final=excused[0], seconds=time.perf_counter() - start,
        )
    return ReducedResult(
        deadlock=False, trace=None, marking=None, states_visited=n, complete=stop is None,
        stop_reason=stop, dead_final=excused[0], seconds=time.perf_counter() - start,
    )


@dataclass(frozen=True)
class TerminationResult:
    """Whether every run of the net ends; when not, a lasso: ``prefix`` then ``cycle`` forever.

    ``terminates`` is True only when the reduced space was exhausted without a
    cycle (``complete``). ``net.replay(prefix + cycle)`` equals
    ``net.replay(prefix)``: the cycle returns to where it starts.
    """

    terminates: bool
    prefix: list[str] | None
    cycle: list[str] | None
    states_visited: int
    complete: bool
    stop_reason: str | None = None
    seconds: float = 0.0


def find_infinite_run(
    net: PetriNet, *, max_states: int | None = None, max_bytes: int | None = None, progress: bool = False
) -> TerminationResult:
    """Look for a run that never ends (a reachable cycle) in the stubborn-set reduced space.

    No cycle proviso is needed for this question: with conditions D1 and D2,
    if a run ``w`` from ``m`` never touches the stubborn set, the key
    transition stays enabled along it and commutes to the front, so some
    reduced successor still starts an infinite run; on a finite state space
    the reduced graph therefore has a cycle iff the full one does (the
    property tests check this against a full search). An unbounded net
    always has an infinite run but is only stopped by ``max_states`` here;
    ask :func:`petriflow.verify.coverability.coverability` first.
    """
    start = time.perf_counter()
    lasso: list[tuple[int, int, int]] = []

    def on_stop(code: int, s: _Search) -> bool:
        if code == _CYCLE:
            lasso.append((int(s.ctr[3]), int(s.ctr[5]), int(s.ctr[6])))
            return True
        return False

    s, stop = _run(net, max_states, max_bytes, progress, True, on_stop)
    n = int(s.ctr[0])
    if lasso:
        src, dst, t = lasso[0]
        cycle = s.trace(net, src, stop=dst) + [net.transitions[t]]
        return TerminationResult(False, s.trace(net, dst), cycle, n, True, None, time.perf_counter() - start)
    return TerminationResult(stop is None, None, None, n, stop is None, stop, time.perf_counter() - start)
