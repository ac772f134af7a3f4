"""Step policies: what happens inside one step task, between "start" and "done".

The executor's case loop (:mod:`petriflow.execute.executor`) only plays the
token game; everything that decides *how* one step execution is carried out
lives here, so it can be read (and changed) without the loop around it:

* resources are ``asyncio.Semaphore`` s shared by every case (capacity exactly
  as declared), acquired in sorted order so no two steps wait on each other;
* ``requests_per_minute`` is a token bucket (:class:`_Bucket`) and
  ``tokens_per_minute`` a token budget paid with actual usage
  (:class:`_TokenBudget`);
* each attempt has a timeout (the step's, capped by what is left of its
  ``step_timeout``), and a call whose worst-case cost would pass the case's
  budget is not made;
* a retryable failure (:class:`~petriflow.execute.client.RetryableCallError`,
  a timeout) backs off exponentially with jitter and never sooner than the
  server's ``Retry-After``, while the net's retry budget lasts; a fatal one
  gives up at once, and giving up hands over to the fallback step;
* a step execution already in the checkpoint store is reused, not run again.

:class:`StepPolicies` is a mixin of :class:`~petriflow.execute.executor.Executor`:
the methods keep the executor's attributes (``dag``, ``kinds``, ``trace``,
``budget``, ``sleep``, ``rng``, ``_limits``) and its case state.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from petriflow.errors import BudgetExceeded, PetriflowError, RetryableCallError, StepFailed
from petriflow.execute.plan import Dag, Outcome, StepPlan
from petriflow.execute.store import Checkpoint
from petriflow.execute.tools import KindRunner, StepCall
from petriflow.execute.trace import TraceWriter
from petriflow.trace import TraceRecord

if TYPE_CHECKING:
    from petriflow.execute.executor import _Case

__all__ = ["StepPolicies"]


@dataclass
class _Done:
    """What a step task tells its case loop: which step ran (the step or its fallback) and its output."""

    step: str
    ran: str
    key: str
    output: Any = None
    error: BaseException | None = None
    attempt: TraceRecord | None = None
    reused: Checkpoint | None = None
    outcome: Outcome | None = None  # a map's collect transition
    holds: bool = False  # the step that ran still holds its resources (released once its finish fires)


class _Bucket:
    """A token bucket: ``rpm`` requests per minute with a burst of ``burst``."""

    def __init__(self, rpm: float, burst: int) -> None:
        self.interval, self.burst, self.tokens, self.t = 60.0 / rpm, float(burst), float(burst), time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.t) / self.interval)
            self.t = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) * self.interval)


class _TokenBudget:
    """``tpm`` tokens per minute: a call waits while the budget is in debt and pays its actual tokens after."""

    def __init__(self, tpm: float) -> None:
        self.rate, self.cap, self.level, self.t = tpm / 60.0, float(tpm), float(tpm), time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.cap, self.level + (now - self.t) * self.rate)
        self.t = now

    async def wait(self) -> None:
        self._refill()
        while self.level <= 0:
            await asyncio.sleep(-self.level / self.rate + 1e-3)
            self._refill()

    def spend(self, tokens: int) -> None:
        self._refill()
        self.level -= tokens


class StepPolicies:
    """The policies of one step execution, mixed into the executor (see the module docstring)."""

    dag: Dag
    kinds: KindRunner
    trace: TraceWriter
    budget: float | None
    sleep: Callable[[float], Awaitable[None]]
    rng: random.Random
    _limits: dict[str, tuple[asyncio.Semaphore, _Bucket | None, _TokenBudget | None]]
    _loop: asyncio.AbstractEventLoop | None

    # -- shared resources ---------------------------------------------------------
    def _bind(self) -> None:
        """Semaphores and buckets belong to one event loop: make them for the running one."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._limits = {
                rid: (asyncio.Semaphore(r.capacity),
                      _Bucket(r.requests_per_minute, r.capacity) if r.requests_per_minute else None,
                      _TokenBudget(r.tokens_per_minute) if r.tokens_per_minute else None)
                for rid, r in self.dag.resources.items()
            }

    async def _acquire(self, sp: StepPlan) -> None:
        held: list[asyncio.Semaphore] = []
        try:
            for rid, n in sp.uses:  # sorted order: no two steps wait on each other
                sem = self._limits[rid][0]
                for _ in range(n):
                    await sem.acquire()
                    held.append(sem)
            for rid, _ in sp.uses:
                _, bucket, tokens = self._limits[rid]
                if bucket is not None:
                    await bucket.take()
                if tokens is not None:
                    await tokens.wait()
        except asyncio.CancelledError:
            for sem in held:
                sem.release()
            raise

    def _release(self, sp: StepPlan) -> None:
        for rid, n in sp.uses:
            for _ in range(n):
                self._limits[rid][0].release()
    # -- one step execution: reuse, attempts, fallback ------------------------------
    async def _execute(self, c: _Case, sp: StepPlan, start: str, key: str, item: Any = None,
                       first: tuple[Any, ...] | None = None) -> _Done:
        """Run a step (one map item when ``item`` is given) with its policies, or reuse its checkpoint."""
        cp = c.memo.get(key)
        if cp is not None:
            c.reused += 1
            c.cost += cp.cost  # spent before the crash: still counts against the budget
            c.events.append(start)
            if cp.step != sp.id and sp.fallback == cp.step and sp.give_up:
                fb = self.dag.steps[cp.step]
                c.events += [sp.give_up, fb.entries[0].transition]
            return _Done(sp.id, cp.step, key, cp.output, reused=cp)
        try:
            out, rec = await self._attempts(c, sp, start, key, item, first)
            return _Done(sp.id, sp.id, key, out, attempt=rec, holds=True)
        except _GiveUp as gu:
            if sp.fallback is None or sp.give_up is None:
                err = StepFailed(f"failed after {gu.attempts} attempt(s): {_message(gu.cause)}",
                                 where=f"step '{sp.id}'", hint="add retries or a fallback step")
                err.held = sp.id  # released by the case loop once every other step is stopped
                raise err from gu.cause
            c.events.append(sp.give_up)
            self._release(sp)
            fb = self.dag.steps[sp.fallback]
            done = await self._execute(c, fb, fb.entries[0].transition, f"{key}>{fb.id}", item)
            return _Done(sp.id, fb.id, key, done.output, attempt=done.attempt, holds=done.holds)

    async def _attempts(self, c: _Case, sp: StepPlan, start: str, key: str, item: Any,
                        first: tuple[Any, ...] | None = None) -> tuple[Any, TraceRecord]:
        """Attempts with timeouts, back-off and the retry budget; ``first`` is an attempt already made inline."""
        step, policy = sp.step, sp.step.retry
        step_deadline = step.config.get("step_timeout")
        t_begin = time.monotonic()
        call = StepCall(c.run_id, c.index, key, c.vars, c.outputs, item)
        attempt = 0
        while True:
            attempt += 1
            res = None
            outcome = "ok"
            cause: BaseException | None = None
            if attempt == 1 and first is not None:
                outcome, cause, t0, t1 = first
            else:
                await self._acquire(sp)
                c.events.append(start if attempt == 1 else sp.retry or start)
                t0 = time.time()
                outcome, cause, res = await self._attempt(c, sp, call, step_deadline, t_begin)
                t1 = time.time()
            if res is not None:
                for rid, _ in sp.uses:
                    budget = self._limits[rid][2]
                    if budget is not None:
                        budget.spend(res.input_tokens + res.output_tokens)
                c.cost += res.cost
                c.input_tokens += res.input_tokens
                c.output_tokens += res.output_tokens
            model = res.model if res is not None else self.kinds.model_name(sp)
            rec = TraceRecord(c.run_id, c.index, sp.id, t0, t1, attempt, outcome, model,
                              res.input_tokens if res else 0, res.output_tokens if res else 0,
                              res.cost if res else 0.0, None)
            if outcome == "ok":
                assert res is not None
                return res.output, rec
            retryable = outcome == "timeout" or _retryable(cause)
            if retryable and attempt < policy.max_attempts and sp.fail is not None and sp.retry_budget and \
                    c.marking[sp.retry_budget] > 0 and \
                    (step_deadline is None or time.monotonic() - t_begin < float(step_deadline)):
                c.marking[sp.retry_budget] -= 1  # the net's retry counter: shared by loop passes and map items
                self.trace.write(rec)
                c.events.append(sp.fail)
                self._release(sp)
                await self.sleep(self._backoff(sp, attempt, cause))
                continue
            last = "fallback" if sp.fallback is not None else outcome
            self.trace.write(TraceRecord(**{**rec.to_json(), "outcome": last}))
            raise _GiveUp(attempt, cause)

    async def _attempt(self, c: _Case, sp: StepPlan, call: StepCall, step_deadline: Any,
                       t_begin: float) -> tuple[str, BaseException | None, Any]:
        """One attempt under its timeout: ``(outcome, cause, result)``; resources are already held."""
        timeout = sp.step.timeout
        try:
            if step_deadline is not None:
                left = float(step_deadline) - (time.monotonic() - t_begin)
                timeout = left if timeout is None else min(timeout, left)
            if timeout is not None and timeout <= 0:
                raise TimeoutError("the step's time ran out")
            return "ok", None, await self._call(c, sp, call, timeout)
        except TimeoutError as exc:
            return "timeout", exc, None
        except (asyncio.CancelledError, BudgetExceeded):
            self._release(sp)
            raise
        except Exception as exc:
            return "error", exc, None

    async def _call(self, c: _Case, sp: StepPlan, call: StepCall, timeout: float | None) -> Any:
        if self.budget is not None:
            worst = self.kinds.worst_cost(sp, call)
            if worst and c.cost + worst > self.budget:
                raise BudgetExceeded(f"the next call could cost ${worst:.6f}; ${c.cost:.6f} of ${self.budget:.6f} "
                                     "is spent", where=f"step '{sp.id}'", hint="raise --budget")
        if timeout is None:
            return await self.kinds.run(sp, call, None)
        async with asyncio.timeout(timeout):
            return await self.kinds.run(sp, call, timeout)

    def _backoff(self, sp: StepPlan, attempt: int, cause: BaseException | None) -> float:
        r = sp.step.retry
        delay = min(r.backoff_max, r.backoff * 2 ** (attempt - 1))
        if r.jitter:
            delay *= 0.5 + 0.5 * self.rng.random()
        after = getattr(cause, "retry_after", None)
        return max(delay, float(after)) if after else delay


class _GiveUp(Exception):
    """A step's attempts are over; :meth:`StepPolicies._execute` hands over to the fallback or fails the step."""

    def __init__(self, attempts: int, cause: BaseException | None) -> None:
        super().__init__(str(cause))
        self.attempts, self.cause = attempts, cause


def _retryable(exc: BaseException | None) -> bool:
    return isinstance(exc, RetryableCallError)


def _message(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, PetriflowError) else f"{type(exc).__name__}: {text}"
