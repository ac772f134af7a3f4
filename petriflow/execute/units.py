"""A resource's units on one event loop, taken several at a time and all at once, first come first served.

A step that ``uses: {gpu: 2}`` starts, in the net, by one transition that
takes both tokens of the resource place at once, and the simulator grants
them the same way (:mod:`petriflow.simulate.resources`). An
``asyncio.Semaphore`` taken twice in a row does not: two steps that each wait
for 2 of 2 units are each handed one when a holder gives both back, and then
wait for each other forever, a deadlock the verifier rightly never reports
because the net cannot reach it. :class:`Units` grants a request only whole,
in arrival order (the head of the queue is served first, so a large request
is not passed over forever by small ones), which is what the net and the
simulator do.

    >>> import asyncio
    >>> async def demo() -> list[int]:
    ...     u = Units(2)
    ...     await u.acquire(2)
    ...     waiting = [asyncio.ensure_future(u.acquire(2)) for _ in range(2)]
    ...     await asyncio.sleep(0)
    ...     u.release(2)                     # one of the two gets both units, the other waits
    ...     await asyncio.sleep(0)
    ...     return [sum(w.done() for w in waiting), u.free]
    >>> asyncio.run(demo())
    [1, 0]
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["Units"]


class Units:
    """``capacity`` units; :meth:`acquire` waits until ``n`` are free and takes them together."""

    def __init__(self, capacity: int) -> None:
        self.free = capacity
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    def would_wait(self, n: int = 1) -> bool:
        """True when a request for ``n`` units now would have to queue."""
        return bool(self._waiters) or self.free < n

    async def acquire(self, n: int = 1) -> None:
        if not self.would_wait(n):
            self.free -= n
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, fut)
        self._waiters.append(entry)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # granted just as it was cancelled: give the units back
                self.release(n)
            else:
                self._waiters.remove(entry)
                self._grant()  # a smaller request behind it may fit now
            raise

    def release(self, n: int = 1) -> None:
        self.free += n
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self._waiters[0][0] <= self.free:
            n, fut = self._waiters.popleft()
            if not fut.done():
                self.free -= n
                fut.set_result(None)
