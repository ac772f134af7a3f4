"""The executor: one asyncio core that plays the verified net's token game with real work.

Each case is one coroutine running the case loop of :class:`~petriflow.execute.game.CaseGame`
(commit a finished step, fire the transition its output chose, start what
that enabled); this module adds what spans cases: a run's record in the
checkpoint store (its identity, so a run id is never reused for other inputs),
resumes and reruns from checkpoints, the run's lease (one driver per run), and
how many cases run at once.

Inside a step task live the policies (:mod:`petriflow.execute.policies`, a
:class:`~petriflow.execute.policies.StepPolicies` the executor owns): shared
resources and rate limits, timeouts, retries with back-off, the budget check,
the fallback, and reuse of checkpointed steps, each decided by the step rules
of :mod:`petriflow.rules` that the simulator obeys too. A case's state
(:class:`~petriflow.execute.case.Case`) is the one thing both touch.
Every attempt is a :class:`~petriflow.trace.TraceRecord`, and every
transition the run fires is appended to ``RunResult.events``, which is a
firing sequence of ``dag.net`` (the tests replay it).

:func:`run_sync` is the synchronous wrapper: ``asyncio.run`` over the same core.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Self

from petriflow.errors import ExecutionError, InputError, StepFailed
from petriflow.execute.game import CaseGame, RunResult
from petriflow.execute.identity import (
    Identity,
    human_passes,
    recorded_path,
    step_of_key,
    still_valid,
    workflow_identity,
)
from petriflow.execute.ownership import Leases
from petriflow.execute.plan import Dag
from petriflow.execute.policies import StepPolicies
from petriflow.execute.store import MemoryStore
from petriflow.execute.tools import DEFAULT_TOOLS, KindRunner, ToolRegistry
from petriflow.execute.trace import TraceWriter, record_of

__all__ = ["Executor", "RunResult", "StepFailed", "new_run_id", "run_sync"]


class Executor(CaseGame):
    """Runs cases of one planned workflow; resources and rate limits are shared by all of them.

    ``budget`` is dollars per case: a model call whose worst-case cost would
    take the case past it is not made, and the case stops with
    :class:`~petriflow.errors.BudgetExceeded`. ``sleep`` waits out back-off
    and rate limits, and ``clock`` is the monotonic time their rules are
    given: tests pass a recorder, or a virtual clock and a sleep that
    advances it.
    """

    def __init__(self, dag: Dag, *, client: Any = None, store: MemoryStore | None = None,
                 trace: TraceWriter | None = None, budget: float | None = None,
                 tools: ToolRegistry | None = None, endpoints: Mapping[str, Any] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic, seed: int | None = None) -> None:
        self.dag = dag
        self.store = store if store is not None else MemoryStore()
        self.trace = trace if trace is not None else TraceWriter()
        if self.store.durable:  # every record is committed before it reaches the file: file and store agree
            self.trace.sink = self.store.add_trace
        self.kinds = KindRunner(dag, client=client, tools=tools or DEFAULT_TOOLS, store=self.store,
                                endpoints=endpoints)
        self.policies = StepPolicies(dag, self.kinds, self.trace, budget=budget, sleep=sleep, clock=clock,
                                     rng=random.Random(seed))
        self.leases = Leases(self.store)  # one driver per run: a second is refused, a crashed one's taken over
        self._own_client = client is None
        self._terminal = dag.workflow.terminal_steps()
        self._inline = {sid for sid, sp in dag.steps.items() if self.kinds.inline_ok(sp)}

    async def aclose(self) -> None:
        """Close the model client this executor made (a client passed in is the caller's to close)."""
        if self._own_client and self.kinds._client is not None:
            await self.kinds._client.aclose()
            self.kinds._client = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- public API ---------------------------------------------------------------
    async def run(self, value: Any, *, run_id: str | None = None, case: int = 0) -> RunResult:
        """Run one case; ``value`` is the input text or a mapping of template variables."""
        run_id = run_id or new_run_id()
        async with self.leases.hold(run_id):
            existed = self.store.get_run(run_id) is not None
            if not existed:
                self.store.create_run(run_id, workflow=recorded_path(self.dag.workflow.source or self.dag.name))
            self.store.add_case(run_id, case, value)
            return await self._run_case(run_id, case, value, existed)

    def answer(self, run_id: str, step: str, text: str, *, case: int | None = None, npass: int | None = 1) -> None:
        """Answer a waiting human step (of one case, or of every case of the run) for one loop pass.

        ``npass=None`` answers every pass; the default is the first (a step outside loops has no other).
        """
        self.store.answer(run_id, step, text, case=case, npass=npass)

    async def run_many(self, values: Iterable[Any], *, run_id: str | None = None, concurrency: int = 16,
                       progress: Callable[[RunResult], None] | None = None,
                       options: Mapping[str, Any] | None = None) -> list[RunResult]:
        """Run many cases, at most ``concurrency`` at once; failures are results, never exceptions."""
        run_id = run_id or new_run_id()
        values = list(values)
        async with self.leases.hold(run_id):
            if not self.open_run(run_id, values, options):  # the same run again is its resume
                return await self._resume(run_id, concurrency, progress)
            return await self._many(run_id, list(enumerate(values)), concurrency, progress, resume=False)

    def open_run(self, run_id: str, values: list[Any], options: Mapping[str, Any] | None = None) -> bool:
        """Record a new run of ``values`` (True), or find it there already made of the same (False).

        A run id taken by other inputs or another workflow is refused (exit 2):
        reusing it would mix two runs. The caller holds the run's lease.
        """
        identity = workflow_identity(self.dag.workflow, values)
        row = self.store.get_run(run_id)
        if row is not None:
            self._same_run(run_id, Identity.from_json(row.options.get("identity")), identity)
            return False
        opts = {**(options or {}), "identity": identity.to_json(), "human": human_passes(self.dag.workflow)}
        name = recorded_path(str(opts.get("workflow") or self.dag.workflow.source or self.dag.name))
        if "workflow" in opts:
            opts["workflow"] = name
        self.store.create_run(run_id, workflow=name, options=opts)
        self.store.add_cases(run_id, values)
        return True

    @staticmethod
    def _same_run(run_id: str, old: Identity | None, new: Identity) -> None:
        """Refuse (exit 2) to reuse ``run_id`` for other inputs or another workflow than it was made with."""
        what = ("a run made before runs recorded their inputs" if old is None else
                "other inputs" if old.inputs != new.inputs else
                "another workflow" if old.workflow != new.workflow else None)
        if what is not None:
            raise InputError(f"run id '{run_id}' is taken by {what}" if old is None else
                             f"run id '{run_id}' was used with {what}; reusing it would pair inputs with "
                             "outputs they did not produce",
                             hint="leave out --run-id for a fresh one, or --resume the run as it was made")

    async def resume(self, run_id: str, *, concurrency: int = 16,
                     progress: Callable[[RunResult], None] | None = None) -> list[RunResult]:
        """Finish a run from its checkpoints: no completed step execution is repeated."""
        if self.store.get_run(run_id) is None:
            raise ExecutionError(f"no run '{run_id}' in the checkpoint store", hint="pass the --db the run used")
        async with self.leases.hold(run_id):
            self.check_unchanged(run_id)
            return await self._resume(run_id, concurrency, progress)

    def check_unchanged(self, run_id: str) -> None:
        """Refuse (exit 2) to resume ``run_id`` when its workflow changed since it was made."""
        row = self.store.get_run(run_id)
        if row is None:
            raise ExecutionError(f"no run '{run_id}' in the checkpoint store", hint="pass the --db the run used")
        old = Identity.from_json(row.options.get("identity"))
        if old is not None:
            new = workflow_identity(self.dag.workflow, [])
            changed = sorted(s for s, d in new.steps.items() if old.steps.get(s) != d)
            changed += sorted(set(old.steps) - set(new.steps))
            if changed:
                raise InputError(f"the workflow of run '{run_id}' changed since it was made "
                                 f"(steps {', '.join(repr(s) for s in changed)}); resuming it would mix "
                                 "outputs of both versions",
                                 hint="pass --from-saved to start a new run from the saved outputs "
                                      "that still apply")

    async def run_leased_case(self, run_id: str, case: int, value: Any) -> RunResult:
        """Run one case of a batch another process drives, from its checkpoints, under the case's own lease.

        A worker of a distributed batch owns the case, not the run: while it
        renews the lease no other worker runs the case; when it dies the lease
        is taken over and the case goes on from its saved steps. A case whose
        lease a live worker holds is refused with :class:`InputError`.
        """
        async with self.leases.hold(f"{run_id}#{case}"):
            return await self._run_case(run_id, case, value, resume=True)

    async def rerun(self, run_id: str, *, as_run_id: str | None = None, concurrency: int = 16,
                    progress: Callable[[RunResult], None] | None = None) -> tuple[str, list[RunResult]]:
        """A new run of ``run_id``'s cases on this (changed) workflow, reusing the saved outputs that still apply.

        A saved output applies when neither its step nor any step it depends on
        changed (:func:`~petriflow.execute.identity.still_valid`); everything else
        runs again. The old run is left as it was. Returns the new run id and its results.
        """
        row = self.store.get_run(run_id)
        if row is None:
            raise InputError(f"no run '{run_id}' in the checkpoint store", hint="pass the --db the run used")
        rows = self.store.cases(run_id)
        new = workflow_identity(self.dag.workflow, [r.input for r in rows])
        old = Identity.from_json(row.options.get("identity"))
        keep = still_valid(self.dag.workflow, old, new) if old is not None else frozenset()
        rid = as_run_id or new_run_id()
        async with self.leases.hold(rid):
            if self.store.get_run(rid) is not None:
                raise InputError(f"run id '{rid}' is taken", hint="leave out --run-id for a fresh one")
            self.store.create_run(rid, workflow=row.workflow,
                                  options={**row.options, "identity": new.to_json(), "from": run_id})
            for r in rows:
                self.store.add_case(rid, r.case, r.input)
                for key, cp in self.store.load_steps(run_id, r.case).items():
                    if step_of_key(key) in keep:
                        self.store.save_step(rid, r.case, key, cp)
            return rid, await self._resume(rid, concurrency, progress)

    async def _resume(self, run_id: str, concurrency: int,
                      progress: Callable[[RunResult], None] | None) -> list[RunResult]:
        rows = self.store.cases(run_id)
        todo = [(r.case, r.input) for r in rows if r.status != "ok"]
        done = self.finished(run_id)
        for r in done.values():
            if progress:
                progress(r)
        out = await self._many(run_id, todo, concurrency, progress, resume=True)
        merged = {**done, **{r.case: r for r in out}}
        return [merged[k] for k in sorted(merged)]

    def finished(self, run_id: str) -> dict[int, RunResult]:
        """The run's finished cases as results, their cost counted from the committed trace records.

        Brings the trace file and totals up to the whole run first (the records a crash kept from the file).
        """
        rows = self.store.cases(run_id)
        lines = self.store.trace_lines(run_id)
        self.trace.catch_up(lines)  # the records a crash kept from the file, and the totals of the whole run
        spent: dict[int | str, list[int | float]] = {}
        for rec in map(record_of, lines):
            tot = spent.setdefault(rec.case, [0.0, 0, 0])
            tot[0] += rec.cost
            tot[1] += rec.input_tokens
            tot[2] += rec.output_tokens
        return {r.case: RunResult(run_id, r.case, True, r.output, {}, None, (), *_spent(spent, r.case), 0.0)
                for r in rows if r.status == "ok"}

    async def _many(self, run_id: str, todo: list[tuple[int, Any]], concurrency: int,
                    progress: Callable[[RunResult], None] | None, *, resume: bool) -> list[RunResult]:
        gate = asyncio.Semaphore(max(1, concurrency)) if concurrency < len(todo) else None

        async def one(i: int, v: Any) -> RunResult:
            if gate is None:
                r = await self._run_case(run_id, i, v, resume)
            else:
                async with gate:
                    r = await self._run_case(run_id, i, v, resume)
            if progress:
                progress(r)
            return r

        results = await asyncio.gather(*(one(i, v) for i, v in todo))
        ok = all(r.ok for r in results)
        self.store.set_run_status(run_id, "ok" if ok else "failed")
        self.trace.flush()
        return list(results)

def _spent(spent: Mapping[int | str, list[int | float]], case: int) -> tuple[float, int, int]:
    """A finished case's cost and tokens, as its committed trace records say."""
    cost, tin, tout = spent.get(case, (0.0, 0, 0))
    return float(cost), int(tin), int(tout)


def new_run_id() -> str:
    """A short, sortable, unique run id: ``20261125T2330-1a2b3c``."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def run_sync(dag: Dag, value: Any, **options: Any) -> RunResult:
    """Run one case synchronously (``asyncio.run`` over :meth:`Executor.run`); options go to :class:`Executor`."""
    run_id = options.pop("run_id", None)

    async def main() -> RunResult:
        async with Executor(dag, **options) as ex:
            return await ex.run(value, run_id=run_id)

    return asyncio.run(main())
