"""Resources and rate limits held across the workers of a Ray batch: one owner, and each worker's share of it.

:class:`Limiter` is the one owner (a Ray actor): every unit of every
resource and every rate bucket lives there, so a resource's capacity and its
requests and tokens per minute hold across all workers, as they do within one
local executor. It counts units by holder, so a dead worker's units come back
(:meth:`Limiter.forget`) when the driver replaces it.

:class:`WorkerLimits` is a worker's side (what
:class:`~petriflow.execute.policies.SharedLimits` asks). Asking the actor for
every call costs a round trip per call, which on a busy worker is most of what
a Ray batch pays over a local one. So a worker *keeps* the units its calls
give back, up to its share (``keep``: the capacity divided by the workers),
and hands them to its next calls without asking; units above its share go
back at once, and kept units that stay unused for a whole ``linger`` period go
back too, so a worker that has gone quiet does not sit on its share. The
capacity still holds exactly: a kept unit is held at the limiter, by that
worker, and counted in :meth:`Limiter.in_use`. Rate permits are not kept: a
call on a rate-limited resource always asks the limiter for its permits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from petriflow.execute.units import Units
from petriflow.rules import Bucket

__all__ = ["Limiter", "WorkerLimits"]

Uses = tuple[tuple[str, int], ...]


class Limiter:
    """The one owner of every resource's units and rate buckets for all workers (the body of a Ray actor).

    The same rule as one executor's :class:`~petriflow.execute.policies.StepPolicies`:
    units first, then a wait for the rate permits; the wait is returned and
    slept by the worker.
    """

    def __init__(self, resources: Mapping[str, Mapping[str, Any]]) -> None:
        self._clock = time.monotonic
        now = self._clock()
        self._units = {rid: Units(int(r["capacity"])) for rid, r in resources.items()}
        self._requests = {rid: Bucket.for_requests(r["rpm"], capacity=int(r["capacity"]), now=now)
                          for rid, r in resources.items() if r.get("rpm")}
        self._tokens = {rid: Bucket.for_tokens(r["tpm"], now=now) for rid, r in resources.items() if r.get("tpm")}
        self._held: dict[str, dict[str, int]] = {}
        self._gone: set[str] = set()  # holders forgotten: what they still wait for is given back when granted

    async def acquire(self, holder: str, units: Uses, rated: tuple[str, ...], estimate: int) -> float:
        """Give ``holder`` ``units``, then reserve one call's permits on each of ``rated``; returns the wait."""
        taken: list[tuple[str, int]] = []
        try:
            for rid, n in units:  # each resource's units at once, the resources in sorted order (as locally)
                await self._units[rid].acquire(n)
                taken.append((rid, n))
        except asyncio.CancelledError:
            for rid, n in taken:
                self._units[rid].release(n)
            raise
        if holder in self._gone:  # it died while it waited: nobody will give these back
            for rid, n in taken:
                self._units[rid].release(n)
            return 0.0
        mine = self._held.setdefault(holder, {})
        for rid, n in taken:
            mine[rid] = mine.get(rid, 0) + n
        wait, now = 0.0, self._clock()
        for rid in rated:
            if rid in self._requests:
                wait = max(wait, self._requests[rid].reserve(now, 1))
            if rid in self._tokens:
                wait = max(wait, self._tokens[rid].reserve(now, estimate))
        return wait

    def settle(self, uses: Uses, tokens: int) -> None:
        """Charge the token buckets the difference between a call's estimate and what it used."""
        now = self._clock()
        for rid, _ in uses:
            if rid in self._tokens:
                self._tokens[rid].reserve(now, tokens)

    def release(self, holder: str, uses: Uses) -> None:
        """Take back units ``holder`` holds (a holder that holds none gives none back)."""
        mine = self._held.get(holder, {})
        for rid, n in uses:
            k = min(n, mine.get(rid, 0))
            if k > 0:
                mine[rid] -= k
                self._units[rid].release(k)

    def forget(self, holder: str) -> None:
        """Give back every unit a dead worker held, the ones it kept unused included, and all it still waits for."""
        self._gone.add(holder)
        for rid, n in self._held.pop(holder, {}).items():
            if n > 0:
                self._units[rid].release(n)

    def in_use(self) -> dict[str, int]:
        """Units held now, per resource, kept ones included (for tests and progress)."""
        return {rid: sum(h.get(rid, 0) for h in self._held.values()) for rid in self._units}


class WorkerLimits:
    """A worker's side of the :class:`Limiter` (see the module docstring): units kept up to ``keep``, permits asked.

    ``limiter`` is the actor handle (its methods called with ``.remote``);
    ``rated`` names the resources with a request or token rate.
    """

    def __init__(self, limiter: Any, holder: str, *, keep: Mapping[str, int], rated: frozenset[str],
                 linger: float = 0.05) -> None:
        self.limiter, self.holder, self.keep, self.rated, self.linger = limiter, holder, dict(keep), rated, linger
        self._held = dict.fromkeys(self.keep, 0)  # units this worker holds at the limiter: in use and kept
        self._free = dict.fromkeys(self.keep, 0)  # of those, the kept ones no call uses now
        self._low = dict.fromkeys(self.keep, 0)  # the fewest kept since the last sweep: unused all period long
        self._sweeper: asyncio.Task[None] | None = None
        self._returning: set[asyncio.Future[None]] = set()

    def held(self) -> dict[str, int]:
        """Units held at the limiter by this worker, per resource (in use and kept)."""
        return dict(self._held)

    async def acquire(self, uses: Uses, estimate: int) -> None:
        rated = tuple(rid for rid, _ in uses if rid in self.rated)
        local: Uses
        need: Uses
        if all(self._free[rid] >= n for rid, n in uses):  # every unit kept here: no round trip unless rated
            for rid, n in uses:
                self._free[rid] -= n
                self._low[rid] = min(self._low[rid], self._free[rid])
            local, need = uses, ()
        else:  # all of them asked, in the limiter's sorted order: never some held here while others wait there
            local, need = (), uses
        if not need and not rated:
            return
        ref = self.limiter.acquire.remote(self.holder, need, rated, estimate)
        try:
            wait = await ref
        except asyncio.CancelledError:  # the limiter may still grant them: give them back once it has
            self._put(local)
            task = asyncio.ensure_future(self._give_back(ref, need))
            self._returning.add(task)
            task.add_done_callback(self._returning.discard)
            raise
        for rid, n in need:
            self._held[rid] += n
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                self._put(uses)
                raise

    async def _give_back(self, ref: Any, need: Uses) -> None:
        try:
            await ref
        except Exception:  # the limiter is gone: nothing is held there
            return
        self.limiter.release.remote(self.holder, need)

    def settle(self, uses: Uses, tokens: int) -> None:
        if any(rid in self.rated for rid, _ in uses):
            self.limiter.settle.remote(uses, tokens)

    def release(self, uses: Uses) -> None:
        self._put(uses)

    def _put(self, uses: Uses) -> None:
        """Keep the units given back, up to this worker's share; the rest go back to the limiter now."""
        back: list[tuple[str, int]] = []
        for rid, n in uses:
            self._free[rid] += n
            over = min(self._held[rid] - self.keep[rid], self._free[rid])
            if over > 0:
                self._free[rid] -= over
                self._held[rid] -= over
                self._low[rid] = min(self._low[rid], self._free[rid])
                back.append((rid, over))
        if back:
            self.limiter.release.remote(self.holder, tuple(back))
        if self._sweeper is None and any(self._free.values()):
            self._sweeper = asyncio.ensure_future(self._sweep())

    async def _sweep(self) -> None:
        """Every ``linger`` seconds, give back the kept units no call took during the whole period."""
        try:
            while True:
                self._low = dict(self._free)
                await asyncio.sleep(self.linger)
                back = tuple((rid, n) for rid, low in self._low.items() if (n := min(low, self._free[rid])) > 0)
                for rid, n in back:
                    self._free[rid] -= n
                    self._held[rid] -= n
                if back:
                    self.limiter.release.remote(self.holder, back)
                if not any(self._free.values()):
                    return
        finally:
            self._sweeper = None
