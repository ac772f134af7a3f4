"""The simulator's resources: shared units with a FIFO queue each, and the rate limits of their buckets.

Split out of :mod:`petriflow.simulate.engine` along the resource's concept.
Resource places are not per case: each is a shared counter of free units
with a FIFO queue, as ``simpy.Resource`` serves requests: a request is
granted at once when a unit is free and nobody waits, otherwise it joins the
back of the queue; a release at time t hands the unit to the head of the
queue at time t. Rate limits act as in the executor: a call holding its
units reserves one request and its tokens from the resource's buckets
(:class:`petriflow.rules.Bucket`, the executor's very rule), the wait
lengthening the attempt; a successful call's tokens are settled later with
the token buckets (a ``SETTLE`` event, :class:`~petriflow.rules.TokenLedger`).

The time integrals behind utilisation and queue length are kept here too:
busy time is the sum of (release - take) times, so a take adds ``-now * w``
and a release ``+now * w``, with no per-change bookkeeping. The engine's
:meth:`fire` updates ``free`` and ``busy_area`` inline (it is the hot loop);
everything that queues, serves or reserves permits is a method of this mixin.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from petriflow.rules import Bucket, TokenLedger
from petriflow.simulate.arrivals import Case
from petriflow.simulate.tables import StepTable, Tables

__all__ = ["SETTLE", "Resources"]

SETTLE = 3
"""An event kind: a successful call's tokens are settled with its token buckets (:class:`~petriflow.rules.TokenLedger`)."""


class Resources:
    """Mixin of the engine: resource units, their queues and their rate buckets, over the engine's own state.

    ``_init_resources`` sets the resources' own attributes; those declared
    below and ``fire`` and ``enabled`` are the engine's. ``reserve_rate`` hands the
    admitted call's rate wait, drawn price and token reservation to the
    engine's next ``run_step`` through ``rate_wait``, ``precost`` and
    ``reserved``.
    """

    if TYPE_CHECKING:
        tab: Tables
        pre_res: list[tuple[tuple[int, int], ...]]
        now: float
        steps: Sequence[StepTable]
        suspects: list[Case]

        def fire(self, c: Case, t: int, mask: int) -> None: ...
        def enabled(self, c: Case, t: int) -> bool: ...

    def _init_resources(self, tab: Tables) -> None:
        R = len(tab.resources)
        self.cap = list(tab.capacity)
        self.free = list(tab.capacity)
        self.queue: list[deque[tuple[Case, int, int]]] = [deque() for _ in range(R)]
        self.limited = [a is not None or b is not None for a, b in zip(tab.rpm, tab.tpm)]
        self.any_limited = [any(self.limited[r] for r, _ in res) for res in tab.pre_res]
        self.requests = [Bucket.for_requests(rpm, capacity=cap, now=0.0) if rpm is not None else None
                         for rpm, cap in zip(tab.rpm, tab.capacity)]
        self.tokens = [Bucket.for_tokens(tpm, now=0.0) if tpm is not None else None for tpm in tab.tpm]
        self.ledger = TokenLedger()
        self.reserved: tuple[int, int, int] | None = None  # (reserved, drawn tokens, transition) of the admitted call
        self.rate_wait = 0.0
        self.precost: float | None = None  # the admitted call's price, drawn with its tokens
        self.busy_area = [0.0] * R
        self.queue_area = [0.0] * R
        self.serving = [False] * R

    def release(self, res: tuple[tuple[int, int], ...]) -> None:
        for r, w in res:
            self.free[r] += w
            self.busy_area[r] += self.now * w
        for r, _ in res:
            if self.queue[r]:
                self.serve(r)

    def finish_accounts(self) -> None:
        """Close the time integrals at the end: units still held and requests still waiting count until now."""
        for r in range(len(self.cap)):
            self.busy_area[r] += self.now * (self.cap[r] - self.free[r])
            self.queue_area[r] += self.now * len(self.queue[r])

    def enqueue(self, r: int, entry: tuple[Case, int, int]) -> None:
        entry[0].pending += 1
        self.queue[r].append(entry)
        self.queue_area[r] -= self.now

    def dequeue(self, r: int) -> None:
        c = self.queue[r].popleft()[0]
        self.queue_area[r] += self.now
        c.pending -= 1
        if not c.pending:
            self.suspects.append(c)

    def serve(self, r: int) -> None:
        """Hand free units of ``r`` to the requests at the head of its queue, first come first served."""
        if self.serving[r]:
            return
        self.serving[r] = True
        q = self.queue[r]
        try:
            while q:
                c, t, mask = q[0]
                if c.dead or not self.enabled(c, t):
                    self.dequeue(r)
                    continue
                res = self.pre_res[t]
                other = next((r2 for r2, w in res if self.free[r2] < w), -1)
                if other == r:
                    return
                if other >= 0:  # wait for the other resource in its own queue
                    self.dequeue(r)
                    self.enqueue(other, (c, t, mask))
                    continue
                if self.any_limited[t]:
                    self.reserve_rate(t)
                self.dequeue(r)
                self.fire(c, t, mask)
                if self.enabled(c, t):  # more items of a map wait too
                    q.appendleft((c, t, mask))
                    c.pending += 1
                    self.queue_area[r] -= self.now
        finally:
            self.serving[r] = False

    def reserve_rate(self, t: int) -> None:
        """Reserve ``t``'s request and token permits; the attempt waits, holding its units, until they are due.

        As the executor does: it acquires the resource's units, then
        reserves one request from the request bucket and the call's tokens
        from the token bucket (:class:`~petriflow.rules.Bucket`), sleeping
        until both are there. The simulator draws the call's tokens now
        (input + output, with its cost), but reserves what the executor
        would, the estimate of :class:`~petriflow.rules.TokenLedger` (the
        step's last successful call's tokens), and settles the difference
        when a successful call returns (a ``SETTLE`` event, :meth:`settle_tokens`);
        reservations queue in arrival order at the bucket's rate.
        """
        st = self.steps[self.tab.step_of_transition[t]]
        pair = next(st.call_tokens) if st.call_tokens is not None else None
        estimate = self.ledger.estimate(st.name) if pair is not None else 0
        wait, now = 0.0, self.now
        for r, _ in self.pre_res[t]:
            bucket = self.requests[r]
            if bucket is not None:
                w = bucket.reserve(now, 1.0)
                if w > wait:
                    wait = w
            bucket = self.tokens[r]
            if bucket is not None and pair is not None:
                w = bucket.reserve(now, estimate)
                if w > wait:
                    wait = w
        self.rate_wait = wait
        if pair is not None:
            self.precost = pair[0]
            self.reserved = (estimate, round(pair[1]), t)

    def settle_tokens(self, t: int, settled: Any) -> None:
        """A ``SETTLE`` event: ``settled`` is (step, reserved, used) of a call that transition ``t`` admitted."""
        sid, reserved, used = settled
        buckets = [b for b in (self.tokens[r] for r, _ in self.pre_res[t]) if b is not None]
        self.ledger.settle(sid, buckets, now=self.now, reserved=reserved, used=used)
