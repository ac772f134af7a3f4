"""The simulator: a stochastic timed token game over the verified workflow net.

Each case (one request) has its own marking of the flow places; resource
places are shared counters with a FIFO queue each, and rate limits lengthen
the attempt as in the executor: their queues, buckets and time integrals
live in :mod:`petriflow.simulate.resources`.

Time passes in two places only (see :mod:`petriflow.simulate.tables`): a
token in ``s.running`` completes after a latency draw, and a token in
``s.backoff`` arrives after the retry delay. Every other transition is
immediate and fires as soon as it is enabled. At a completion the profile
resolves the conflict between the transitions that consume the running
token: a failed attempt (drawn by the failure rate of each error kind, or a
latency past the timeout) goes where :func:`petriflow.rules.after_failure`
says, as in the executor: fail and retry while the rules allow (never after
a fatal error), else give up to the fallback, else the case fails; otherwise
loop back (by the loop probability, while the loop budget lasts; once it
is spent, a step that also routes takes its loop's ``exhausted`` branch
with that probability), else a route branch (by the branch
probabilities), else finish. Both probabilities may be conditional on
the route branch that led there (:mod:`petriflow.profile.given`): a branch a
condition names sets a bit in the token's mask, which picks the condition's
stream at the completion.

A case that cannot move again (it has not ended, and it has no scheduled
event and no place in a resource queue) is stuck in a deadlock: it counts
as ``unfinished``, and under a closed population its user thinks and
arrives again as after a finished case. Arrivals, ends and this detection
live in :mod:`petriflow.simulate.arrivals`; the token game and the
attempts' outcomes stay here.

One loop, two clocks. ``backend="fast"`` pops events from a binary heap
keyed ``(time, sequence)``; ``backend="simpy"`` schedules the very same
events as ``simpy.Environment`` timeouts, whose heap is keyed ``(time,
priority, event id)`` with one priority, so both process events in the same
order and give identical numbers (a test checks it). The fast clock is the
default because it spares SimPy's per-event object, about a fifth of the
run time: see docs/simulate.md.
"""

from __future__ import annotations

import time as _time
from collections import Counter, deque
from dataclasses import replace
from heapq import heappop, heappush
from itertools import count
from types import MappingProxyType
from typing import Any

import numpy as np

from petriflow.errors import ProfileError
from petriflow.limits import check_cases, failing
from petriflow.net.lower import lower
from petriflow.net.petrinet import WorkflowNet
from petriflow.profile.model import Profile
from petriflow.rules import Verdict, after_failure, attempt_timeout, backoff_delay
from petriflow.simulate.arrivals import ARRIVE, BACKOFF_DONE, COMPLETE, Arrivals, Case
from petriflow.simulate.guard import refuse_deadlock, unpriced_steps
from petriflow.simulate.load import Load
from petriflow.simulate.resources import SETTLE, Resources
from petriflow.simulate.result import SimResult, summarize
from petriflow.simulate.tables import RUNNING, Tables, compile_tables
from petriflow.simulate.tables import given as _given
from petriflow.spec.model import Workflow

__all__ = ["Load", "simulate"]

_INF = float("inf")


class _Engine(Arrivals, Resources):
    """Holds the run's mutable state; every handler is a method with its tables in attributes.

    Arrivals, ends and stuck cases come from :class:`~petriflow.simulate.arrivals.Arrivals`;
    resource queues and rate limits from :class:`~petriflow.simulate.resources.Resources`.
    """

    def __init__(self, tab: Tables, load: Load, cases: int, seed: int) -> None:
        self.tab = tab
        self.pre_flow, self.pre_res = tab.pre_flow, tab.pre_res
        self.post_plain, self.post_res, self.post_timed = tab.post_plain, tab.post_res, tab.post_timed
        self.post_sink, self.candidates, self.steps = tab.post_sink, tab.candidates, tab.steps
        self.is_spawn = [t in tab.spawn_group for t in range(len(tab.pre_flow))]
        self.tspec = list(zip(tab.pre_flow, tab.pre_res, tab.post_res, tab.post_plain, tab.post_timed,
                              tab.post_sink, tab.candidates))
        self.ospec = list(zip(tab.pre_flow, tab.pre_res, self.is_spawn))
        self._init_resources(tab)
        self.now = 0.0
        self.firings = 0
        self._init_arrivals(load, cases, seed)
        self.records: list[tuple[int, float, float, float, int]] = []
        # (number, Retry-After) of the failed attempts whose s.fail is firing, read by back_off; a stack, as a fail's
        # released units may start (and instantly fail) other calls before its own back-off is scheduled
        self.failed_attempts: list[tuple[int, float, float | None]] = []
        self.instant: deque[tuple[Case, int, int, Any]] = deque()  # instant steps to complete (see drain)
        self.draining = False
        self.push = self._push_heap
        self.fast = True
        self.heap: list[tuple[Any, ...]] = []
        self.seq = count()

    # -- clocks ----------------------------------------------------------------------------
    def _push_heap(self, delay: float, kind: int, c: Case | None, a: int, b: int, f: Any) -> None:
        if c is not None:
            c.pending += 1
        heappush(self.heap, (self.now + delay, next(self.seq), kind, c, a, b, f))

    def run_fast(self) -> None:
        self._start_load()
        heap, dispatch, complete, fire, steps = self.heap, self.dispatch, self.complete, self.fire, self.steps
        suspects, settle = self.suspects, self.settle
        while heap:
            now, _, kind, c, a, b, f = heappop(heap)
            self.now = now
            if kind == COMPLETE:
                c.pending -= 1
                st = steps[a]
                if st.plain and not f and not c.dead:  # the common case, inline: a step simply finishes
                    fire(c, st.finish, b)
                else:
                    complete(c, a, b, f)
                if not c.pending:
                    settle(c)
            else:
                dispatch(kind, c, a, b, f)
            if suspects:
                self.settle_suspects()

    def run_simpy(self) -> None:
        import simpy

        env = simpy.Environment()

        def push(delay: float, kind: int, c: Case | None, a: int, b: int, f: Any) -> None:
            def fire(_event: object) -> None:
                self.now = env.now
                self.dispatch(kind, c, a, b, f)
                if self.suspects:
                    self.settle_suspects()
            if c is not None:
                c.pending += 1
            env.timeout(delay).callbacks.append(fire)

        self.push = push
        self.fast = False
        self._start_load()
        env.run()

    def dispatch(self, kind: int, c: Case | None, a: int, b: int, f: Any) -> None:
        if kind == COMPLETE:
            c.pending -= 1  # type: ignore[union-attr]
            self.complete(c, a, b, f)  # type: ignore[arg-type]
            if not c.pending:  # type: ignore[union-attr]
                self.settle(c)  # type: ignore[arg-type]
        elif kind == ARRIVE:
            self.arrive()
        elif kind == SETTLE:  # f is (step, reserved, used); a is the transition that admitted the call
            self.settle_tokens(a, f)
        else:  # BACKOFF_DONE; f is (step, next attempt)
            c.pending -= 1  # type: ignore[union-attr]
            if c.dead:  # type: ignore[union-attr]
                return
            s, attempt, began = f
            if c.retrying is None:  # type: ignore[union-attr]
                c.retrying = {}  # type: ignore[union-attr]
            c.retrying.setdefault(s, deque()).append((attempt, began))  # type: ignore[union-attr]
            c.m[a] += 1  # type: ignore[union-attr]
            for u in self.steps[s].backoff_candidates:
                self.offer(c, u, b)  # type: ignore[arg-type]
            if not c.pending:  # type: ignore[union-attr]
                self.settle(c)  # type: ignore[arg-type]

    # -- the token game -------------------------------------------------------------------------
    def fire(self, c: Case, t: int, mask: int) -> None:
        """Fire ``t`` for case ``c``: move tokens, then offer what they enable, then start timed tokens."""
        pre, res, released, plain, timed, sink, cands = self.tspec[t]
        m = c.m
        for p, w in pre:
            m[p] -= w
        self.firings += 1
        if res or released:  # busy time is the sum of (release - take) times: no per-change bookkeeping
            now, free, busy = self.now, self.free, self.busy_area
            for r, w in res:
                free[r] -= w
                busy[r] -= now * w
            for r, w in released:
                free[r] += w
                busy[r] += now * w
        for p, w in plain:
            m[p] += w
        if sink and c.failed:
            self.fail_at_sink(c)
        elif sink:
            c.done = True
            self.records.append((c.idx, c.t0, self.now - c.t0, c.cost, mask))
            self._ended()
        else:
            ospec = self.ospec
            for u in cands:
                for p, w in ospec[u][0]:  # most candidates (a join's other inputs) are not enabled yet
                    if m[p] < w:
                        break
                else:
                    self.offer(c, u, mask)
        if released:
            queue = self.queue
            for r, _ in released:
                if queue[r]:
                    self.serve(r)
        for kind, s, p in timed:
            if kind == RUNNING:
                if t == self.steps[s].retry and c.retrying and c.retrying.get(s):
                    self.run_step(c, s, mask, *c.retrying[s].popleft())
                else:
                    self.run_step(c, s, mask)
            else:
                self.back_off(c, s, p, mask)

    def enabled(self, c: Case, t: int) -> bool:
        m = c.m
        for p, w in self.pre_flow[t]:
            if m[p] < w:
                return False
        return True

    def offer(self, c: Case, t: int, mask: int) -> None:
        """Fire ``t`` as often as its flow inputs allow and its resources admit it."""
        m = c.m
        pre, res, spawn = self.ospec[t]
        while True:
            for p, w in pre:
                if m[p] < w:
                    return
            if spawn:
                group = self.tab.spawn_group[t]
                self.fire(c, group[next(self.steps[self.tab.spawn_step[t]].items) - 1], mask)  # type: ignore[arg-type]
                continue
            if res:
                for r, w in res:
                    if self.free[r] < w or self.queue[r]:
                        self.enqueue(r, (c, t, mask))
                        return
                if self.any_limited[t]:
                    self.reserve_rate(t)
            self.fire(c, t, mask)

    def run_step(self, c: Case, s: int, mask: int, attempt: int = 1, began: float | None = None) -> None:
        """A token entered ``s.running`` for its ``attempt``-th attempt: latency, outcome and cost are drawn now.

        The completion event carries ``fail``: 0 if the attempt succeeds, else
        ``(attempt, kind, retry_after)``, the attempt's number and its error
        kind, which decide whether the token may retry, and the server's
        ``Retry-After`` (drawn for a retryable failure, else 0), which the
        back-off may not undercut. A timeout lasts the timeout.
        """
        st = self.steps[s]
        d = next(st.latency)
        fail: Any = 0
        timeout = st.timeout
        if st.step_timeout is not None:  # the step's clock runs from its first attempt's start, rate wait passed
            if began is None:
                began = self.now + self.rate_wait
            left = attempt_timeout(None if timeout == _INF else timeout, step_timeout=st.step_timeout,
                                   elapsed=self.now + self.rate_wait - began)
            timeout = max(left, 0.0) if left is not None else _INF
        if timeout <= 0.0:  # the step's time ran out before this attempt: a timeout without a call, as executed
            d, fail = 0.0, (attempt, "timeout", 0.0, began)
        elif d > timeout:
            d, fail = timeout, (attempt, "timeout", 0.0, began)
        elif st.failing is not None:
            kind = next(st.failing)
            if kind is not None:
                fail = (attempt, kind, next(st.retry_after) if kind == "retryable" and st.retry_after else 0.0,
                        began)
                if kind == "timeout" and timeout < _INF:
                    d = timeout
        # drawn for every attempt (so the streams stay aligned), billed only when it succeeds: the executor
        # charges what the endpoint's usage reports, and a 500, 429, 400 or timeout reports none
        spent = self.precost if self.precost is not None else next(st.cost)
        self.precost = None
        if not fail:
            c.cost += spent
        if self.rate_wait:  # waiting for a rate-limit permit, holding the units
            d += self.rate_wait
            self.rate_wait = 0.0
        if self.reserved is not None:  # a token-limited call: settled when it returns, if it succeeds
            reserved, used, t = self.reserved
            self.reserved = None
            if not fail:
                self.push(d, SETTLE, None, t, 0, (st.name, reserved, used))
        if d > 0.0:
            c.pending += 1
            if self.fast:
                heappush(self.heap, (self.now + d, next(self.seq), COMPLETE, c, s, mask | st.bit, fail))
            else:
                c.pending -= 1  # push counts it
                self.push(d, COMPLETE, c, s, mask | st.bit, fail)
        else:  # an instant step (a join, a python glue step) completes without an event
            self.instant.append((c, s, mask | st.bit, fail))
            if not self.draining:
                self.drain()

    def drain(self) -> None:
        """Complete the instant steps in the order they started, here and not inside the firing that started them.

        Completing one inside :meth:`run_step` would fire its successor, which
        starts the next instant step, and so on: a chain of a few hundred
        instant steps would overflow Python's stack. The outermost
        :meth:`run_step` completes them one after the other instead, so the
        depth stays that of one step whatever the chain's length.
        """
        self.draining = True
        instant, complete = self.instant, self.complete
        try:
            while instant:
                complete(*instant.popleft())
        finally:
            self.draining = False

    def back_off(self, c: Case, s: int, p: int, mask: int) -> None:
        """Wait what the executor sleeps after the k-th failed attempt of this call (:func:`~petriflow.rules.backoff_delay`).

        Never less than the ``Retry-After`` drawn with the failure (the profile's
        ``retry_after``), as the executor never waits less than the server asked.
        """
        st = self.steps[s]
        k, retry_after, began = self.failed_attempts.pop()
        delay = backoff_delay(k, backoff=st.backoff, backoff_max=st.backoff_max, jitter=st.jitter,
                              uniform=next(st.uniform) if st.jitter else 0.0,  # type: ignore[arg-type]
                              retry_after=retry_after or None)
        self.push(delay, BACKOFF_DONE, c, p, mask, (s, k + 1, began))

    def complete(self, c: Case, s: int, mask: int, fail: Any) -> None:
        """The attempt in ``s.running`` ended (``fail``: 0, or ``(attempt, kind)``): consume the token.

        A failed attempt goes where :func:`~petriflow.rules.after_failure`
        sends it, with the executor's bounds: this call's own attempts
        (``attempt < max_attempts``, per map item and loop pass), the net's
        pooled budget ``s.retries``, and its kind (fatal never retries).
        """
        st = self.steps[s]
        if c.dead:
            self.release(st.release)
        elif fail:
            attempt, kind, retry_after, began = fail
            verdict = after_failure(kind, attempt=attempt, max_attempts=st.max_attempts,
                                    retries_left=c.m[st.retries] if st.fail >= 0 else 0,
                                    has_fallback=st.give_up >= 0, step_timeout=st.step_timeout,
                                    elapsed=self.now - began if began is not None else 0.0)
            if verdict is Verdict.RETRY:
                self.failed_attempts.append((attempt, retry_after, began))
                self.fire(c, st.fail, mask)
            elif verdict is Verdict.FALLBACK:
                self.fire(c, st.give_up, mask)
            elif st.fail_out >= 0:
                c.failed = True
                self.fire(c, st.fail_out, mask)
            else:
                self.kill(c, st)
        elif (st.loop >= 0 and (c.m[st.loop_budget] > 0 or st.exhausted >= 0)
              and next(st.looping if st.looping_given is None
                       else _given(st.looping_given, mask, st.looping))):  # type: ignore[arg-type]
            # another pass wanted: go round while the budget lasts, else the loop's `exhausted` branch
            self.fire(c, st.loop if c.m[st.loop_budget] > 0 else st.exhausted, mask)
        elif st.routes:
            k = next(st.branch if st.branch_given is None else _given(st.branch_given, mask, st.branch))  # type: ignore[arg-type]
            # a branch some condition names marks the mask, replacing this router's earlier branch
            self.fire(c, st.routes[k], mask if st.route_bits is None else mask & st.route_keep | st.route_bits[k])
        else:
            self.fire(c, st.finish, mask)


def simulate(
    workflow: Workflow,
    profile: Profile | None = None,
    *,
    cases: int = 1000,
    load: Load | None = None,
    seed: int = 0,
    warmup: float = 0.1,
    batches: int = 20,
    backend: str = "fast",
    net: WorkflowNet | None = None,
    allow_unsound: bool = False,
) -> SimResult:
    """Simulate ``cases`` requests of ``workflow`` under ``load`` and summarise them.

    ``profile`` defaults to the workflow's own annotations. The first
    ``warmup`` share of cases (by arrival) is left out of the summaries.
    ``backend`` is ``"fast"`` (own event heap) or ``"simpy"`` (SimPy's
    kernel); both give the same numbers. ``net`` may pass the already
    lowered net of ``workflow``.

    A net that can deadlock is refused with the checker's witness
    (:class:`~petriflow.errors.UnsoundWorkflowError`, see
    :mod:`petriflow.simulate.guard`): its stranded cases would silently drop
    out of the figures. ``allow_unsound=True`` runs it anyway, stranded
    cases counted in ``unfinished``. Model steps that cost $0 for want of
    an annotation are named in ``SimResult.unpriced``.
    """
    cases = check_cases(cases, fail=failing(ProfileError, "--cases"))
    if not 0 <= warmup < 1:
        raise ProfileError(f"warm-up must be a share in [0, 1), got {warmup}", where="warmup")
    if backend not in ("fast", "simpy"):
        raise ProfileError(f"unknown backend {backend!r}", hint="use 'fast' or 'simpy'")
    load = load or Load.closed(1)
    if load.kind == "replay":
        cases = min(cases, len(load.times))  # replay runs the recorded arrivals, no more
    profile = profile if profile is not None else Profile.from_workflow(workflow)
    net = net if net is not None else lower(workflow)
    if not allow_unsound:
        refuse_deadlock(net)
    tab = compile_tables(net, workflow, profile, seed=seed)
    eng = _Engine(tab, load, cases, seed)
    began = _time.perf_counter()
    eng.run_fast() if backend == "fast" else eng.run_simpy()
    wall = _time.perf_counter() - began
    eng.finish_accounts()
    return replace(_result(eng, tab, cases, warmup, batches, wall, seed),
                   unpriced=MappingProxyType(unpriced_steps(workflow, profile)))


def _result(eng: _Engine, tab: Tables, cases: int, warmup: float, batches: int, wall: float, seed: int) -> SimResult:
    recs = sorted(eng.records)
    cut = int(warmup * cases)
    kept = [r for r in recs if r[0] >= cut]
    lat = np.array([r[2] for r in kept])
    cost = np.array([r[3] for r in kept])
    end = eng.now
    since = kept[0][1] if kept else 0.0  # the first measured arrival: completions after it count
    done_after = sum(1 for r in recs if r[1] + r[2] >= since)
    span = end - since
    masks = Counter(r[4] for r in kept)
    crit = {}
    for st in tab.steps:
        n = sum(k for mask, k in masks.items() if mask & st.bit)
        crit[st.name] = n / len(kept) if kept else 0.0
    util = {name: eng.busy_area[r] / (tab.capacity[r] * end) if end > 0 else 0.0
            for r, name in enumerate(tab.resources)}
    qlen = {name: eng.queue_area[r] / end if end > 0 else 0.0 for r, name in enumerate(tab.resources)}
    return SimResult(
        cases=len(recs), measured=len(kept), failed=eng.failed,
        latency=summarize(lat, batches=batches), cost=summarize(cost, batches=batches),
        throughput=done_after / span if span > 0 else float("nan"),
        utilization=MappingProxyType(util), queue_length=MappingProxyType(qlen),
        critical_path=MappingProxyType(crit), firings=eng.firings, sim_time=end, wall_seconds=wall,
        latencies=lat, costs=cost, seed=seed, unfinished=eng.arrived - len(recs) - eng.failed,
        failed_costs=np.array([spent for i, spent in sorted(eng.failed_records) if i >= cut]),
    )
