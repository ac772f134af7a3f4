"""A batch on Ray (``petriflow run --inputs FILE --backend ray``): cases spread over workers, one store for all.

The driver owns the run (its lease, as a local batch's driver does), records
it and its cases in the store, then hands cases to ``--workers`` Ray actors,
a chunk of them per call (a round trip per case was most of what a Ray batch
cost over a local one).
Each worker runs its cases on the one asyncio executor inside it, up to
``--concurrency`` at once, each under the *case's* lease
(:meth:`~petriflow.execute.executor.Executor.run_leased_case`) and from the
case's checkpoints, so a case a dead worker left is taken over by another
once that lease lapses and no saved step is called again. The store must be
one every worker reaches: PostgreSQL (``--db postgresql://...``) across
machines, an SQLite file on one.

Shared resources and rate limits are held by one
:class:`~petriflow.execute.limiter.Limiter` actor, so a resource's capacity
and its requests and tokens per minute hold across all workers, as they do
within one local executor; each worker keeps the units its calls give back,
up to its share, rather than asking for every call
(:class:`~petriflow.execute.limiter.WorkerLimits`). The limiter counts the
units by worker, so a dead worker's units are given back when the driver
replaces it.

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
from petriflow.execute.limiter import Limiter, WorkerLimits
from petriflow.execute.plan import Dag, plan
from petriflow.execute.store import open_store
from petriflow.raycluster import connected

__all__ = ["run_on_ray"]


class CaseWorker:
    """One Ray worker: an executor on the run's store, running the cases it is given (a Ray actor)."""

    def __init__(self, workflow: str, db: str, run_id: str, budget: float | None, limiter: Any,
                 holder: str, keep: Mapping[str, int]) -> None:
        from petriflow.spec import load

        self.run_id = run_id
        self.executor = Executor(plan(load(workflow)), store=open_store(db), budget=budget)
        if limiter is not None:
            rated = frozenset(rid for rid, r in self.executor.dag.resources.items()
                              if r.requests_per_minute or r.tokens_per_minute)
            self.executor.policies.shared = WorkerLimits(limiter, holder, keep=keep, rated=rated)
        self.executor.kinds.prepare()

    def pid(self) -> int:
        return os.getpid()

    async def run_case(self, case: int, value: Any) -> RunResult | None:
        """The case's result, or None when another live worker holds its lease (the driver offers it again)."""
        try:
            return await self.executor.run_leased_case(self.run_id, case, value)
        except InputError:
            return None

    async def run_cases(self, batch: list[tuple[int, Any]]) -> list[RunResult | None]:
        """Several cases at once, in one call: one round trip to the driver for a chunk, not for each case."""
        return list(await asyncio.gather(*(self.run_case(case, value) for case, value in batch)))


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
            keep = {rid: max(1, r.capacity // workers) for rid, r in executor.dag.resources.items()}  # a fair share
            actor = ray.remote(CaseWorker).options(num_cpus=1, max_concurrency=max(1, concurrency))
            slots: dict[int, tuple[Any, str]] = {}

            def spawn(slot: int) -> None:
                holder = f"w{slot}-{uuid.uuid4().hex[:6]}"
                slots[slot] = (actor.remote(workflow, db, run_id, budget, limiter, holder, keep), holder)
                if on_worker is not None:
                    on_worker(slot, ray.get(slots[slot][0].pid.remote()))

            for slot in range(workers):
                spawn(slot)
            queue: deque[tuple[int, Any]] = deque(todo)
            running: dict[asyncio.Future[Any], tuple[int, str, list[tuple[int, Any]]]] = {}
            load = dict.fromkeys(slots, 0)  # cases in flight per worker
            results: dict[int, RunResult] = {}
            chunk = -(-max(1, concurrency) // 8)  # cases per call: an eighth of the worker's concurrency

            def feed() -> None:
                for slot in sorted(slots, key=lambda s: load[s]):
                    while queue and load[slot] < concurrency:
                        batch = [queue.popleft() for _ in range(min(chunk, concurrency - load[slot], len(queue)))]
                        fut = asyncio.wrap_future(slots[slot][0].run_cases.remote(batch).future())
                        running[fut] = (slot, slots[slot][1], batch)
                        load[slot] += len(batch)

            feed()
            while running:
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for fut in done:
                    slot, holder, batch = running.pop(fut)
                    try:
                        got = fut.result()
                    except ray.exceptions.RayActorError:
                        got = [None] * len(batch)
                        if slots[slot][1] == holder:  # the first of its calls to report the death: replace it
                            if limiter is not None:
                                limiter.forget.remote(holder)
                            spawn(slot)
                            load[slot] = sum(len(b) for s, h, b in running.values() if s == slot and h != holder)
                    if slots[slot][1] == holder:
                        load[slot] -= len(batch)
                    for (case, value), result in zip(batch, got, strict=True):
                        if result is None:  # another worker holds it, or its worker died: offer it again
                            queue.append((case, value))
                            continue
                        results[case] = result
                        if progress is not None:
                            progress(result)
                    if None in got:
                        await asyncio.sleep(0.05)
                feed()
            return [results[c] for c, _ in todo]
        except ray.exceptions.RayError as exc:
            raise ExecutionError(f"the Ray batch failed: {exc}", hint="--resume the run; nothing saved is redone") from None

