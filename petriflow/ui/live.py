"""A run's current marking: which steps are running, waiting on a resource or a human, stuck, done.

Read from what the store has while the run goes on: a step with a
checkpoint is done (its label says which route branch it took), a human
step in the ``waiting`` table waits for its reviewer, and a step whose
inputs are done but that has no checkpoint yet is running, unless the
executor recorded that its attempt waits for a resource's unit or rate
permit (:meth:`petriflow.execute.store.RunStore.queued`). A run marked running whose lease has lapsed, or whose driver
is gone, has nobody to move it on: its would-be running steps are stuck.

The counts become a marking of the workflow's net (tokens on each step's
running place, on the links into a step waiting for a resource, on the sink
for finished cases), which :func:`petriflow.viz.draw` draws; steps that need
someone (a reviewer, a restart) are drawn red.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from petriflow.execute.identity import step_of_key
from petriflow.execute.ownership import owner_alive
from petriflow.execute.store import RunRow, SqliteStore
from petriflow.net.petrinet import WorkflowNet
from petriflow.spec.model import Workflow

__all__ = ["STATES", "LiveState", "live_state"]

STATES = ("running", "waiting for a resource", "waiting for a human", "stuck", "done")
"""What a step of a case can be doing, in the order the page lists them."""


@dataclass(frozen=True)
class LiveState:
    """Per step, how many cases are in each of :data:`STATES`; the marking that draws it."""

    run_id: str
    status: str
    driven: bool  # a live driver holds the run's lease
    counts: dict[str, dict[str, int]]  # step -> state -> cases
    finished: int
    cases: int
    marking: dict[str, int] = field(default_factory=dict)
    highlight: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Changes exactly when what the drawing shows changes (the page reloads the picture then)."""
        text = repr((self.status, self.driven, sorted(self.marking.items()), self.highlight))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def title(self) -> str:
        totals: Counter[str] = Counter()
        for per in self.counts.values():
            totals.update(per)
        parts = [f"{totals[s]} {s}" for s in STATES if totals[s] and s != "done"]
        return (f"run {self.run_id}: {self.status}, {self.finished}/{self.cases} case(s) finished"
                + (f"; {', '.join(parts)}" if parts else ""))


def _enabled(wf: Workflow, sid: str, done: dict[str, str]) -> bool:
    """Whether ``sid``'s inputs are done along the branches the done steps chose."""
    def reaches(u: str) -> bool:
        if u not in done:
            return False
        branches = wf.step(u).route
        return not branches or any(b.to == sid and b.when == done[u] for b in branches)

    step = wf.step(sid)
    routers = [r.id for r in wf.steps if any(b.to == sid for b in r.route) and r.id not in step.inputs]
    if step.after and not all(reaches(u) for u in step.after):
        return False
    if step.after_any and not any(reaches(u) for u in step.after_any):
        return False
    if routers and not any(reaches(r) for r in routers):
        return False
    return bool(step.inputs or routers) or (sid not in wf.fallback_owner and sid not in wf.failure_handlers)


def live_state(store: SqliteStore, row: RunRow, wf: Workflow, net: WorkflowNet | None) -> LiveState:
    """The run's marking now (see the module docstring for how each state is read)."""
    lease = store.lease(row.run_id)
    driven = lease is not None and lease[1] > time.time() and owner_alive(lease[0])
    humans = {(w.case, w.step) for w in store.waiting(row.run_id)}
    queued = {(q.case, q.step) for q in store.queued(row.run_id)}
    counts: dict[str, Counter[str]] = {s.id: Counter() for s in wf.steps}
    cases = store.cases(row.run_id)
    finished = 0
    for c in cases:
        done = {}
        for key, cp in sorted(store.load_steps(row.run_id, c.case).items()):
            done[step_of_key(key)] = cp.label
        for sid in done:
            if sid in counts:
                counts[sid]["done"] += 1
        if c.status != "pending":
            finished += 1
            continue
        for s in wf.steps:
            if s.id in done or not _enabled(wf, s.id, done):
                continue
            if (c.case, s.id) in humans:
                state = "waiting for a human"
            elif row.status != "running" or not driven:
                state = "stuck"
            elif (c.case, s.id) in queued:
                state = "waiting for a resource"
            else:
                state = "running"
            counts[s.id][state] += 1
    marking, highlight = _marking(wf, net, counts, finished, len(cases))
    return LiveState(row.run_id, row.status, driven, {k: dict(v) for k, v in counts.items()}, finished, len(cases),
                     marking, highlight)


def _marking(wf: Workflow, net: WorkflowNet | None, counts: dict[str, Counter[str]], finished: int,
             cases: int) -> tuple[dict[str, int], tuple[str, ...]]:
    if net is None or net.wiring is None:
        return {}, ()
    w = net.wiring
    marking: Counter[str] = Counter()
    red: list[str] = []
    for sid, per in counts.items():
        sw: Any = w.steps.get(sid)
        if sw is None:
            continue
        on_running = per["running"] + per["waiting for a human"] + per["stuck"]
        if on_running:
            marking[sw.running] += on_running
        if per["waiting for a human"] or per["stuck"]:
            red.append(sw.running)
        if per["waiting for a resource"]:
            into = [p for p, link in w.links.items() if link.into == sid]
            if into:
                marking[into[0]] += per["waiting for a resource"]
    marking[w.sink] += finished
    if not any(marking.values()) and cases > finished:
        marking[w.source] += cases - finished
    return dict(marking), tuple(sorted(red))
