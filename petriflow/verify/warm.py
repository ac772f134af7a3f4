"""Compile every numba kernel of :mod:`petriflow.verify` now, so that no later check waits for it.

    python -m petriflow.verify.warm

numba compiles on first use and caches the machine code on disk (next to
the package, or in ``NUMBA_CACHE_DIR``), so only the first run on a
machine pays the 15-25 s. A wheel cannot run code when pip installs it;
a setup script (``dev.py``'s) or a Dockerfile calls this module instead.
Small nets never need these kernels (:mod:`petriflow.verify._small`); big
ones load them from the cache in about a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["main", "warm"]


def _coverability() -> None:
    from petriflow.net.petrinet import PetriNet
    from petriflow.verify.coverability import coverability

    grow = PetriNet.from_arcs(places={"a": 1, "b": 0}, transitions=["t", "u"],
                              arcs=[("a", "t", 1), ("t", "a", 1), ("t", "b", 1), ("b", "u", 1)])
    coverability(grow)


def _siphons() -> None:
    from petriflow.net.petrinet import PetriNet
    from petriflow.verify.siphons import minimal_siphons

    minimal_siphons(PetriNet.from_arcs(places={"a": 1, "b": 0}, transitions=["t", "u"],
                                       arcs=[("a", "t", 1), ("t", "b", 1), ("b", "u", 1), ("u", "a", 1)]))


def _state_space() -> None:
    from petriflow.verify.statespace import warm_up

    warm_up()


def _reduced() -> None:
    from petriflow.verify import _stubborn

    _stubborn.kernels()


STEPS: dict[str, Callable[[], None]] = {
    "state-space kernels": _state_space,
    "reduced-search kernel": _reduced,
    "coverability kernels": _coverability,
    "siphon kernel": _siphons,
}


def warm() -> dict[str, float]:
    """Compile (or load from the cache) each group of kernels; the seconds each took."""
    out = {}
    for name, step in STEPS.items():
        t0 = time.perf_counter()
        step()
        out[name] = time.perf_counter() - t0
    return out


def main() -> int:
    """Warm every kernel and say how long each took (seconds near zero: the cache was already warm)."""
    for name, seconds in warm().items():
        print(f"{name}: {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
