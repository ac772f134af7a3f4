"""Step policies: what happens inside one step task, between "start" and "done".

The executor's case loop (:mod:`petriflow.execute.executor`) only plays the
token game; how one step execution is carried out lives here, so it can be
read (and changed) without the loop around it. The decisions themselves are
the step rules of :mod:`petriflow.rules`, which the simulator obeys too;
this module applies them with the executor's clock and sleep:

* resources are :class:`~petriflow.execute.units.Units` shared by every case
  (capacity exactly as declared); a step takes its units of one resource all
  at once, as the net's start transition does, and its resources in sorted
  order, so no two steps wait on each other;
* ``requests_per_minute`` and ``tokens_per_minute`` are
  :class:`~petriflow.rules.Bucket` s: a call holding its units reserves one
  request and an estimate of its tokens (what the step's last call used),
  sleeps until both are there, and once its usage is known the token bucket
  is charged the difference;
* each attempt has a timeout (:func:`~petriflow.rules.attempt_timeout`), and
  a call whose worst-case cost would pass the case's budget is not made
  (:func:`~petriflow.rules.within_budget`);
* a failed attempt is classified (:func:`~petriflow.rules.error_kind`, written
  to the trace) and :func:`~petriflow.rules.after_failure` says what follows:
  a retry after :func:`~petriflow.rules.backoff_delay` (never sooner than the
  server's ``Retry-After``) while the net's retry budget lasts, else the
  fallback step, else the step fails;
* a step execution already in the checkpoint store is reused, not run again.

:class:`StepPolicies` is owned by the :class:`~petriflow.execute.executor.Executor`
and is given everything it uses when it is made.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol

from petriflow.errors import BudgetExceeded, InputError, RetryableCallError, StepFailed
from petriflow.execute.case import Case, Done, message
from petriflow.execute.plan import Dag, StepPlan
from petriflow.execute.store import Queued
from petriflow.execute.tools import KindRunner, StepCall
from petriflow.execute.trace import TraceWriter
from petriflow.execute.units import Units
from petriflow.rules import (
    Bucket,
    ErrorKind,
    TokenLedger,
    Verdict,
    after_failure,
    attempt_timeout,
    backoff_delay,
    error_kind,
    within_budget,
)
from petriflow.trace import TraceRecord

__all__ = ["Limits", "StepPolicies"]

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


class Limits(NamedTuple):
    """One resource on one event loop: its units, and its request and token buckets if it has limits."""

    units: Units
    requests: Bucket | None
    tokens: Bucket | None


class SharedLimits(Protocol):
    """Resources held across processes by one owner (a Ray actor): what :class:`StepPolicies` delegates to."""

    async def acquire(self, uses: tuple[tuple[str, int], ...], estimate: int) -> None: ...
    def settle(self, uses: tuple[tuple[str, int], ...], tokens: int) -> None: ...
    def release(self, uses: tuple[tuple[str, int], ...]) -> None: ...


class StepPolicies:
    """The policies of one step execution (see the module docstring).

    ``clock`` is the monotonic time the rules are given (buckets, the
    ``step_timeout``); ``sleep`` waits out what they ask for (back-off and
    rate limits). A test passes a virtual pair to run minutes of rate limit
    in no time.
    """

    def __init__(self, dag: Dag, kinds: KindRunner, trace: TraceWriter, *, budget: float | None,
                 sleep: Sleep = asyncio.sleep, clock: Clock = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.dag, self.kinds, self.trace, self.budget = dag, kinds, trace, budget
        self.sleep, self.clock = sleep, clock
        self.rng = rng if rng is not None else random.Random()
        self.limits: dict[str, Limits] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ledger = TokenLedger()  # what each call reserves of a token bucket, and how it settles
        self.shared: SharedLimits | None = None  # set: units and rates are held there, across workers

    # -- shared resources ---------------------------------------------------------
    def bind(self) -> None:
        """Units belong to one event loop: make the limits for the running one (buckets start full)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            now = self.clock()
            self.limits = {
                rid: Limits(Units(r.capacity),
                            Bucket.for_requests(r.requests_per_minute, capacity=r.capacity, now=now)
                            if r.requests_per_minute else None,
                            Bucket.for_tokens(r.tokens_per_minute, now=now) if r.tokens_per_minute else None)
                for rid, r in self.dag.resources.items()
            }

    async def acquire(self, sp: StepPlan, at: tuple[Case, str] | None = None) -> int:
        """Take the step's units, then its rate permits; returns the tokens reserved (settled after the call).

        ``at`` is the case and execution key of the attempt: while it has to
        wait for a unit or a permit, the store says so (:meth:`~petriflow.execute.store.RunStore.set_queued`).
        """
        if self.shared is not None:
            estimate = self.ledger.estimate(sp.id)
            if sp.uses:
                await self.shared.acquire(sp.uses, estimate)
            return estimate
        held: list[tuple[Units, int]] = []
        queued = False
        try:
            for rid, n in sp.uses:  # sorted order: no two steps wait on each other
                units = self.limits[rid].units
                if units.would_wait(n) and not queued:
                    queued = self._queued(at, sp, rid)
                await units.acquire(n)
                held.append((units, n))
            estimate, wait, now, why = self.ledger.estimate(sp.id), 0.0, self.clock(), ""
            for rid, _ in sp.uses:
                lim = self.limits[rid]
                for bucket, asked in ((lim.requests, 1), (lim.tokens, estimate)):
                    if bucket is not None and (w := bucket.reserve(now, asked)) > wait:
                        wait, why = w, rid
            if wait > 0:
                queued = self._queued(at, sp, why) or queued
                await self.sleep(wait)
            return estimate
        except asyncio.CancelledError:
            for units, n in held:
                units.release(n)
            raise
        finally:
            if queued and at is not None:
                self.kinds.store.clear_queued(at[0].run_id, at[0].index, at[1])

    def _queued(self, at: tuple[Case, str] | None, sp: StepPlan, rid: str) -> bool:
        """Record that the attempt waits for ``rid`` (True), when it is known which attempt it is."""
        if at is None:
            return False
        self.kinds.store.set_queued(Queued(at[0].run_id, at[0].index, at[1], sp.id, rid, time.time()))
        return True

    def settle(self, sp: StepPlan, reserved: int, used: int) -> None:
        """Charge the token buckets what the call used instead of the estimate it reserved (:class:`TokenLedger`)."""
        if self.shared is not None:
            self.ledger.settle(sp.id, [], now=self.clock(), reserved=reserved, used=used)  # remember the usage
            if used != reserved and sp.uses:
                self.shared.settle(sp.uses, used - reserved)
            return
        buckets = [b for b in (self.limits[rid].tokens for rid, _ in sp.uses) if b is not None]
        self.ledger.settle(sp.id, buckets, now=self.clock(), reserved=reserved, used=used)

    def release(self, sp: StepPlan) -> None:
        """Give the step's units back (rate permits are spent: a bucket refills with time, not with releases)."""
        if self.shared is not None:
            if sp.uses:
                self.shared.release(sp.uses)
            return
        for rid, n in sp.uses:
            self.limits[rid].units.release(n)

    # -- one step execution: reuse, attempts, fallback ------------------------------
    async def execute(self, c: Case, sp: StepPlan, start: str, key: str, item: Any = None,
                      first: tuple[BaseException, float, float] | None = None, *, index: int | None = None) -> Done:
        """Run a step (one map item when ``item`` is given) with its policies, or reuse its checkpoint."""
        cp = c.memo.get(key)
        if cp is not None:
            c.reused += 1
            c.cost += cp.cost  # spent before the crash: still counts against the budget
            c.events.append(start)
            if cp.step != sp.id and sp.fallback == cp.step and sp.give_up:
                fb = self.dag.steps[cp.step]
                c.events += [sp.give_up, fb.entries[0].transition]
            return Done(sp.id, cp.step, key, cp.output, reused=cp)
        try:
            out, rec = await self._attempts(c, sp, start, key, item, first, index)
            return Done(sp.id, sp.id, key, out, attempt=rec, holds=True)
        except _GiveUp as gu:
            if gu.verdict is not Verdict.FALLBACK:
                bad_input = isinstance(gu.cause, InputError)  # its own hint says what to fix; a retry would not
                err = StepFailed(f"failed after {gu.attempts} attempt(s): {message(gu.cause)}",
                                 where=f"step '{sp.id}'",
                                 hint="fix that input and run again" if bad_input else "add retries or a fallback step")
                if sp.fail_out is not None:  # the case loop fires the fail-out; the handler runs next
                    self.release(sp)
                    err.__cause__ = gu.cause
                    return Done(sp.id, sp.id, key, failed=err)
                err.held = sp.id  # released by the case loop once every other step is stopped
                raise err from gu.cause
            assert sp.give_up is not None and sp.fallback is not None
            c.events.append(sp.give_up)
            self.release(sp)
            fb = self.dag.steps[sp.fallback]
            done = await self.execute(c, fb, fb.entries[0].transition, f"{key}>{fb.id}", item, index=index)
            return Done(sp.id, done.ran, key, done.output, attempt=done.attempt, holds=done.holds, failed=done.failed)

    async def _attempts(self, c: Case, sp: StepPlan, start: str, key: str, item: Any,
                        first: tuple[BaseException, float, float] | None,
                        index: int | None) -> tuple[Any, TraceRecord]:
        """Attempts with timeouts, back-off and the retry budget; ``first`` is an attempt already made inline."""
        step, policy = sp.step, sp.step.retry
        raw_deadline = step.config.get("step_timeout")
        step_timeout = float(raw_deadline) if raw_deadline is not None else None
        has_fallback = sp.fallback is not None and sp.give_up is not None
        t_begin: float | None = None  # the step_timeout clock: from the first attempt's start (units, rate permits held)
        call = StepCall(c.run_id, c.index, key, c.vars, sp.view(c.outputs), item, index,
                        c.loop_pass(self.dag.workflow.root_of(sp.id)), c.previous, c.failure_info())
        attempt = 0
        while True:
            attempt += 1
            if attempt == 1 and first is not None:
                cause, t0, t1 = first
                t_begin = self.clock()  # an inline first attempt: a step with a step_timeout is never inline
            else:
                reserved = await self.acquire(sp, (c, key))
                if t_begin is None:
                    t_begin = self.clock()
                c.events.append(start if attempt == 1 else sp.retry or start)
                t0 = time.time()
                failed, res = await self._attempt(c, sp, call, step_timeout, t_begin)
                t1 = time.time()
                if failed is None:
                    self.settle(sp, reserved, res.input_tokens + res.output_tokens)
                    c.cost += res.cost
                    c.input_tokens += res.input_tokens
                    c.output_tokens += res.output_tokens
                    return res.output, TraceRecord(c.run_id, c.index, sp.id, t0, t1, attempt, "ok", res.model,
                                                   res.input_tokens, res.output_tokens, res.cost, None,
                                                   item=index, loop_pass=call.loop_pass)
                cause = failed  # a failed attempt keeps its token reservation, as the simulator charges it
            kind = error_kind(cause)
            retry_after: float | None = getattr(cause, "retry_after", None)
            rec = TraceRecord(c.run_id, c.index, sp.id, t0, t1, attempt, _outcome(kind), self.kinds.model_name(sp),
                              0, 0, 0.0, None, kind, item=index, loop_pass=call.loop_pass, retry_after=retry_after)
            retries_left = c.marking[sp.retry_budget] if sp.fail is not None and sp.retry_budget else 0
            verdict = after_failure(kind, attempt=attempt, max_attempts=policy.max_attempts,
                                    retries_left=retries_left, has_fallback=has_fallback,
                                    elapsed=self.clock() - t_begin, step_timeout=step_timeout)
            if verdict is Verdict.RETRY:
                assert sp.retry_budget is not None and sp.fail is not None
                c.marking[sp.retry_budget] -= 1  # the net's retry counter: shared by loop passes and map items
                self.trace.write(rec)
                c.events.append(sp.fail)
                self.release(sp)
                await self.sleep(backoff_delay(attempt, backoff=policy.backoff, backoff_max=policy.backoff_max,
                                               jitter=policy.jitter,
                                               uniform=self.rng.random() if policy.jitter else 0.0,
                                               retry_after=retry_after))
                continue
            if verdict is Verdict.FALLBACK:
                rec = TraceRecord(**{**rec.to_json(), "outcome": "fallback"})
            self.trace.write(rec)
            raise _GiveUp(attempt, cause, verdict)

    async def _attempt(self, c: Case, sp: StepPlan, call: StepCall, step_timeout: float | None,
                       t_begin: float) -> tuple[BaseException | None, Any]:
        """One attempt under its timeout: ``(cause, result)``, one of them None; resources are already held."""
        try:
            timeout = attempt_timeout(sp.step.timeout, step_timeout=step_timeout, elapsed=self.clock() - t_begin)
            if timeout is not None and timeout <= 0:
                raise TimeoutError("the step's time ran out")
            return None, await self._call(c, sp, call, timeout)
        except (asyncio.CancelledError, BudgetExceeded):
            self.release(sp)
            raise
        except Exception as exc:
            return exc, None

    async def _call(self, c: Case, sp: StepPlan, call: StepCall, timeout: float | None) -> Any:
        if self.budget is not None:
            worst = self.kinds.worst_cost(sp, call)
            if not within_budget(spent=c.cost, worst=worst, budget=self.budget):
                raise BudgetExceeded(f"the next call could cost ${worst:.6f}; ${c.cost:.6f} of ${self.budget:.6f} "
                                     "is spent", where=f"step '{sp.id}'", hint="raise --budget")
        if timeout is None:
            return await self.kinds.run(sp, call, None)
        try:
            async with asyncio.timeout(timeout):
                return await self.kinds.run(sp, call, timeout)
        except TimeoutError as exc:  # asyncio's says nothing; say how long it waited
            if str(exc):
                raise
            raise TimeoutError(f"no answer within {timeout:g} s") from None
        except RetryableCallError as exc:
            if exc.kind != "timeout" or exc.status is not None:
                raise
            raise RetryableCallError(f"{exc.message} (no answer within {timeout:g} s)", kind="timeout",
                                     where=exc.where, hint=exc.hint) from None


class _GiveUp(Exception):
    """A step's attempts are over; :meth:`StepPolicies.execute` hands over to the fallback or fails the step."""

    def __init__(self, attempts: int, cause: BaseException, verdict: Verdict) -> None:
        super().__init__(str(cause))
        self.attempts, self.cause, self.verdict = attempts, cause, verdict


def _outcome(kind: ErrorKind) -> str:
    """The trace outcome of a failed attempt of ``kind`` (``fallback`` replaces it on a hand-over)."""
    return "timeout" if kind == "timeout" else "error"
