"""The one walk both tree-shaped searches need: from a node up its parent links to a firing sequence.

The stubborn-set reduced search (:mod:`petriflow.verify.reduced`) and the
coverability tree (:mod:`petriflow.verify.coverability`) each store, per node,
its parent node and the transition that led to it; a witness (a trace to a
deadlock, a lasso, a pumping sequence) is the path between two nodes of that
tree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["tree_path"]


def tree_path(parent: np.ndarray, parent_t: np.ndarray, transitions: Sequence[str], i: int, stop: int = 0) -> list[str]:
    """Transition ids on the tree path from node ``stop`` (an ancestor of ``i``; 0 is the root) down to ``i``."""
    seq: list[str] = []
    while i != stop:
        seq.append(transitions[int(parent_t[i])])
        i = int(parent[i])
    seq.reverse()
    return seq
