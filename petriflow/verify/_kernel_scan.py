"""Compiled passes over the stored states that need no hash table: repacking and per-place bounds (numba).

They read the packed states of :mod:`petriflow.verify._kernel` through a
field layout (:class:`petriflow.verify._kernel_layout.Layout`: word, shift
and mask per place) and nothing else: they inline no helper and read no
constant of another module. That is what lets them live apart from the
expansion kernels, whose shared inlined helpers must stay in one file
(numba's on-disk cache is invalidated only when a cached function's own
file changes; see :mod:`petriflow.verify._kernel`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

__all__ = ["bounds", "repack"]


@njit(cache=True)
def repack(old: np.ndarray, n: int, o_word: np.ndarray, o_shift: np.ndarray, o_mask: np.ndarray,
           new: np.ndarray, n_word: np.ndarray, n_shift: np.ndarray) -> None:
    """Copy states ``0..n-1`` from one field layout to another (``new`` zeroed)."""
    P = o_word.shape[0]
    for i in range(n):
        for p in range(P):
            v = (old[i, o_word[p]] >> o_shift[p]) & o_mask[p]
            new[i, n_word[p]] |= v << n_shift[p]


@njit(cache=True)
def bounds(packed: np.ndarray, n: int, word: np.ndarray, shift: np.ndarray, mask: np.ndarray,
           out: np.ndarray) -> Any:
    """Per-place maxima into ``out``; returns the largest token sum of one marking."""
    P = word.shape[0]
    best = np.int64(0)
    for i in range(n):
        total = np.int64(0)
        for p in range(P):
            v = np.int64((packed[i, word[p]] >> shift[p]) & mask[p])
            total += v
            out[p] = max(out[p], v)
        best = max(best, total)
    return best

