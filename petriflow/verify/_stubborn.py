"""The compiled kernel of the stubborn-set reduced search (:mod:`petriflow.verify.reduced`).

Everything numba compiles for that search lives in this one file, with the
helpers it inlines: numba's ``cache=True`` notices a change only to the file
of the function it compiled, so a kernel split across files could run stale
machine code after an edit. The functions are plain Python until
:func:`kernels` compiles them on first use (or loads numba's cache), so the
module imports without numba and the kernel can be stepped through in a
debugger by calling the ``*_py`` versions. The driver runs those plain
versions first while numba is not loaded (:func:`plain_kernels`, up to
:func:`plain_cap` states): a small net's reduced space is searched before
numba would have finished loading, and a bigger one resumes in the compiled
kernel where the plain one stopped (the arrays are the same).

``_search_py`` returns one of the codes below; each exit leaves its arrays
consistent so that the Python driver can grow storage, widen the integer
type, or excuse a final dead marking, and call again.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from petriflow.net.petrinet import PetriNet

A = np.ndarray

# return codes of _search_py (the kernel returns the literal numbers)
DONE, DEAD, GROW_STATES, GROW_STACK, BUDGET, WIDEN, CYCLE, TICK = 0, 1, 2, 3, 4, 5, 6, 7


def _csr(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    for i, r in enumerate(rows):
        ptr[i + 1] = ptr[i] + len(r)
    idx = np.array([x for r in rows for x in r], dtype=np.int64)
    return ptr, idx


def structure(net: PetriNet) -> tuple[np.ndarray, ...]:
    """Sparse adjacency the kernel needs: inputs of each transition, consumers and producers of each place."""
    pre, post = net.pre, net.post
    T, P = pre.shape
    t_in = [np.flatnonzero(pre[t]).tolist() for t in range(T)]
    consumers = [np.flatnonzero(pre[:, p]).tolist() for p in range(P)]
    producers = [np.flatnonzero(post[:, p] > pre[:, p]).tolist() for p in range(P)]
    return (*_csr(t_in), *_csr(consumers), *_csr(producers))


# -- the numba kernel (plain Python here; compiled lazily by kernels) --------


def _rehash_py(states: np.ndarray, n: int, table: np.ndarray) -> None:
    """Rebuild the open-addressing index (slot holds state number + 1) after the arrays grew."""
    mask = table.shape[0] - 1
    for i in range(n):
        h = np.int64(1469598103934665603)  # int64 in numba and numpy alike (numpy refuses int8 ^ a big int)
        for v in states[i]:
            h = (h ^ np.int64(v)) * np.int64(1099511628211)
        k = (h ^ (h >> 29)) & mask
        while table[k] != 0:
            k = (k + 1) & mask
        table[k] = i + 1


def _stubborn_py(m: A, pre: A, delta: A, t_in_ptr: A, t_in_idx: A, cons_ptr: A, cons_idx: A, prod_ptr: A,
                 prod_idx: A, scratch: A, edges: A) -> int:
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


def _search_py(pre: A, delta: A, m0: A, t_in_ptr: A, t_in_idx: A, cons_ptr: A, cons_idx: A, prod_ptr: A,
               prod_idx: A, states: A, parent: A, parent_t: A, onstack: A, table: A, frames: A, buf: A, ctr: A,
               limit: int, scratch: A, edges: A, top_value: int, cycles: bool, every: int) -> int:
    """Resumable depth-first search; returns one of the ``DONE..TICK`` codes.

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


_stubborn = _stubborn_py  # rebound to the compiled version by kernels()


def edge_bound(t_in_ptr: np.ndarray, t_in_idx: np.ndarray, cons_ptr: np.ndarray, prod_ptr: np.ndarray) -> int:
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

PLAIN_WORK = 80_000
"""Array reads (states x (transitions + arcs)) the plain-Python kernel may spend: about a quarter second (3 us each)."""


def plain_cap(net: PetriNet) -> int:
    """The most states the plain-Python kernel stores for ``net`` before the compiled one takes over."""
    return max(64, PLAIN_WORK // max(1, len(net.transitions) + int((net.pre > 0).sum())))


def loaded() -> bool:
    """Whether the compiled kernel is loaded in this process (then the plain one is never worth running)."""
    return _KERNEL is not None


def plain_kernels() -> tuple[Callable[..., int], Callable[..., None]]:
    """The search and rehash in plain Python: same arguments, same results as :func:`kernels`."""
    return _search_py, _rehash_py


def kernels() -> tuple[Callable[..., int], Callable[..., None]]:
    """Compile (or load from numba's cache) the search kernel, on first use only; announced when it compiles."""
    global _KERNEL, _REHASH
    if _KERNEL is not None and _REHASH is not None:
        return _KERNEL, _REHASH
    import numba

    from petriflow.verify._jit import announce_compile

    global _stubborn
    with announce_compile("the reduced-search kernel", "5-10 s"):
        _stubborn = numba.njit(cache=True, nogil=True)(_stubborn_py)
        search = numba.njit(cache=True, nogil=True)(_search_py)
        rehash = numba.njit(cache=True, nogil=True)(_rehash_py)
        _warm(search, rehash)
    _KERNEL, _REHASH = search, rehash
    return _KERNEL, _REHASH


def _warm(search: Callable[..., int], rehash: Callable[..., None]) -> None:
    """Call both kernels once on a one-transition net with int8 markings, so that they compile (or load) now.

    Wider marking types compile on their first use.
    """
    net = PetriNet.from_arcs(places={"a": 1, "b": 0}, transitions=["t"], arcs=[("a", "t", 1), ("t", "b", 1)])
    t_in_ptr, t_in_idx, cons_ptr, cons_idx, prod_ptr, prod_idx = structure(net)
    states = np.zeros((4, 2), dtype=np.int8)
    table = np.zeros(8, dtype=np.int64)
    ctr = np.zeros(8, dtype=np.int64)
    search(np.ascontiguousarray(net.pre), np.ascontiguousarray(net.post - net.pre), np.ascontiguousarray(net.initial),
           t_in_ptr, t_in_idx, cons_ptr, cons_idx, prod_ptr, prod_idx, states, np.zeros(4, dtype=np.int64),
           np.zeros(4, dtype=np.int32), np.zeros(4, dtype=np.int8), table, np.zeros((8, 4), dtype=np.int64),
           np.zeros(16, dtype=np.int64), ctr, -1, np.zeros((13, 2), dtype=np.int64), np.zeros(8, dtype=np.int64),
           127, False, 0)
    rehash(states, int(ctr[0]), table)
