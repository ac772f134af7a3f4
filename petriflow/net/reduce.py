"""Structural reductions that keep the verdicts, applied before any state is explored.

A workflow's state space is the product of what runs side by side: a map of
k items, each a start and a finish with retries, has O(k^3) markings before
it is multiplied by its neighbours. Most of those markings differ only in
how far some token has travelled along a path where nothing else can
interfere. The rules below remove such paths from the *net*, so that the
search never sees them; each keeps deadlock-freedom, boundedness, liveness
and (for workflow nets) soundness, and every removed transition is
accounted for, so that a reduced firing sequence expands to one of the
original net (:meth:`Reduction.expand`) and dead transitions map back
(:meth:`Reduction.dead_in_original`).

* **Agglomeration** (Berthelot 1986, pre-agglomeration; Murata 1989, fusion
  of series transitions when there is one producer): a place ``p``, empty at
  the start and at the end, whose only consumer ``h`` needs nothing but one
  token of ``p``. Once ``p`` is marked ``h`` is enabled and stays so (nobody
  else takes from ``p``), so every producer ``f`` of ``p`` can fire ``h`` right
  after itself: ``f`` becomes ``f; h^c``. A marking with ``p`` marked is never
  dead; every reduced marking is reachable in the net. The largest count of
  ``p`` is at most that of an output of ``h``, so the bound is kept exactly.
* **Spent budgets** (workflow nets): a transition that changes nothing but
  a counter nobody refills (a retry budget: ``fail`` fused with ``retry``)
  and needs what some other transition ``t'`` needs exactly. Whenever it is
  enabled ``t'`` is too, so no dead marking is lost; it is dead iff ``t'`` is;
  in the short-circuited net, where a new case starts with full budgets, it
  is live iff ``t'`` is.
* **Implicit places**: a place ``p`` whose count is always ``sum y_q M(q)``
  over places ``q`` (a place invariant read off the net), where each
  consumer of ``p`` needs no more of ``p`` than its need of one ``q``
  implies. ``p`` never disables anything: the reachability graph is the
  same without it (a map's ``done`` place beside its per-count places). Its
  own bound is not recovered (``Reduction.exact_bound`` turns False).
* **Resources that never bind** (structurally implicit places, Colom and
  Silva 1991): a marked place ``r`` with ``M(r) = y.M + mu`` for a place
  invariant ``y >= 0`` grown from its consumers (:mod:`petriflow.net._invariant`),
  where ``y.pre[t] + mu`` covers each consumer's need of ``r``: a resource
  taken by steps that the control flow already runs one at a time (a chain of
  steps sharing ``llm`` with retries). ``r`` never disables anything and its
  count is a function of the others: the reachability graph is the same
  without it. Its bound is its capacity when a second invariant shows it.
* **Parallel transitions** (Murata 1989): transitions with the same pre-
  and post-sets are the same edge of the reachability graph; one is kept,
  the others are dead or live exactly when it is.

References: T. Murata, *Petri nets: properties, analysis and applications*,
Proc. IEEE 77(4), 1989, section VI; G. Berthelot, *Checking properties of
nets using transformations*, LNCS 222, 1986; S. Haddad, J.-F. Pradat-Peyre,
*New efficient Petri nets reductions for parallel programs verification*,
Parallel Processing Letters 16(1), 2006.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from petriflow.errors import NetError
from petriflow.limits import check_matrix, failing
from petriflow.net._invariant import deltas, never_binds
from petriflow.net.petrinet import PetriNet, WorkflowNet
from petriflow.net.sparse import as_sparse

__all__ = ["Reduction", "reduce_net"]

Arcs = dict[str, int]


@dataclass(frozen=True)
class Reduction:
    """The reduced net and how to read its answers back on the original one."""

    original: PetriNet
    net: PetriNet
    expansion: dict[str, tuple[str, ...]]
    """Reduced transition -> the original firing sequence it stands for."""
    dead_if_all: dict[str, tuple[str, ...]]
    """Removed original transition -> reduced transitions: it is dead iff all of them are."""
    exact_bound: bool
    """Whether the largest token count of the reduced net (with ``extra_bound``) is the original's."""
    extra_bound: int
    """The largest count of the removed places whose bound is known: budgets (they only ever lose tokens)
    and resources that never bind (their capacity)."""
    applied: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(self.applied.values())

    def expand(self, trace: Iterable[str]) -> list[str]:
        """A reduced firing sequence as a firing sequence of the original net."""
        return [t for r in trace for t in self.expansion[r]]

    def dead_in_original(self, dead_reduced: Iterable[str]) -> list[str]:
        """The original transitions that are dead, given the reduced net's dead ones (original order).

        An original transition is dead iff every reduced transition that fires it is dead, and so is
        every transition it was removed in favour of (``dead_if_all``).
        """
        dead = set(dead_reduced)
        alive: set[str] = set()
        for r, seq in self.expansion.items():
            if r not in dead:
                alive.update(seq)
        for t, group in self.dead_if_all.items():
            if any(g not in dead for g in group):
                alive.add(t)
        return [t for t in self.original.transitions if t not in alive]


class _Sparse:
    """The net as arc dictionaries, with producers and consumers of each place kept up to date."""

    def __init__(self, net: PetriNet) -> None:
        self.pre: dict[str, Arcs] = {}
        self.post: dict[str, Arcs] = {}
        self.prod: dict[str, dict[str, None]] = {p: {} for p in net.places}
        self.cons: dict[str, dict[str, None]] = {p: {} for p in net.places}
        pre, post = as_sparse(net.pre), as_sparse(net.post)  # either form: a big lowered net is never dense
        places = net.places
        for ti, t in enumerate(net.transitions):
            cols, w = pre.row(ti)
            self.pre[t] = {places[i]: int(n) for i, n in zip(cols.tolist(), w.tolist())}
            cols, w = post.row(ti)
            self.post[t] = {places[i]: int(n) for i, n in zip(cols.tolist(), w.tolist())}
            for p in self.pre[t]:
                self.cons[p][t] = None
            for p in self.post[t]:
                self.prod[p][t] = None

    def drop_transition(self, t: str) -> None:
        for p in self.pre.pop(t):
            del self.cons[p][t]
        for p in self.post.pop(t):
            del self.prod[p][t]

    def drop_place(self, p: str) -> None:
        for t in self.cons.pop(p):
            del self.pre[t][p]
        for t in self.prod.pop(p):
            del self.post[t][p]

    def set_post(self, t: str, arcs: Arcs) -> None:
        for p in self.post[t]:
            del self.prod[p][t]
        self.post[t] = {p: w for p, w in arcs.items() if w}
        for p in self.post[t]:
            self.prod[p][t] = None


def reduce_net(net: PetriNet) -> Reduction:
    """Apply the rules of this module until none applies; the result keeps every verdict of ``net``.

    ``net`` may keep its arcs sparse (:mod:`petriflow.net.sparse`, a net too big for dense matrices): the
    rules read it row by row and only the reduced net is built densely, refused with a :class:`NetError`
    when even that would pass :data:`~petriflow.limits.MAX_MATRIX_CELLS`.
    """
    s = _Sparse(net)
    initial = {p: int(net.initial[i]) for i, p in enumerate(net.places)}
    final_of: dict[str, int | None] = {p: None for p in net.places}
    if net.final is not None:
        for i, p in enumerate(net.places):
            if net.final_mask is not None and net.final_mask[i]:
                final_of[p] = int(net.final[i])
    keep: set[str] = set()
    ends: set[str] = set()
    budgets_ok = isinstance(net, WorkflowNet)
    if isinstance(net, WorkflowNet):
        keep = {net.source, net.sink, *net.resources}
        ends = {net.source, net.sink}
    expansion: dict[str, tuple[str, ...]] = {t: (t,) for t in net.transitions}
    groups = _Groups()
    applied = {"agglomeration": 0, "spent_budget": 0, "implicit_place": 0, "free_resource": 0,
               "parallel_transition": 0}
    binding: set[str] = set()  # marked places tried for the resource rule and kept: not tried again
    exact = True
    extra_bound = 0

    def quiet(p: str) -> bool:
        """Empty at the start, and empty (or not looked at) at the end."""
        return p not in keep and initial[p] == 0 and final_of[p] in (None, 0)

    changed = True
    while changed:
        changed = False
        for p in list(s.cons):
            if p not in s.cons or not quiet(p) or len(s.cons[p]) != 1 or not s.prod[p]:
                continue
            (h,) = s.cons[p]
            if s.pre[h] != {p: 1} or not s.post[h] or h in s.prod[p]:
                continue
            out_h = s.post[h]
            producers = tuple(s.prod[p])
            for f in producers:
                c = s.post[f][p]
                arcs = dict(s.post[f])
                del arcs[p]
                for r, w in out_h.items():
                    arcs[r] = arcs.get(r, 0) + c * w
                s.set_post(f, arcs)
                expansion[f] = expansion[f] + expansion[h] * c
            groups.replace(h, producers)  # h fires after one of them, or never
            s.drop_transition(h)
            s.drop_place(p)
            del expansion[h]
            applied["agglomeration"] += 1
            changed = True
        if budgets_ok:
            for t in list(s.pre):
                q_set = [q for q in s.pre[t]
                         if not s.prod[q] and len(s.cons[q]) == 1 and final_of[q] is None and q not in keep]
                if not q_set or any(initial[q] < s.pre[t][q] for q in q_set):
                    continue
                rest = {r: w for r, w in s.pre[t].items() if r not in q_set}
                if not rest or any(s.post[t].get(r, 0) != w for r, w in rest.items()) or \
                        any(r not in rest for r in s.post[t]):
                    continue
                twin = next((u for u in s.cons[next(iter(rest))] if u != t and s.pre[u] == rest), None)
                if twin is None:
                    continue
                groups.add(expansion.pop(t), twin)
                groups.replace(t, (twin,))
                s.drop_transition(t)
                for q in q_set:
                    if not s.cons[q] and not s.prod[q]:
                        extra_bound = max(extra_bound, initial[q])
                        s.drop_place(q)
                applied["spent_budget"] += 1
                changed = True
        if changed:
            continue  # the cheap rules first; the two below look at more of the net
        for p in list(s.cons):
            if p in s.cons and quiet(p) and s.cons[p] and _implicit(s, p, initial, final_of):
                s.drop_place(p)
                exact = False
                applied["implicit_place"] += 1
                changed = True
        if changed:
            continue
        delta: dict[str, Arcs] | None = None
        for p in list(s.cons):
            if p in ends or p in binding or initial[p] == 0 or not s.cons[p] or not s.prod[p]:
                continue
            delta = delta if delta is not None else deltas(s.pre, s.post)
            implicit, capped = never_binds(s.pre, s.post, s.cons, delta, p, initial, final_of)
            if not implicit:
                binding.add(p)
                continue
            for t in list(s.cons[p]) + list(s.prod[p]):
                delta[t].pop(p, None)
            s.drop_place(p)
            if capped:
                extra_bound = max(extra_bound, initial[p])
            else:
                exact = False
            applied["free_resource"] += 1
            changed = True
        if changed:
            continue
        seen: dict[tuple[frozenset[tuple[str, int]], frozenset[tuple[str, int]]], str] = {}
        for t in list(s.pre):
            key = (frozenset(s.pre[t].items()), frozenset(s.post[t].items()))
            if key in seen:
                kept = seen[key]
                groups.add(expansion.pop(t), kept)
                groups.replace(t, (kept,))
                s.drop_transition(t)
                applied["parallel_transition"] += 1
                changed = True
            else:
                seen[key] = t
    reduced = _rebuild(net, s)
    return Reduction(original=net, net=reduced, expansion={t: expansion[t] for t in reduced.transitions},
                     dead_if_all=groups.frozen(), exact_bound=exact, extra_bound=extra_bound, applied=applied)


class _Groups:
    """Removed original transitions -> the reduced transitions they are dead with (dead iff all of them are)."""

    def __init__(self) -> None:
        self.group: dict[str, dict[str, None]] = {}
        self.named_in: dict[str, set[str]] = {}

    def add(self, originals: Iterable[str], reduced: str) -> None:
        for o in dict.fromkeys(originals):  # an expansion repeats a transition once per item
            self.group.setdefault(o, {})[reduced] = None
            self.named_in.setdefault(reduced, set()).add(o)

    def replace(self, gone: str, instead: tuple[str, ...]) -> None:
        """``gone`` is removed: it was dead iff all of ``instead`` are."""
        for o in self.named_in.pop(gone, set()):
            del self.group[o][gone]
            for r in instead:
                self.add((o,), r)

    def frozen(self) -> dict[str, tuple[str, ...]]:
        return {o: tuple(g) for o, g in self.group.items()}


def _implicit(s: _Sparse, p: str, initial: dict[str, int], final_of: dict[str, int | None]) -> bool:
    """Whether ``M(p) = sum y_q M(q)`` holds (y read off p's consumers) and bounds each consumer's need of p."""
    y: dict[str, int] = {}
    for t in s.cons[p]:
        others = [(q, w) for q, w in s.pre[t].items() if q != p]
        if len(others) != 1:
            return False
        q, w = others[0]
        need = s.pre[t][p]
        if need % w or y.get(q, need // w) != need // w or initial[q] != 0:
            return False
        if final_of[p] is not None and final_of[q] != 0:
            return False
        y[q] = need // w
    touching: set[str] = set(s.cons[p]) | set(s.prod[p])
    for q in y:
        touching |= set(s.cons[q]) | set(s.prod[q])
    for u in touching:
        change = s.post[u].get(p, 0) - s.pre[u].get(p, 0)
        implied = sum(k * s.post[u][q] for q, k in ((q, y.get(q)) for q in s.post[u]) if k) - \
            sum(k * s.pre[u][q] for q, k in ((q, y.get(q)) for q in s.pre[u]) if k)
        if change != implied:
            return False
    return True


def _rebuild(net: PetriNet, s: _Sparse) -> PetriNet:
    places = [p for p in net.places if p in s.cons]
    transitions = [t for t in net.transitions if t in s.pre]
    check_matrix(len(transitions), len(places), fail=failing(NetError, f"net '{net.name}', after its reductions"),
                 hint="the structural reductions (docs/verify.md) left it this big: shared resources and counters "
                      "that are refilled keep steps apart; split the workflow into smaller ones and check each")
    pi = {p: i for i, p in enumerate(places)}
    pre = np.zeros((len(transitions), len(places)), dtype=np.int64)
    post = np.zeros_like(pre)
    for ti, t in enumerate(transitions):
        for p, w in s.pre[t].items():
            pre[ti, pi[p]] = w
        for p, w in s.post[t].items():
            post[ti, pi[p]] = w
    idx = [net.place_index(p) for p in places]
    tidx = [net.transition_index(t) for t in transitions]
    common: dict[str, Any] = {
        "places": tuple(places), "transitions": tuple(transitions), "pre": pre, "post": post,
        "initial": net.initial[idx], "name": net.name,
        "place_labels": tuple(net.place_labels[i] for i in idx),
        "transition_labels": tuple(net.transition_labels[i] for i in tidx),
        "final": None if net.final is None else net.final[idx],
        "final_mask": None if net.final_mask is None else net.final_mask[idx],
    }
    if isinstance(net, WorkflowNet):
        kept = set(places) | set(transitions)
        return WorkflowNet(**common, source=net.source, sink=net.sink,
                           origins={k: v for k, v in net.origins.items() if k in kept},
                           resources=tuple(r for r in net.resources if r in pi),
                           budgets=tuple(b for b in net.budgets if b in pi))
    return PetriNet(**common)

