"""The executor: one asyncio core that plays the verified net's token game with real work.

Each case is one coroutine with one small loop (:meth:`Executor._case`):
step tasks report to the case's queue when they finish; the loop commits the
output to the checkpoint store, fires the finish transition the output chose
(a route label, a loop back, a plain finish) on the case's control places, and
starts at once every step whose start transition that enabled. There are no
supersteps: a step starts the moment its inputs are ready. Only this loop
changes a case's marking, so no locks are needed.

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
import dataclasses
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from petriflow.errors import ExecutionError, InputError, PetriflowError, StepFailed
from petriflow.execute.case import Case, Done, message
from petriflow.execute.identity import Identity, human_passes, step_of_key, still_valid, workflow_identity
from petriflow.execute.ownership import Leases
from petriflow.execute.plan import Dag, Entry, Outcome, StepPlan
from petriflow.execute.policies import StepPolicies
from petriflow.execute.routing import choose_branch, loops_again
from petriflow.execute.store import Checkpoint, MemoryStore
from petriflow.execute.tools import (
    DEFAULT_TOOLS,
    KindRunner,
    StepCall,
    ToolRegistry,
)
from petriflow.execute.trace import TraceWriter, record_of
from petriflow.trace import TraceRecord

__all__ = ["Executor", "RunResult", "StepFailed", "new_run_id", "run_sync"]


@dataclass(frozen=True)
class RunResult:
    """One case of a run: its output (the terminal steps'), every step output, and what it cost."""

    run_id: str
    case: int
    ok: bool
    output: Any
    outputs: Mapping[str, Any]
    error: str | None
    events: tuple[str, ...]
    cost: float
    input_tokens: int
    output_tokens: int
    seconds: float
    reused: int = 0  # step executions taken from the checkpoint store instead of run again
    exit_code: int = 0


class Executor:
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
                self.store.create_run(run_id, workflow=self.dag.workflow.source or self.dag.name)
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
        self.store.create_run(run_id, workflow=str(opts.get("workflow") or self.dag.workflow.source or
                                                   self.dag.name), options=opts)
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

    # -- one case: the loop ---------------------------------------------------------
    async def _run_case(self, run_id: str, index: int, value: Any, resume: bool = False) -> RunResult:
        self.policies.bind()
        t0 = time.perf_counter()
        vars_ = dict(value) if isinstance(value, Mapping) else {"question": value, "input": value}
        memo = self.store.load_steps(run_id, index) if resume else {}
        c = Case(run_id, index, vars_, dict(self.dag.tracked), memo)
        error: BaseException | None = None
        try:
            self._fire(c, self.dag.begin)
            while True:
                while c.ready:
                    sp, start, key = c.ready.popleft()
                    inline = self._run_inline(c, sp, start, key)
                    if inline is not None:
                        self._complete(c, inline)
                if c.deferred:
                    if not c.pending and len(c.deferred) == 1:  # the case's only step: await it, no task
                        sp, start, key = c.deferred.pop()
                        self._complete(c, await self.policies.execute(c, sp, start, key))
                        continue
                    for sp, start, key in c.deferred:
                        self._spawn(c, self._step(c, sp, start, key))
                    c.deferred.clear()
                if not c.pending:
                    break
                done = await c.queue.get()
                c.pending -= 1
                if done.error is not None:
                    raise done.error
                self._complete(c, done)
        except asyncio.CancelledError:
            await self._cancel(c)
            raise
        except Exception as exc:
            error = exc
            await self._cancel(c)
            held = getattr(exc, "held", None)
            if held is not None:
                self.policies.release(self.dag.steps[held])
        end = self.dag.end
        sink = self.dag.net.sink
        if error is None and c.failure is not None and c.marking.get(sink, 0):
            output, ok, code = None, False, 1  # a failure path reached the sink: the case failed, handled
            msg = f"{message(c.failure)}; its on_failure step ran"
            self.store.finish_case(run_id, index, status="failed", output=None, error=msg)
        elif error is None and all(c.marking.get(p, 0) >= w for p, w in end.consumes):
            c.events.append(end.transition)
            terminal = self._terminal
            output = c.outputs.get(terminal[0]) if len(terminal) == 1 else {s: c.outputs.get(s) for s in terminal}
            self.store.finish_case(run_id, index, status="ok", output=output, error=None)
            ok, msg, code = True, None, 0
        else:
            if error is None:
                error = ExecutionError("the run stopped before the workflow finished", where=f"case {index}")
            output, ok, msg = None, False, message(error)
            code = error.exit_code if isinstance(error, PetriflowError) else 1
            self.store.finish_case(run_id, index, status="failed", output=None, error=msg)
        self.trace.flush()  # a case's records reach the file when it ends (a crash loses no finished case's)
        return RunResult(run_id, index, ok, output, dict(c.outputs), msg, tuple(c.events), c.cost,
                         c.input_tokens, c.output_tokens, time.perf_counter() - t0, c.reused, code)

    async def _cancel(self, c: Case) -> None:
        for t in list(c.tasks):
            t.cancel()
        if c.tasks:
            await asyncio.gather(*c.tasks, return_exceptions=True)
        c.tasks.clear()
        while not c.queue.empty():  # finished steps whose finish never fired still hold resources
            d = c.queue.get_nowait()
            if d.holds:
                self.policies.release(self.dag.steps[d.ran])

    def _fire(self, c: Case, outcome: Outcome) -> None:
        """Fire a finish-like transition on the case's control places and start what it enables."""
        m = c.marking
        for p, w in outcome.consumes:
            m[p] -= w
        c.events.append(outcome.transition)
        steps = self.dag.steps
        for p, w in outcome.produces:
            if p in m:
                m[p] += w
            for sid in self.dag.watchers.get(p, ()):
                sp = steps[sid]
                for entry in sp.entries:
                    if all(m[q] >= k for q, k in entry.consumes):
                        for q, k in entry.consumes:
                            m[q] -= k
                        self._launch(c, sp, entry)
                        break

    def _launch(self, c: Case, sp: StepPlan, entry: Entry) -> None:
        occ = c.occurrences[sp.id] = c.occurrences.get(sp.id, 0) + 1
        key = f"{sp.id}#{occ}"
        if sp.id in self._inline and key not in c.memo:
            c.ready.append((sp, entry.transition, key))  # run by the case loop itself: no task, no mailbox
        elif sp.map is not None:
            self._spawn(c, self._map(c, sp, entry, key))
        else:
            c.deferred.append((sp, entry.transition, key))

    def _spawn(self, c: Case, coro: Any) -> None:
        task = asyncio.create_task(coro)
        c.pending += 1
        c.tasks.add(task)
        task.add_done_callback(c.tasks.discard)

    def _run_inline(self, c: Case, sp: StepPlan, start: str, key: str) -> Done | None:
        """First attempt of a plain synchronous Python step, in the loop; a failure continues in a task."""
        c.events.append(start)
        t0 = time.time()
        try:
            call = StepCall(c.run_id, c.index, key, c.vars, sp.view(c.outputs), loop_pass=c.loop_pass(sp.id),
                            previous=c.previous, failure=c.failure_info())
            res = self.kinds.run_python_sync(sp, call)
        except Exception as exc:
            first = (exc, t0, time.time())
            self._spawn(c, self._step(c, sp, start, key, first))
            return None
        c.cost += res.cost  # its `cost:` annotation, if any (rules.billed)
        rec = TraceRecord(c.run_id, c.index, sp.id, t0, time.time(), 1, "ok", None, 0, 0, res.cost, None,
                          loop_pass=call.loop_pass)
        return Done(sp.id, sp.id, key, res.output, attempt=rec)

    def _complete(self, c: Case, d: Done) -> None:
        """Commit a finished step, then fire the transition its output chose."""
        sp = self.dag.steps[d.ran]
        if d.failed is not None:  # failed for good: the step that ran last hands over to the on_failure handler
            assert sp.fail_out is not None
            c.failure, c.failed_step = d.failed, d.step
            self._fire(c, sp.fail_out)
            return
        if d.reused is not None:
            label = d.reused.label
        elif d.outcome is not None:
            label = ""
        else:
            try:
                label = self._decide(c, self.dag.steps[d.step], d.output)
                cost = d.attempt.cost if d.attempt is not None else 0.0
                if d.attempt is not None:
                    d.attempt = dataclasses.replace(d.attempt, outcome="ok", branch=label or None)
                self.store.save_step(c.run_id, c.index, d.key, Checkpoint(d.ran, label, d.output, cost),
                                     trace=d.attempt)
            except ExecutionError:  # the call worked but its output names no branch or is not JSON: it failed
                if d.attempt is not None:
                    self.trace.write(dataclasses.replace(d.attempt, outcome="error", error="fatal"))
                if d.holds:
                    self.policies.release(sp)
                raise
        c.outputs.pop(d.step, None)  # re-inserted: the outputs stay in finish order (see StepPlan.view)
        c.outputs.pop(d.ran, None)
        c.outputs[d.step] = c.outputs[d.ran] = d.output
        if d.attempt is not None:
            self.trace.write(d.attempt, stored=True)  # committed with the checkpoint above
        if label == "loop":  # the pass is over: its outputs are what the next pass reads as `previous`
            c.previous.update({v: c.outputs[v] for v in self.dag.steps[d.step].loop_body if v in c.outputs})
        self._fire(c, d.outcome if d.outcome is not None else sp.outcome(label))
        if d.holds:
            self.policies.release(sp)

    def _decide(self, c: Case, sp: StepPlan, output: Any) -> str:
        """The outcome label the output chooses: ``loop`` (while the budget lasts), a route label, or ``""``.

        An output that asks for another pass once the budget is spent takes
        the loop's ``exhausted`` branch (the loader makes a step that loops
        and routes name one), or finishes plainly when the step does not route.
        """
        step = sp.step
        npass = c.loop_pass(sp.id)
        if step.loop is not None and loops_again(step, output, case=c.vars, loop_pass=npass):
            loop = sp.outcome("loop")
            if all(c.marking[p] >= w for p, w in loop.consumes):
                return "loop"
            return step.loop.exhausted or ""
        if not sp.labels:
            return ""
        label = choose_branch(step, output, case=c.vars, loop_pass=npass)
        if label is None:
            words = [b.match for b in step.route]
            raise StepFailed(f"output {str(output)[:80]!r} names none of the branches {words}",
                             where=f"step '{sp.id}'", hint="make the step's output one of the route labels")
        return label

    # -- one step: a task that reports to the case loop --------------------------------
    async def _step(self, c: Case, sp: StepPlan, start: str, key: str,
                    first: tuple[BaseException, float, float] | None = None) -> None:
        try:
            done = await self.policies.execute(c, sp, start, key, first=first)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            done = Done(sp.id, sp.id, key, error=exc)
        c.queue.put_nowait(done)

    # -- a map step -------------------------------------------------------------------
    async def _map(self, c: Case, sp: StepPlan, entry: Entry, key: str) -> None:
        assert sp.map is not None
        try:
            items = c.outputs.get(sp.map.over)
            if not isinstance(items, list) or not 1 <= len(items) <= sp.map.max:
                n = len(items) if isinstance(items, list) else None
                raise StepFailed(
                    f"maps over '{sp.map.over}', whose output has {n if n is not None else 'no list of'} items; "
                    f"between 1 and {sp.map.max} are allowed", where=f"step '{sp.id}'",
                    hint=f"raise map.max or make '{sp.map.over}' return a shorter, non-empty list")
            spawn = next(e for e in sp.entries if e.items == len(items) and e.loop_from == entry.loop_from)
            c.events.append(spawn.transition)

            async def one(i: int, item: Any) -> Any:
                d = await self.policies.execute(c, sp, sp.map.item_start, f"{key}/{i}", item,  # type: ignore[union-attr]
                                                index=i)
                if d.reused is None:
                    cost = d.attempt.cost if d.attempt is not None else 0.0
                    try:
                        self.store.save_step(c.run_id, c.index, f"{key}/{i}", Checkpoint(d.ran, "", d.output, cost),
                                             trace=d.attempt)
                    except ExecutionError:  # an output JSON would change: the item failed
                        if d.attempt is not None:
                            self.trace.write(dataclasses.replace(d.attempt, outcome="error", error="fatal"))
                        if d.holds:
                            self.policies.release(self.dag.steps[d.ran])
                        raise
                if d.attempt is not None:
                    self.trace.write(d.attempt, stored=d.reused is None)
                fin = sp.map.item_finish if d.ran == sp.id else self.dag.steps[d.ran].outcomes[0].transition  # type: ignore[union-attr]
                c.events.append(fin)
                if d.holds:
                    self.policies.release(self.dag.steps[d.ran])
                return d.output

            outs = list(await asyncio.gather(*(one(i, x) for i, x in enumerate(items))))
            done = Done(sp.id, sp.id, key, outs, outcome=sp.map.collect[len(items)])
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            done = Done(sp.id, sp.id, key, error=exc)
        c.queue.put_nowait(done)


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
