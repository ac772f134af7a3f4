"""Arc matrices kept as rows of (place, weight): how a net too big to hold densely is stored.

A :class:`~petriflow.net.petrinet.PetriNet` normally holds ``pre`` and
``post`` as dense ``transitions x places`` matrices, which is what the
search kernels read. A chain of 3,000 steps lowers to about 6,000 x 6,000
of them, 288 MB each, for 12,000 arcs. Such a net keeps its arcs in
:class:`SparseArcs` (compressed rows: ``indptr``, ``indices``, ``weights``)
instead: the structural reductions (:mod:`petriflow.net.reduce`) read it
row by row and build dense matrices only for the reduced net, where
:data:`~petriflow.limits.MAX_MATRIX_CELLS` applies; a witness found there
is replayed on the sparse original, whose rows come out dense one at a
time (``arcs[t]``), as the firing rule and the explanations read them.

Anything that wants the whole matrix (``np.asarray(net.pre)``, a search
kernel) gets a :class:`~petriflow.errors.NetError` saying the net is too
big to hold densely and what to do, never a MemoryError.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from petriflow.errors import NetError
from petriflow.limits import MAX_MATRIX_CELLS

__all__ = ["SparseArcs", "as_sparse"]


class SparseArcs:
    """A read-only ``(transitions, places)`` arc matrix in compressed rows (CSR), indices sorted in each row."""

    __slots__ = ("indices", "indptr", "shape", "weights")

    def __init__(self, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, shape: tuple[int, int]) -> None:
        """The matrix with ``weights[k]`` at ``(rows[k], cols[k])``; repeated pairs add up (as parallel arcs do)."""
        T, P = shape
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        w = np.asarray(weights, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= T or cols.min() < 0 or cols.max() >= P):
            raise NetError(f"an arc lies outside a net of {T} transitions and {P} places")
        if (w < 0).any():
            raise NetError("an arc has a negative weight", hint="arc weights are >= 0")
        key = rows * max(P, 1) + cols
        uniq, inverse = np.unique(key, return_inverse=True)
        summed = np.zeros(uniq.size, dtype=np.int64)
        np.add.at(summed, inverse, w)
        keep = summed != 0
        uniq, summed = uniq[keep], summed[keep]
        r = uniq // max(P, 1)
        self.indices = uniq % max(P, 1)
        self.weights = summed
        self.indptr = np.zeros(T + 1, dtype=np.int64)
        np.cumsum(np.bincount(r, minlength=T), out=self.indptr[1:])
        for a in (self.indices, self.weights, self.indptr):
            a.flags.writeable = False
        self.shape = (T, P)

    @classmethod
    def from_dense(cls, matrix: np.ndarray) -> SparseArcs:
        rows, cols = np.nonzero(matrix)
        return cls(rows, cols, matrix[rows, cols], (int(matrix.shape[0]), int(matrix.shape[1])))

    @property
    def nnz(self) -> int:
        """How many arcs (non-zero entries)."""
        return int(self.indices.size)

    def row(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Transition ``t``'s places and weights."""
        a, b = int(self.indptr[t]), int(self.indptr[t + 1])
        return self.indices[a:b], self.weights[a:b]

    def __getitem__(self, t: int | np.integer[Any]) -> np.ndarray:
        """Row ``t`` as a dense vector over the places (what the firing rule and the explanations read)."""
        if not isinstance(t, (int, np.integer)):
            raise NetError("a sparse arc matrix is read one transition (row) at a time")
        out = np.zeros(self.shape[1], dtype=np.int64)
        cols, w = self.row(int(t))
        out[cols] = w
        return out

    def __len__(self) -> int:
        return self.shape[0]

    def covered_by(self, marking: np.ndarray) -> np.ndarray:
        """Per transition: whether every entry of its row is at most ``marking`` (``pre <= m`` row-wise)."""
        short = self.weights > marking[self.indices]
        row_of = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        out = np.ones(self.shape[0], dtype=bool)
        out[row_of[short]] = False
        return out

    def same_as(self, other: SparseArcs) -> bool:
        return (self.shape == other.shape and np.array_equal(self.indptr, other.indptr)
                and np.array_equal(self.indices, other.indices) and np.array_equal(self.weights, other.weights))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """Refused: the point of this form is that the dense matrix would not fit (see the module docstring)."""
        T, P = self.shape
        raise NetError(f"a net of {T} transitions and {P} places is too big to hold as dense matrices "
                       f"({T * P:,} cells, more than {MAX_MATRIX_CELLS:,}); `check` (reducing it first) and `simulate` "
                       "read it sparsely, this use needs it whole",
                       hint="check it without --full, or split the workflow into smaller ones")


def as_sparse(matrix: np.ndarray | SparseArcs) -> SparseArcs:
    """Either form of an arc matrix as :class:`SparseArcs`."""
    return matrix if isinstance(matrix, SparseArcs) else SparseArcs.from_dense(matrix)
