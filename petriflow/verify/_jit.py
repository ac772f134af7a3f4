"""Say so on stderr when numba is compiling, instead of leaving a terminal frozen for 10-20 seconds.

numba compiles a kernel on its first call and caches the machine code on
disk (``cache=True``), so only a machine's first run pays; every later
process loads the cache in a fraction of a second. Whether the cache is warm
is numba's internal business, so :func:`announce_compile` does not guess:
it prints its line only when loading has already taken longer than a cache
load ever does (:data:`AFTER` seconds), and the time it took when done.
``python -m petriflow.verify.warm`` compiles everything ahead of time.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["AFTER", "announce_compile"]

AFTER = 1.5
"""Seconds after which a kernel load is taken for a compile and announced (a cache load takes well under one)."""


@contextmanager
def announce_compile(what: str, about: str) -> Iterator[None]:
    """Print "compiling ``what`` once (about ``about``)..." on stderr if the block runs past :data:`AFTER` s."""
    said = threading.Event()
    start = time.perf_counter()

    def say() -> None:
        said.set()
        print(f"petriflow: compiling {what} once (about {about}; cached for later runs; "
              "`python -m petriflow.verify.warm` does it ahead of time)...", file=sys.stderr, flush=True)

    timer = threading.Timer(AFTER, say)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        if said.is_set():
            print(f"petriflow: compiled {what} in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
