"""A batch on Ray (``petriflow run --inputs FILE --backend ray``): cases spread over workers, one store for all.

The driver owns the run (its lease, as a local batch's driver does), records
it and its cases in the store, then hands cases to ``--workers`` Ray actors.
Each worker runs its cases on the one asyncio executor inside it, up to
``--concurrency`` at once, each under the *case's* lease
(:meth:`~petriflow.execute.executor.Executor.run_leased_case`) and from the
case's checkpoints, so a case a dead worker left is taken over by another
once that lease lapses and no saved step is called again. The store must be
one every worker reaches: PostgreSQL (``--db postgresql://...``) across
machines, an SQLite file on one.

Shared resources and rate limits are held by one :class:`Limiter` actor:
every worker takes a step's units and rate permits there and gives them
back there, so a resource's capacity and its requests and tokens per minute
hold across all workers, as they do within one local executor. The limiter
counts the units by worker, so a dead worker's units are given back when the
driver replaces it.

Ray is connected to, and a local instance started and stopped, by the one
rule of :mod:`petriflow.raycluster` (which also says why Ray is best run in
a network namespace with only loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from petriflow.errors import ExecutionError, InputError
from petriflow.execute.executor import Executor, RunResult
from petriflow.execute.plan import Dag, plan
from petriflow.execute.store import open_store
from petriflow.raycluster import connected
from petriflow.rules import Bucket

__all__ = ["Limiter", "run_on_ray"]


class Limiter:
    """The one owner of every resource's units and rate buckets for all workers (a Ray actor).

    The same rule as one executor's :class:`~petriflow.execute.policies.StepPolicies`:
    units first, then a wait for the rate permits; the wait is returned and
    slept by the worker.
    """

    def __init__(self, resources: Mapping[str, Mapping[str, Any]]) -> None:
        import time

        self._clock = time.monotonic
        now = self._clock()
        self._units = {rid: asyncio.Semaphore(int(r["capacity"])) for rid, r in resources.items()}
        self._requests = {rid: Bucket.for_requests(r["rpm"], capacity=int(r["capacity"]), now=now)
                          for rid, r in resources.items() if r.get("rpm")}
        self._tokens = {rid: Bucket.for_tokens(r["tpm"], now=now) for rid, r in resources.items() if r.get("tpm")}
        self._held: dict[str, dict[str, int]] = {}

    async def acquire(self, holder: str, uses: tuple[tuple[str, int], ...], estimate: int) -> float:
        taken: list[str] = []
        try:
            for rid, n in uses:
                for _ in range(n):
                    await self._units[rid].acquire()
                    taken.append(rid)
        except asyncio.CancelledError:
            for rid in taken:
                self._units[rid].release()
            raise
        mine = self._held.setdefault(holder, {})
        for rid in taken:
            mine[rid] = mine.get(rid, 0) + 1
        wait, now = 0.0, self._clock()
        for rid, _ in uses:
            if rid in self._requests:
                wait = max(wait, self._requests[rid].reserve(now, 1))
            if rid in self._tokens:
                wait = max(wait, self._tokens[rid].reserve(now, estimate))
        return wait

    def settle(self, uses: tuple[tuple[str, int], ...], tokens: int) -> None:
        now = self._clock()
        for rid, _ in uses:
            if rid in self._tokens:
                self._tokens[rid].reserve(now, tokens)

    def release(self, holder: str, uses: tuple[tuple[str, int], ...]) -> None:
        mine = self._held.get(holder, {})
        for rid, n in uses:
            for _ in range(n):
                if mine.get(rid, 0) > 0:
                    mine[rid] -= 1
                    self._units[rid].release()

    def forget(self, holder: str) -> None:
        """Give back every unit a dead worker held."""
        for rid, n in self._held.pop(holder, {}).items():
            for _ in range(n):
                self._units[rid].release()

    def in_use(self) -> dict[str, int]:
        """Units taken now, per resource (for tests and progress)."""
        return {rid: sum(h.get(rid, 0) for h in self._held.values()) for rid in self._units}


class _Shared:
    """A worker's side of the limiter: what :class:`~petriflow.execute.policies.SharedLimits` asks."""

    def __init__(self, limiter: Any, holder: str) -> None:
        self.limiter, self.holder = limiter, holder
        self._returning: set[asyncio.Future[None]] = set()

    async def _give_back(self, ref: Any, uses: tuple[tuple[str, int], ...]) -> None:
        try:
            await ref
        except Exception:  # the limiter is gone: nothing is held there
            return
        self.limiter.release.remote(self.holder, uses)

    async def acquire(self, uses: tuple[tuple[str, int], ...], estimate: int) -> None:
        ref = self.limiter.acquire.remote(self.holder, uses, estimate)
        try:
            wait = await ref
        except asyncio.CancelledError:  # the limiter may still grant them: give them back once it has
            task = asyncio.ensure_future(self._give_back(ref, uses))
            self._returning.add(task)
            task.add_done_callback(self._returning.discard)
            raise
        if wait > 0:
            await asyncio.sleep(wait)

    def settle(self, uses: tuple[tuple[str, int], ...], tokens: int) -> None:
        self.limiter.settle.remote(uses, tokens)

    def release(self, uses: tuple[tuple[str, int], ...]) -> None:
        self.limiter.release.remote(self.holder, uses)


class CaseWorker:
    """One Ray worker: an executor on the run's store, running the cases it is given (a Ray actor)."""

    def __init__(self, workflow: str, db: str, run_id: str, budget: float | None, limiter: Any,
                 holder: str) -> None:
        from petriflow.spec import load

        self.run_id = run_id
        self.executor = Executor(plan(load(workflow)), store=open_store(db), budget=budget)
        if limiter is not None:
            self.executor.policies.shared = _Shared(limiter, holder)
        self.executor.kinds.prepare()

    def pid(self) -> int:
        return os.getpid()

    async def run_case(self, case: int, value: Any) -> RunResult | None:
        """The case's result, or None when another live worker holds its lease (the driver offers it again)."""
        try:
            return await self.executor.run_leased_case(self.run_id, case, value)
        except InputError:
            return None


def _resources(dag: Dag) -> dict[str, dict[str, Any]]:
    return {rid: {"capacity": r.capacity, "rpm": r.requests_per_minute, "tpm": r.tokens_per_minute}
            for rid, r in dag.resources.items()}


async def run_on_ray(executor: Executor, workflow: str, db: str, run_id: str, todo: list[tuple[int, Any]], *,
                     workers: int, concurrency: int, budget: float | None = None, address: str | None = None,
                     progress: Callable[[RunResult], None] | None = None,
                     on_worker: Callable[[int, int], None] | None = None) -> list[RunResult]:
    """Run ``todo`` (case, input) of ``run_id`` on Ray workers; the caller holds the run's lease.

    A worker that dies is replaced, its units in the limiter given back, and
    its cases offered again (they go on from their checkpoints once their
    lease is taken over). ``on_worker(slot, pid)`` is told each worker's process.
    """
    with contextlib.redirect_stdout(sys.stderr):  # Ray prints worker deaths to stdout, which is the results'
        return await _run(executor, workflow, db, run_id, todo, workers=workers, concurrency=concurrency,
                          budget=budget, address=address, progress=progress, on_worker=on_worker)


async def _run(executor: Executor, workflow: str, db: str, run_id: str, todo: list[tuple[int, Any]], *,
               workers: int, concurrency: int, budget: float | None, address: str | None,
               progress: Callable[[RunResult], None] | None,
               on_worker: Callable[[int, int], None] | None) -> list[RunResult]:
    with connected(address, num_cpus=max(workers, os.cpu_count() or 1)) as ray:
        try:
            limiter = (ray.remote(Limiter).options(max_concurrency=100_000).remote(_resources(executor.dag))
                       if executor.dag.resources else None)
            actor = ray.remote(CaseWorker).options(num_cpus=1, max_concurrency=max(1, concurrency))
            slots: dict[int, tuple[Any, str]] = {}

            def spawn(slot: int) -> None:
                holder = f"w{slot}-{uuid.uuid4().hex[:6]}"
                slots[slot] = (actor.remote(workflow, db, run_id, budget, limiter, holder), holder)
                if on_worker is not None:
                    on_worker(slot, ray.get(slots[slot][0].pid.remote()))

            for slot in range(workers):
                spawn(slot)
            queue: deque[tuple[int, Any]] = deque(todo)
            running: dict[asyncio.Future[Any], tuple[int, str, int, Any]] = {}
            load = dict.fromkeys(slots, 0)
            results: dict[int, RunResult] = {}

            def feed() -> None:
                for slot in sorted(slots, key=lambda s: load[s]):
                    while queue and load[slot] < concurrency:
                        case, value = queue.popleft()
                        fut = asyncio.wrap_future(slots[slot][0].run_case.remote(case, value).future())
                        running[fut] = (slot, slots[slot][1], case, value)
                        load[slot] += 1

            feed()
            while running:
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for fut in done:
                    slot, holder, case, value = running.pop(fut)
                    try:
                        result = fut.result()
                    except ray.exceptions.RayActorError:
                        result = None
                        if slots[slot][1] == holder:  # the first of its cases to report the death: replace it
                            if limiter is not None:
                                limiter.forget.remote(holder)
                            spawn(slot)
                            load[slot] = sum(1 for s, h, _, _ in running.values() if s == slot and h != holder)
                    if slots[slot][1] == holder:
                        load[slot] -= 1
                    if result is None:  # another worker holds it, or its worker died: offer it again
                        queue.append((case, value))
                        await asyncio.sleep(0.05)
                        continue
                    results[case] = result
                    if progress is not None:
                        progress(result)
                feed()
            return [results[c] for c, _ in todo]
        except ray.exceptions.RayError as exc:
            raise ExecutionError(f"the Ray batch failed: {exc}", hint="--resume the run; nothing saved is redone") from None

