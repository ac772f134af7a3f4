"""Structural analysis: what the incidence matrix proves without exploring a single marking.

The incidence matrix ``C = (post - pre).T`` (places x transitions) says how
each firing changes the marking. From it alone:

* **place invariants** ``y`` with ``yᵀC = 0``: the weighted token sum
  ``y·m`` never changes, so a non-negative one (a *semiflow*) bounds every
  place it covers by ``(y·m0) / y_p`` -- how the engine sizes a marking
  before exploring;
* **transition invariants** ``x`` with ``Cx = 0``: firing counts that
  reproduce a marking (the cycles of the net);
* **conservative** (a strictly positive place invariant) and **structurally
  bounded** (a strictly positive ``y`` with ``yᵀC <= 0``): two small linear
  programs (scipy's HiGHS), each a proof of boundedness for *every* initial
  marking;
* **siphons** (once empty, always empty) and **traps** (once marked, always
  marked), and Commoner's siphon-trap property, which for free-choice nets is
  exactly liveness (in :mod:`petriflow.verify.siphons`, importable from here).

Exact arithmetic throughout: integer elimination with gcd normalisation in
numpy ``int64`` that falls back to Python integers before anything could
overflow; the Farkas algorithm enumerates minimal semiflows under a row
budget.

>>> from petriflow.net.petrinet import PetriNet
>>> mutex = PetriNet.from_arcs(
...     places={"idle": 1, "busy": 0}, transitions=["enter", "leave"],
...     arcs=[("idle", "enter", 1), ("enter", "busy", 1), ("busy", "leave", 1), ("leave", "idle", 1)])
>>> place_invariants(mutex).tolist(), bounds_from_invariants(mutex).tolist()
([[1, 1]], [1, 1])
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from math import gcd

import numpy as np

from petriflow.errors import BudgetExceeded
from petriflow.net.petrinet import PetriNet
from petriflow.verify.siphons import (
    commoner_holds,
    maximal_siphon_in,
    maximal_trap_in,
    minimal_siphons,
    siphon_without_marked_trap,
)

__all__ = [
    "StructuralSummary",
    "bits_per_place",
    "bounds_from_invariants",
    "commoner_holds",
    "incidence_matrix",
    "is_conservative",
    "is_free_choice",
    "is_structurally_bounded",
    "maximal_siphon_in",
    "maximal_trap_in",
    "minimal_siphons",
    "place_invariants",
    "place_semiflows",
    "siphon_without_marked_trap",
    "structural_bounds",
    "summary",
    "transition_invariants",
    "transition_semiflows",
]

_SAFE = 1 << 30  # entries below this keep every product of two in int64


def incidence_matrix(net: PetriNet) -> np.ndarray:
    """``C``, places x transitions: ``C[p, t]`` is the change of place ``p`` when ``t`` fires."""
    return np.ascontiguousarray((net.post - net.pre).T)


# -- exact linear algebra -------------------------------------------------------
def _normalise(rows: np.ndarray) -> np.ndarray:
    """Divide each row by the gcd of its entries (rows of zeros stay zero)."""
    if rows.dtype == object:
        for i in range(rows.shape[0]):
            g = reduce(gcd, (abs(int(v)) for v in rows[i]), 0)
            if g > 1:
                rows[i] = np.array([int(v) // g for v in rows[i]], dtype=object)
        return rows
    div: np.ndarray = np.gcd.reduce(np.abs(rows), axis=1) if rows.size else np.ones(0, np.int64)
    div[div == 0] = 1
    return np.asarray(rows // div[:, None])


def _widen(rows: np.ndarray) -> np.ndarray:
    """Switch to Python integers once int64 products could overflow."""
    if rows.dtype != object and rows.size and int(np.abs(rows).max()) >= _SAFE:
        return rows.astype(object)
    return rows


def _left_kernel(A: np.ndarray) -> np.ndarray:
    """Integer rows ``y`` spanning ``{y : y A = 0}`` over the rationals (a basis).

    Row-reduces ``[A | I]``: for each column, a pivot row eliminates the column
    from every other row (``r_i <- a_p r_i - a_i r_p``, invertible) and leaves.
    The identity part of the rows left when every column is zero is a basis.
    """
    n, k = A.shape
    M = np.hstack([A.astype(np.int64), np.eye(n, dtype=np.int64)])
    for c in range(k):
        col = M[:, c]
        nz = np.flatnonzero(col != 0)
        if nz.size == 0:
            continue
        mags = np.array([abs(int(col[i])) for i in nz])
        piv = int(nz[np.argmin(mags)])
        M = _widen(M)
        a_p = M[piv, c]
        others = nz[nz != piv]
        if others.size:
            a_i = M[others, c].reshape(-1, 1)
            M[others] = M[others] * a_p - a_i * M[piv]
            M[others] = _normalise(M[others])
        M = np.delete(M, piv, axis=0)
    Y = M[:, k:]
    Y = _normalise(Y)
    for i in range(Y.shape[0]):  # make the first non-zero entry positive
        nz = np.flatnonzero(Y[i] != 0)
        if nz.size and Y[i, nz[0]] < 0:
            Y[i] = -Y[i]
    return Y.astype(np.int64) if Y.dtype == object and _fits(Y) else Y


def _fits(Y: np.ndarray) -> bool:
    return all(abs(int(v)) < 2**62 for v in Y.flat)


def _semiflows(A: np.ndarray, max_rows: int) -> np.ndarray:
    """Farkas algorithm: the minimal-support non-negative integer ``y`` with ``y A = 0``.

    Columns are eliminated one at a time (the one with the fewest
    positive x negative pairs first); a row whose support strictly contains
    another's is not minimal and is dropped. More than ``max_rows`` rows at any
    step raises :class:`BudgetExceeded`.
    """
    n, k = A.shape
    D = A.astype(np.int64).copy()
    Y = np.eye(n, dtype=np.int64)
    todo = list(range(k))
    while todo:
        costs = [int((D[:, c] > 0).sum()) * int((D[:, c] < 0).sum()) for c in todo]
        c = todo.pop(int(np.argmin(costs)))
        col = D[:, c]
        pos, neg, zero = col > 0, col < 0, col == 0
        n_new = int(pos.sum()) * int(neg.sum())
        if int(zero.sum()) + n_new > 4 * max_rows:
            raise BudgetExceeded(f"Farkas algorithm would hold {int(zero.sum()) + n_new} rows", hint="raise max_rows")
        W = np.hstack([D, Y])
        W = _widen(W)
        parts = [W[zero]]
        if n_new:
            P_, N_ = W[pos], W[neg]
            cp, cn = col[pos].reshape(-1, 1), -col[neg].reshape(-1, 1)
            if W.dtype == object:
                cp, cn = cp.astype(object), cn.astype(object)
            new = (cn[None, :, :] * P_[:, None, :] + cp[:, None, :] * N_[None, :, :]).reshape(-1, W.shape[1])
            parts.append(_normalise(new))
        W = np.vstack(parts) if parts else W[:0]
        if n_new:  # dropping rows keeps the rest minimal; only combinations can be redundant
            W = _minimal_rows(W, k)
        if W.shape[0] > max_rows:
            raise BudgetExceeded(f"more than {max_rows} candidate semiflows", hint="raise max_rows")
        D, Y = W[:, :k], W[:, k:]
    if Y.dtype == object and _fits(Y):
        Y = Y.astype(np.int64)
    order = np.lexsort(np.asarray(Y != 0).T[::-1])[::-1] if len(Y) else np.arange(0)
    return Y[order]


def _minimal_rows(W: np.ndarray, k: int) -> np.ndarray:
    """Drop duplicate rows and rows whose support (in the identity part) strictly contains another's."""
    if W.shape[0] <= 1:
        return W
    if W.dtype == object:
        seen: dict[tuple[int, ...], int] = {}
        for i, row in enumerate(W):
            seen.setdefault(tuple(int(v) for v in row), i)
        W = W[sorted(seen.values())]
    else:
        W = np.unique(W, axis=0)
    S = np.asarray(W[:, k:] != 0, dtype=np.int32)
    outside = S @ (1 - S).T  # outside[i, j]: places of supp(i) not in supp(j)
    size = S.sum(axis=1)
    contains = (outside.T == 0) & (size[:, None] > size[None, :])  # supp(j) ⊊ supp(i)
    return np.asarray(W[~contains.any(axis=1)])


def _basis_preferring(semi: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """A basis of the span of ``basis`` that uses semiflows first, then completes with basis rows.

    Incremental Gram-Schmidt in floats only decides *which* integer rows to
    keep (they are small integers, so the rank test is reliable); the rows
    themselves stay exact.
    """
    dim, width = basis.shape
    chosen: list[np.ndarray] = []
    ortho: list[np.ndarray] = []
    for row in list(semi) + list(basis):
        if len(chosen) == dim:
            break
        v: np.ndarray = np.asarray(row, dtype=float)
        r: np.ndarray = v.copy()
        for q in ortho:
            r = r - np.dot(q, r) * q
        if float(np.linalg.norm(r)) > 1e-9 * max(1.0, float(np.linalg.norm(v))):
            ortho.append(r / np.linalg.norm(r))
            chosen.append(np.asarray(row))
    return np.array(chosen, dtype=np.int64).reshape(-1, width)


# -- invariants -----------------------------------------------------------------
def place_semiflows(net: PetriNet, *, max_rows: int = 5000) -> np.ndarray:
    """All minimal place semiflows (``y >= 0``, ``yᵀC = 0``), one per row; :class:`BudgetExceeded` past ``max_rows``."""
    return _semiflows(incidence_matrix(net), max_rows)


def transition_semiflows(net: PetriNet, *, max_rows: int = 5000) -> np.ndarray:
    """All minimal transition semiflows (``x >= 0``, ``Cx = 0``): firing counts that reproduce a marking."""
    return _semiflows(incidence_matrix(net).T, max_rows)


def place_invariants(net: PetriNet, *, max_rows: int = 2000) -> np.ndarray:
    """An integer basis of the place invariants (``yᵀC = 0``), shape ``(k, places)``.

    Semiflows (non-negative, each a conservation law) are used where they
    span; otherwise the basis is completed with signed invariants. Rows are
    gcd-normalised.
    """
    basis = _left_kernel(incidence_matrix(net))
    return _prefer_semiflows(basis, lambda: place_semiflows(net, max_rows=max_rows))


def transition_invariants(net: PetriNet, *, max_rows: int = 2000) -> np.ndarray:
    """An integer basis of the transition invariants (``Cx = 0``), shape ``(k, transitions)``."""
    basis = _left_kernel(incidence_matrix(net).T)
    return _prefer_semiflows(basis, lambda: transition_semiflows(net, max_rows=max_rows))


def _prefer_semiflows(basis: np.ndarray, semi) -> np.ndarray:  # type: ignore[no-untyped-def]
    if basis.shape[0] == 0 or basis.dtype == object:
        return basis
    try:
        semis = semi()
    except BudgetExceeded:
        return basis
    return _basis_preferring(np.asarray(semis, dtype=np.int64), basis)


# -- linear programs ------------------------------------------------------------
def _positive_weights(net: PetriNet, *, conserved: bool) -> bool:
    """Whether some ``y >= 1`` has ``yᵀC = 0`` (``conserved``) or ``yᵀC <= 0``: the LP behind both proofs.

    Any strictly positive solution scales to ``y >= 1``, so the bound keeps
    the LP feasible exactly when a positive one exists; a net without places
    is trivially both.
    """
    from scipy.optimize import linprog

    C = incidence_matrix(net)
    P = C.shape[0]
    if P == 0:
        return True
    rows = {"A_eq": C.T, "b_eq": np.zeros(C.shape[1])} if conserved else {"A_ub": C.T, "b_ub": np.zeros(C.shape[1])}
    res = linprog(c=np.ones(P), bounds=[(1, None)] * P, method="highs", **rows)
    return bool(res.status == 0)


def is_conservative(net: PetriNet) -> bool:
    """Whether a strictly positive place invariant exists (the weighted token count never changes)."""
    return _positive_weights(net, conserved=True)


def is_structurally_bounded(net: PetriNet) -> bool:
    """Whether some ``y > 0`` has ``yᵀC <= 0``: bounded from every initial marking."""
    return _positive_weights(net, conserved=False)


def bounds_from_invariants(net: PetriNet, *, max_rows: int = 5000) -> np.ndarray | None:
    """Per place, ``min (y·m0) // y_p`` over the minimal semiflows covering it; None if some place is uncovered.

    Every reachable marking obeys these bounds, so they size a packed marking
    ("bits per place") before exploring. None also when the semiflows exceed
    ``max_rows``.
    """
    try:
        Y = place_semiflows(net, max_rows=max_rows)
    except BudgetExceeded:
        return None
    P = len(net.places)
    out = np.full(P, -1, dtype=np.int64)
    m0 = [int(v) for v in net.initial]
    for y in Y:
        total = sum(int(a) * b for a, b in zip(y, m0))
        for p in np.flatnonzero(np.asarray(y) > 0):
            b = total // int(y[p])
            if out[p] < 0 or b < out[p]:
                out[p] = b
    return None if (out < 0).any() else out


def bits_per_place(net: PetriNet, *, max_rows: int = 5000) -> np.ndarray | None:
    """Bits that hold every reachable token count of each place (``ceil(log2(bound + 1))``), from the semiflow bounds.

    None when some place is not covered by a semiflow; a place that is always
    empty needs 0 bits.
    """
    b = bounds_from_invariants(net, max_rows=max_rows)
    if b is None:
        return None
    return np.array([int(v).bit_length() for v in b], dtype=np.int64)


def structural_bounds(net: PetriNet) -> tuple[int | None, ...]:
    """Per place, the largest ``m_p`` allowed by the state equation ``m = m0 + Cx, m, x >= 0`` (LP).

    An upper bound of the true bound, at least as tight as the semiflow bound;
    None where the LP is unbounded (the place may or may not be bounded).
    """
    from scipy.optimize import linprog

    C = incidence_matrix(net).astype(float)
    P, T = C.shape
    m0 = net.initial.astype(float)
    out: list[int | None] = []
    for p in range(P):
        res = linprog(-C[p], A_ub=-C, b_ub=m0, bounds=[(0, None)] * T, method="highs") if T else None
        if res is None:
            out.append(int(m0[p]))
        elif res.status != 0 or res.fun is None:
            # x = 0 is always feasible, so any failure means unbounded (HiGHS' presolve may
            # report an unbounded LP as "infeasible") or numerical trouble: claim no bound
            out.append(None)
        else:
            out.append(int(np.floor(m0[p] - res.fun + 1e-7)))
    return tuple(out)


def is_free_choice(net: PetriNet) -> bool:
    """Extended free choice and ordinary: transitions sharing an input place share all input places, arcs weigh 1."""
    if (net.pre > 1).any() or (net.post > 1).any():
        return False
    ins = net.pre > 0
    share = (ins.astype(np.int32) @ ins.T.astype(np.int32)) > 0
    same = (ins[:, None, :] == ins[None, :, :]).all(axis=2)
    return bool(np.all(~share | same))



@dataclass(frozen=True)
class StructuralSummary:
    """Everything structural in one value, for the report: cheap to compute on nets of a few hundred places."""

    conservative: bool
    structurally_bounded: bool
    place_invariants: int
    transition_invariants: int
    bounds: tuple[int, ...] | None
    free_choice: bool


def summary(net: PetriNet) -> StructuralSummary:
    """Conservativeness, structural boundedness, invariant counts, semiflow bounds and free choice."""
    b = bounds_from_invariants(net)
    return StructuralSummary(
        conservative=is_conservative(net),
        structurally_bounded=is_structurally_bounded(net),
        place_invariants=int(_left_kernel(incidence_matrix(net)).shape[0]),
        transition_invariants=int(_left_kernel(incidence_matrix(net).T).shape[0]),
        bounds=None if b is None else tuple(int(v) for v in b),
        free_choice=is_free_choice(net),
    )
