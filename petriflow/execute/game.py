"""One case's token game: the loop that commits step outputs and fires the transitions they choose.

Each case is one coroutine with one small loop (:meth:`CaseGame._run_case`):
step tasks report to the case's queue when they finish; the loop commits the
output to the checkpoint store, fires the finish transition the output chose
(a route label, a loop back, a plain finish) on the case's control places, and
starts at once every step whose start transition that enabled. There are no
supersteps: a step starts the moment its inputs are ready. Only this loop
changes a case's marking, so no locks are needed. A map step's items run as
one task each, under the same policies.

:class:`~petriflow.execute.executor.Executor` is a :class:`CaseGame`: it adds
what spans cases (runs, resumes and reruns in the store, leases, the
concurrency of many cases); what happens inside one step execution is its
:class:`~petriflow.execute.policies.StepPolicies`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from petriflow.errors import ExecutionError, PetriflowError, StepFailed
from petriflow.execute.case import Case, Done, message
from petriflow.execute.plan import Dag, Entry, Outcome, StepPlan
from petriflow.execute.policies import StepPolicies
from petriflow.execute.routing import choose_branch, loops_again
from petriflow.execute.store import Checkpoint, MemoryStore
from petriflow.execute.tools import KindRunner, StepCall
from petriflow.execute.trace import TraceWriter
from petriflow.trace import TraceRecord

__all__ = ["CaseGame", "RunResult"]


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


class CaseGame:
    """The case loop of the executor (see the module docstring); the executor supplies what it reads."""

    dag: Dag
    store: MemoryStore
    trace: TraceWriter
    kinds: KindRunner
    policies: StepPolicies
    _terminal: tuple[str, ...]
    _inline: set[str]

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
