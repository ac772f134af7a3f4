"""What the verification tests share: the benchmark net families, the plain-Python BFS oracle, random nets.

``nets`` is ``analysis/bench/nets.py``, loaded once by path (``analysis`` is
not a package and the library never imports it): the families with closed-form
state counts, the unbounded ``producer_ring``, and ``nets.bfs``, a BFS over
tuples that shares no code with the engines under test. ``random_nets`` draws
small P/T nets for the differential tests against it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from petriflow.net.petrinet import PetriNet

__all__ = ["ROOT", "nets", "random_nets"]

ROOT = Path(__file__).resolve().parents[2]


def _load_bench_nets():  # type: ignore[no-untyped-def]
    if "bench_nets" in sys.modules:
        return sys.modules["bench_nets"]
    spec = importlib.util.spec_from_file_location("bench_nets", ROOT / "analysis" / "bench" / "nets.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_nets"] = mod  # before exec: dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


nets = _load_bench_nets()


@st.composite
def random_nets(draw: st.DrawFn, *, places: tuple[int, int] = (1, 5), transitions: tuple[int, int] = (1, 5),
                weight: int = 2, tokens: int = 2, thin: tuple[bool, bool] = (True, True),
                sparse: bool = False) -> PetriNet:
    """Random P/T nets, bounded or not, with ``places`` and ``transitions`` in the given ranges.

    Dense nets draw every arc weight in ``0..weight``; ``thin`` also drops a
    random subset of the input (first) and output (second) arcs, so that more
    nets are bounded and have dead markings (and the BFS oracle can answer).
    ``sparse`` instead draws a few unit-marked places and at most ``3 T``
    arcs among many places.
    """
    P = draw(st.integers(*places))
    T = draw(st.integers(*transitions))
    if sparse:
        pre = np.zeros((T, P), dtype=np.int64)
        post = np.zeros((T, P), dtype=np.int64)
        arcs = st.tuples(st.integers(0, max(T - 1, 0)), st.integers(0, P - 1), st.integers(1, weight))
        for matrix in (pre, post):
            for t, p, k in draw(st.lists(arcs, max_size=3 * T)) if T else []:
                matrix[t, p] = k
        marked = draw(st.lists(st.integers(0, P - 1), max_size=P // 4))
        m0 = np.zeros(P, dtype=np.int64)
        m0[marked] = 1
    else:
        matrix = st.lists(st.lists(st.integers(0, weight), min_size=P, max_size=P), min_size=T, max_size=T)
        mask = st.lists(st.lists(st.booleans(), min_size=P, max_size=P), min_size=T, max_size=T)
        pre = np.array(draw(matrix), dtype=np.int64).reshape(T, P)
        post = np.array(draw(matrix), dtype=np.int64).reshape(T, P)
        if thin[0]:
            pre = pre * np.array(draw(mask), dtype=np.int64).reshape(T, P)
        if thin[1]:
            post = post * np.array(draw(mask), dtype=np.int64).reshape(T, P)
        m0 = np.array(draw(st.lists(st.integers(0, tokens), min_size=P, max_size=P)), dtype=np.int64)
    return PetriNet(places=tuple(f"p{i}" for i in range(P)), transitions=tuple(f"t{i}" for i in range(T)),
                    pre=pre, post=post, initial=m0)
