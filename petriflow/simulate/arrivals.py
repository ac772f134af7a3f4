"""A case's life outside the token game: its arrival, its end, and finding it stuck.

Split out of :mod:`petriflow.simulate.engine` along the load's concept: how
cases enter the system (Poisson gaps, replayed times, a closed population
of users who think between cases), how an ended case frees its user, and
how a case that can never move again (a deadlock) is detected and counted
as ``unfinished`` rather than silently losing its closed-population user.
The hot loop (firing, offering, resource queues) stays in the engine; these
methods run once or twice per case, so the mixin costs nothing per firing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from petriflow.simulate.load import Load
from petriflow.simulate.tables import Tables, rng_for, stream

__all__ = ["ARRIVE", "BACKOFF_DONE", "COMPLETE", "Arrivals", "Case"]

ARRIVE, COMPLETE, BACKOFF_DONE = 0, 1, 2


class Case:
    """One request: its marking, cost so far, and the attempt numbers of its tokens waiting to retry.

    ``pending`` counts what may still move the case: its scheduled events
    (completions, back-offs) and its entries in resource queues. Every
    immediate transition fires synchronously, so a case that has not ended
    with nothing pending can never move again: it is stuck in a deadlock,
    and a closed population's user is freed to think and arrive again
    (``done`` marks a case that reached the sink or was found stuck).

    ``retrying[s]`` holds, first in first out, the number of the next attempt
    of each token of step ``s`` that came out of back-off, with the time its
    ``step_timeout`` clock started (None without one): the executor counts
    attempts per call (per map item and per loop pass), so a token carries its
    own count although the net's tokens are alike.
    """

    __slots__ = ("cost", "dead", "done", "failed", "idx", "m", "pending", "retrying", "t0")

    def __init__(self, m: list[int], t0: float, idx: int) -> None:
        self.m, self.t0, self.cost, self.dead, self.idx = m, t0, 0.0, False, idx
        self.done, self.pending = False, 0
        self.failed = False  # a step failed for good and its on_failure handler took over: counted failed at the sink
        self.retrying: dict[int, deque[tuple[int, float | None]]] | None = None


class Arrivals:
    """Mixin of the engine: arrivals, ends and stuck cases, over the engine's own state.

    The attributes below are set by the engine (``_init_arrivals`` sets the
    load's own); ``push``, ``fire`` and ``release`` are the engine's.
    """

    if TYPE_CHECKING:
        tab: Tables
        now: float
        push: Callable[[float, int, Case | None, int, int, Any], None]

        def fire(self, c: Case, t: int, mask: int) -> None: ...
        def release(self, res: tuple[tuple[int, int], ...]) -> None: ...

    def _init_arrivals(self, load: Load, cases: int, seed: int) -> None:
        """Set the counters of cases and the stream of gaps between arrivals (or think times)."""
        self.load, self.n = load, cases
        self.arrived = 0
        self.scheduled = 0  # arrivals of a closed population scheduled so far: two users ending at once start no extra case
        self.failed = 0
        self.stuck = 0
        self.suspects: list[Case] = []  # cases whose last queue entry went: stuck unless something else is pending
        self.failed_records: list[tuple[int, float]] = []  # (case, dollars spent before it failed)
        self.gaps: Iterator[float]
        g = rng_for(seed, "__load__")
        if load.kind == "poisson":
            self.gaps = stream(lambda k: g.exponential(1.0 / load.rate, k))
        elif load.kind == "closed":
            self.gaps = stream(lambda k: load.think.sample(g, k))

    def _start_load(self) -> None:
        load = self.load
        if load.kind == "poisson":
            self.push(0.0, ARRIVE, None, 0, 0, False)
        elif load.kind == "replay":
            self.push(load.times[0], ARRIVE, None, 0, 0, False)
        else:
            self.scheduled = min(load.users, self.n)
            for _ in range(self.scheduled):
                self.push(0.0, ARRIVE, None, 0, 0, False)

    def arrive(self) -> None:
        i = self.arrived
        self.arrived += 1
        c = Case(list(self.tab.initial), self.now, i)
        kind = self.load.kind
        if self.arrived < self.n:
            if kind == "poisson":
                self.push(next(self.gaps), ARRIVE, None, 0, 0, False)
            elif kind == "replay":
                times = self.load.times
                self.push(times[self.arrived] - times[i], ARRIVE, None, 0, 0, False)
        self.fire(c, self.tab.begin, 0)
        if not c.pending:
            self.settle(c)

    def settle(self, c: Case) -> None:
        """``c`` has nothing pending: unless it ended, it is stuck for good, and its user may arrive again.

        Without this a closed population would lose the user of every stuck
        case and silently run fewer cases; the result counts stuck cases as
        ``unfinished``.
        """
        if c.done or c.dead:
            return
        c.done = True
        self.stuck += 1
        self._ended()

    def settle_suspects(self) -> None:
        suspects = self.suspects
        while suspects:
            c = suspects.pop()
            if not c.pending:
                self.settle(c)

    def _ended(self) -> None:
        if self.load.kind == "closed" and self.scheduled < self.n:
            self.scheduled += 1
            self.push(next(self.gaps), ARRIVE, None, 0, 0, False)

    def fail_at_sink(self, c: Case) -> None:
        """A case that reached the sink through an on_failure handler: failed, as the executor reports it."""
        c.done = True
        self.failed += 1
        self.failed_records.append((c.idx, c.cost))
        self._ended()

    def kill(self, c: Case, st: object) -> None:
        c.dead = True
        self.failed += 1
        self.failed_records.append((c.idx, c.cost))
        self.release(st.release)  # type: ignore[attr-defined]
        self._ended()
