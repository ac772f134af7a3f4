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

The search is depth first, in a numba kernel (``cache=True``, in
:mod:`petriflow.verify._stubborn`) that stores
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
from petriflow.verify import _stubborn as K
from petriflow.verify._tree import tree_path

__all__ = ["ReducedResult", "TerminationResult", "find_deadlock", "find_infinite_run"]

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
        self.ctr = np.zeros(8, dtype=np.int64)  # see _stubborn._search_py

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
        return tree_path(self.parent, self.parent_t, net.transitions, i, stop)


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
    plain = not K.loaded()  # small nets finish in plain Python before numba would have loaded
    search, rehash = K.plain_kernels() if plain else K.kernels()
    t_in_ptr, t_in_idx, cons_ptr, cons_idx, prod_ptr, prod_idx = K.structure(net)
    pre = np.ascontiguousarray(net.pre)
    delta = np.ascontiguousarray(net.post - net.pre)
    m0 = np.ascontiguousarray(net.initial)
    s = _Search(net)
    limit = -1 if max_states is None else int(max_states)
    plain_limit = K.plain_cap(net) if limit < 0 else min(limit, K.plain_cap(net))
    T = len(net.transitions)
    scratch = np.zeros((13, T + 1), dtype=np.int64)
    edges = np.zeros(K.edge_bound(t_in_ptr, t_in_idx, cons_ptr, prod_ptr) + 1, dtype=np.int64)
    bar = _progress_bar(net) if progress else None
    stop: str | None = None
    try:
        while True:
            with np.errstate(over="ignore"):  # the plain kernel's hash wraps int64 like the compiled one, silently
                code = search(
                    pre, delta, m0, t_in_ptr, t_in_idx, cons_ptr, cons_idx, prod_ptr, prod_idx, s.states, s.parent,
                    s.parent_t, s.onstack, s.table, s.frames, s.buf, s.ctr, plain_limit if plain else limit, scratch,
                    edges, s.top_value, cycles, _TICK_EVERY if bar is not None else 0,
                )
            if code == K.BUDGET and plain and plain_limit != limit:  # too big for plain Python: resume compiled
                search, rehash = K.kernels()
                plain = False
                continue
            if code == K.GROW_STATES:
                if max_bytes is not None and 2 * s.nbytes() > max_bytes:
                    stop = "max_bytes"
                    break
                with np.errstate(over="ignore"):
                    s.grow_states(rehash)
            elif code == K.WIDEN:
                s.widen()
            elif code == K.GROW_STACK:
                s.grow_stack(T)
            elif code == K.TICK and bar is not None:
                bar.update(int(s.ctr[0]) - bar.n)
                bar.set_postfix(depth=int(s.ctr[1]), refresh=False)
            elif code in (K.DEAD, K.CYCLE):
                if on_stop(code, s):
                    break
            elif code == K.BUDGET:
                stop = "max_states"
                break
            elif code == K.DONE:
                break
    finally:
        if bar is not None:
            bar.update(int(s.ctr[0]) - bar.n)
            bar.close()
    return s, stop


def _progress_bar(net: PetriNet):  # type: ignore[no-untyped-def]
    """A tqdm bar of stored states (tqdm shows states/s); imported only when asked for."""
    from tqdm import tqdm

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
        if code == K.CYCLE:
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
