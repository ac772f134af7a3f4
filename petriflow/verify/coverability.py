"""Boundedness of any net, bounded or not: a minimal coverability set, never a hang.

Explicit exploration cannot answer "is this net bounded?" when it is not: the
state space is infinite. A coverability set can. Each of its ω-markings
stands for markings that are reachable with as many tokens as one likes in
the ω places; a place is unbounded exactly when some element has ω there,
and for the other places the largest entry is the exact bound.

The algorithm is Karp-Miller with the pruning of Valmari and Hansen ("Old and
new algorithms for minimal coverability sets", 2014): a marking covered by
one already found is dropped, a new marking retires every found marking it
strictly covers (and their pending expansion), and ω is added against *all*
tree ancestors, retired or not, so the search terminates and stays complete
(the bug of Finkel's original minimal coverability tree was to forget
those). Depth-first order finds ω early, which is what makes it fast.

The first acceleration in the search happens on a path of ordinary markings,
so it yields a concrete **pumping witness**: ``prefix`` reaches ``m1``,
``pump`` leads from ``m1`` to ``m2 >= m1`` with ``m2 > m1`` on
``witness.places``; repeating ``pump`` grows those places without end.

>>> from petriflow.net.petrinet import PetriNet
>>> net = PetriNet.from_arcs(places={"a": 1, "b": 0}, transitions=["t"],
...                          arcs=[("a", "t", 1), ("t", "a", 1), ("t", "b", 1)])
>>> cov = coverability(net)
>>> cov.bounded, cov.bounds, cov.unbounded_places, cov.witness.pump
(False, (1, None), ('b',), ['t'])
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from petriflow.errors import BudgetExceeded, InputError
from petriflow.net.petrinet import PetriNet
from petriflow.verify._tree import tree_path

__all__ = ["OMEGA", "Coverability", "PumpingWitness", "coverability"]

OMEGA: int = int(np.iinfo(np.int64).max)
"""The ω sentinel in an ω-marking (an ``int64`` vector): "as many tokens as you like"."""


@dataclass(frozen=True, eq=False)
class PumpingWitness:
    """A firing sequence that grows a marking: proof that ``places`` are unbounded.

    ``net.replay(prefix)`` is ``start``; ``net.replay(pump, start)`` is
    ``end``; ``end >= start`` everywhere and ``end > start`` on ``places``, so
    ``pump`` can fire again from ``end`` and every repetition adds tokens there.
    """

    prefix: list[str]
    pump: list[str]
    start: np.ndarray
    end: np.ndarray
    places: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class Coverability:
    """What a minimal coverability set says about the bounds of a net.

    ``bounds[i]`` is the exact bound of place ``i`` (the most tokens it holds
    in any reachable marking), or None when it is unbounded.
    ``markings`` holds the minimal coverability set (its maximal ω-markings,
    ``OMEGA`` for ω), one row per element. ``nodes`` counts the ω-markings the
    search created. ``complete`` is False only on the partial result carried
    by a :class:`BudgetExceeded` (as ``err.partial``).
    """

    bounded: bool
    bounds: tuple[int | None, ...]
    unbounded_places: tuple[str, ...]
    witness: PumpingWitness | None
    markings: np.ndarray
    nodes: int
    seconds: float
    complete: bool = True

    def k_bound(self) -> int | None:
        """The k of k-boundedness (most tokens in any place), None when unbounded."""
        if not self.bounded:
            return None
        return max((b for b in self.bounds if b is not None), default=0)

    @property
    def safe(self) -> bool:
        """Whether no reachable marking puts two tokens on a place."""
        return self.bounded and (self.k_bound() or 0) <= 1


class _Tree:
    """The search tree: ω-markings with parent links, and the active (maximal) ones."""

    def __init__(self, P: int) -> None:
        self.marks = np.zeros((256, P), dtype=np.int64)
        self.parent = np.zeros(256, dtype=np.int64)
        self.parent_t = np.zeros(256, dtype=np.int64)
        self.active = np.zeros(256, dtype=bool)
        self.support = np.zeros(256, dtype=np.int64)  # bit p % 64 set when place p is marked
        self.bits = np.left_shift(np.int64(1), np.arange(P, dtype=np.int64) % 64)
        self.n = 0

    def add(self, m: np.ndarray, parent: int, t: int) -> int:
        if self.n == self.marks.shape[0]:
            self.marks = np.concatenate([self.marks, np.zeros_like(self.marks)])
            self.parent = np.concatenate([self.parent, np.zeros_like(self.parent)])
            self.parent_t = np.concatenate([self.parent_t, np.zeros_like(self.parent_t)])
            self.active = np.concatenate([self.active, np.zeros_like(self.active)])
            self.support = np.concatenate([self.support, np.zeros_like(self.support)])
        i = self.n
        self.marks[i], self.parent[i], self.parent_t[i], self.active[i] = m, parent, t, True
        self.support[i] = self.mask(m)
        self.n += 1
        return i

    def mask(self, m: np.ndarray) -> int:
        """The support signature of ``m``: a row can cover ``m`` only if its signature contains this one."""
        return int(np.bitwise_or.reduce(self.bits[m > 0])) if m.size else 0

    def ancestors(self, i: int) -> list[int]:
        """``i`` and every node above it, up to the root (node 0)."""
        out = [i]
        while i != 0:
            i = int(self.parent[i])
            out.append(i)
        return out

    def path(self, i: int, net: PetriNet, stop: int = 0) -> list[str]:
        """Transition ids on the tree path from ``stop`` (an ancestor) down to ``i``."""
        return tree_path(self.parent, self.parent_t, net.transitions, i, stop)


# -- inner loops, compiled lazily with numba (plain Python here) --------------------------
def _accelerate_py(marks: np.ndarray, parent: np.ndarray, i: int, m: np.ndarray, omega: int) -> bool:
    """Karp-Miller ω-addition to a fixpoint, in place: ω where ``m`` exceeds an ancestor of ``i`` it covers."""
    any_change = False
    while True:
        changed = False
        a = i
        while True:
            le = True
            lt = False
            for p in range(m.shape[0]):
                if marks[a, p] > m[p]:
                    le = False
                    break
                if marks[a, p] < m[p]:
                    lt = True
            if le and lt:
                for p in range(m.shape[0]):
                    if marks[a, p] < m[p] and m[p] != omega:
                        m[p] = omega
                        changed = True
            if a == 0:
                break
            a = parent[a]
        if not changed:
            return any_change
        any_change = True


def _covered_py(marks: np.ndarray, active: np.ndarray, support: np.ndarray, n: int, m: np.ndarray, sig: int) -> bool:
    """Whether an active ω-marking covers ``m``; the support signatures rule most rows out at once."""
    for r in range(n):
        if active[r] and (sig & ~support[r]) == 0:
            ok = True
            for p in range(m.shape[0]):
                if marks[r, p] < m[p]:
                    ok = False
                    break
            if ok:
                return True
    return False


def _retire_py(marks: np.ndarray, active: np.ndarray, support: np.ndarray, n: int, m: np.ndarray, sig: int) -> None:
    """Deactivate every active ω-marking that ``m`` covers."""
    for r in range(n):
        if active[r] and (support[r] & ~sig) == 0:
            ok = True
            for p in range(m.shape[0]):
                if marks[r, p] > m[p]:
                    ok = False
                    break
            if ok:
                active[r] = False


_JIT: tuple | None = None  # type: ignore[type-arg]


def _jit() -> tuple:  # type: ignore[type-arg]
    global _JIT
    if _JIT is None:
        import numba

        _JIT = tuple(numba.njit(cache=True)(f) for f in (_accelerate_py, _covered_py, _retire_py))
    return _JIT


def coverability(
    net: PetriNet, *, max_nodes: int = 1_000_000, stop_at_unbounded: bool = False, progress: bool = False
) -> Coverability:
    """Compute a minimal coverability set of ``net``; return its bounds and a pumping witness.

    ``max_nodes`` bounds the ω-markings created; when it runs out,
    :class:`BudgetExceeded` is raised with ``err.partial``, a
    :class:`Coverability` with ``complete=False`` whose unbounded places and
    witness are already proven (the bounds of the other places are lower
    bounds only). ``stop_at_unbounded`` returns such a partial result (no
    error) as soon as the first pumping witness proves the net unbounded:
    the cheapest answer to "is it bounded?".
    """
    if max_nodes < 1:
        raise InputError(f"max_nodes is {max_nodes}", hint="pass a budget of at least 1 node")
    start_time = time.perf_counter()
    P = len(net.places)
    pre, delta = net.pre, net.post - net.pre
    tree = _Tree(P)
    tree.add(net.initial.astype(np.int64), 0, -1)
    accelerate, covered, retire = _jit()
    seen = {tree.marks[0].tobytes()}  # every marking ever added stays covered: repeats are skipped at once
    stack = [0]
    witness: PumpingWitness | None = None
    bar = _progress_bar(progress, net)
    try:
        while stack:
            i = stack.pop()
            if not tree.active[i]:
                continue  # retired before its turn: a larger marking will be expanded instead
            m = tree.marks[i].copy()
            for t in np.flatnonzero(np.all(pre <= m, axis=1)):
                if not tree.active[i]:
                    break  # a child retired its parent: the child's expansion covers the rest
                m2 = np.where(m == OMEGA, OMEGA, m + delta[t])
                if m2.tobytes() in seen or covered(tree.marks, tree.active, tree.support, tree.n, m2, tree.mask(m2)):
                    continue
                plain = m2.copy()
                if accelerate(tree.marks, tree.parent, i, m2, OMEGA):
                    if witness is None:
                        witness = _witness(net, tree, i, int(t), plain, tree.ancestors(i))
                        if stop_at_unbounded:
                            tree.add(m2, i, int(t))
                            return _result(net, tree, witness, start_time, complete=False)
                    if m2.tobytes() in seen or covered(tree.marks, tree.active, tree.support, tree.n, m2, tree.mask(m2)):
                        continue
                if tree.n >= max_nodes:
                    raise _budget(net, _result(net, tree, witness, start_time, complete=False))
                retire(tree.marks, tree.active, tree.support, tree.n, m2, tree.mask(m2))
                seen.add(m2.tobytes())
                stack.append(tree.add(m2, i, int(t)))
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return _result(net, tree, witness, start_time, complete=True)


def _budget(net: PetriNet, partial: Coverability) -> BudgetExceeded:
    """The budget error, carrying what is already proven as ``err.partial``."""
    found = ", ".join(partial.unbounded_places)
    err = BudgetExceeded(
        f"coverability stopped after {partial.nodes} nodes; "
        + (f"unbounded so far: {found}" if found else "no unbounded place found so far"),
        where=net.name,
        hint="raise max_nodes, or check the structural bounds first",
    )
    err.partial = partial  # type: ignore[attr-defined]
    return err


def _witness(net: PetriNet, tree: _Tree, i: int, t: int, m2: np.ndarray, anc_ids: list[int]) -> PumpingWitness | None:
    """A concrete pumping witness from the first acceleration (all markings on the path are finite)."""
    if (tree.marks[anc_ids] == OMEGA).any() or (m2 == OMEGA).any():
        return None
    for a in anc_ids:  # nearest ancestor first: the shortest pump
        ma = tree.marks[a]
        if np.all(ma <= m2) and np.any(ma < m2):
            grown = tuple(net.places[p] for p in np.flatnonzero(m2 > ma))
            pump = tree.path(i, net, stop=a) + [net.transitions[t]]
            return PumpingWitness(
                prefix=tree.path(a, net), pump=pump, start=ma.copy(), end=m2.copy(), places=grown
            )
    return None


def _result(net: PetriNet, tree: _Tree, witness: PumpingWitness | None, start: float, *, complete: bool) -> Coverability:
    mset = tree.marks[: tree.n][tree.active[: tree.n]].copy()
    top = mset.max(axis=0) if len(mset) else net.initial.copy()
    bounds = tuple(None if v == OMEGA else int(v) for v in top)
    unbounded = tuple(p for p, b in zip(net.places, bounds) if b is None)
    return Coverability(
        bounded=not unbounded,
        bounds=bounds,
        unbounded_places=unbounded,
        witness=witness,
        markings=mset,
        nodes=tree.n,
        seconds=time.perf_counter() - start,
        complete=complete,
    )


def _progress_bar(progress: bool, net: PetriNet):  # type: ignore[no-untyped-def]
    """A tqdm bar counting ω-markings, only when asked (tqdm is imported only then)."""
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(desc=f"coverability {net.name}", unit=" nodes")
