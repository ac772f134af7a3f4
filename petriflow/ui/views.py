"""What the console's pages show, read from the checkpoint store through its public methods.

Each function answers one page's question (what waits for a reviewer, what a
run did, how the runs compare) and returns plain frozen records; the
templates only lay them out. Every text that came from a run (inputs,
outputs, errors) is passed through :func:`~petriflow.execute.redact.redact`
here, and the templates escape it, so neither a key nor a ``<script>`` in a
model's output reaches a page as anything but text.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from petriflow.execute.identity import step_of_key
from petriflow.execute.redact import redact, redactor
from petriflow.execute.store import RunRow, RunTotals, SqliteStore
from petriflow.execute.trace import record_of
from petriflow.spec.model import Workflow
from petriflow.trace import TraceRecord

__all__ = ["Attempt", "ReviewItem", "RunDetail", "RunSummary", "Workflows", "review_queue", "run_detail",
           "run_summaries", "shown"]


def shown(value: Any, red: Callable[[str], str] = redact) -> str:
    """A stored value as text for a page: strings as they are, anything else as indented JSON, credentials out
    (``red``: a :func:`~petriflow.execute.redact.redactor` made once for the page)."""
    text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str, ensure_ascii=False)
    return red(text)


class Workflows:
    """The workflows runs name, loaded once per file version (a run stores its workflow's path).

    Runs record absolute paths; a relative one (a run made before they did)
    is looked for beside the store, as :func:`~petriflow.execute.identity.workflow_file` says.
    """

    def __init__(self, store: Any = None) -> None:
        self.store = store
        self._cache: dict[str, tuple[float, Workflow | None, str | None]] = {}

    def file(self, stored: str) -> Path | None:
        """The workflow file a run recorded as ``stored``, or None when it is not there."""
        from petriflow.errors import InputError
        from petriflow.execute.identity import workflow_file

        try:
            return workflow_file(stored, self.store)
        except InputError:
            return None

    def get(self, path: str) -> tuple[Workflow | None, str | None]:
        """The workflow at ``path`` and None, or None and why it cannot be read (it moved, it no longer loads)."""
        from petriflow.errors import InputError, PetriflowError
        from petriflow.execute.identity import workflow_file
        from petriflow.spec import load

        try:
            found = workflow_file(path, self.store)
            mtime = found.stat().st_mtime
        except (InputError, OSError) as err:
            return None, str(err)
        hit = self._cache.get(path)
        if hit is not None and hit[0] == mtime:
            return hit[1], hit[2]
        try:
            wf, why = load(found), None
        except PetriflowError as err:
            wf, why = None, redact(str(err))
        self._cache[path] = (mtime, wf, why)
        return wf, why


def _records(store: SqliteStore, run_id: str) -> list[TraceRecord]:
    return [record_of(line) for line in store.trace_lines(run_id)]


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs list: the run and what the store summed for it."""

    run: RunRow
    cases: int
    ok: int
    failed: int
    waiting: int
    attempts: int
    failures: int  # attempts that did not succeed (retried, timed out, handed to a fallback)
    cost: float
    tokens: int
    seconds: float | None  # first attempt's start to the last one's end


def _summary(row: RunRow, t: RunTotals) -> RunSummary:
    span = None if t.first_start is None or t.last_end is None else t.last_end - t.first_start
    return RunSummary(row, t.cases, t.ok, t.failed, t.waiting, t.attempts, t.failures, t.cost, t.tokens, span)


def summarize(store: SqliteStore, row: RunRow) -> RunSummary:
    return _summary(row, store.run_totals([row.run_id])[row.run_id])


def run_summaries(store: SqliteStore, *, status: str | None, text: str | None, page: int,
                  per_page: int = 50) -> tuple[list[RunSummary], int]:
    """One page of the runs list and the number of runs that match the filter."""
    rows, total = store.run_page(status=status, text=text, limit=per_page, offset=page * per_page)
    totals = store.run_totals([r.run_id for r in rows])
    return [_summary(r, totals[r.run_id]) for r in rows], total


@dataclass(frozen=True)
class Attempt:
    """One bar of a run's timeline: an attempt of a step in a case, placed in the run's span."""

    rec: TraceRecord
    offset: float  # seconds after the run's first attempt started
    left: float  # where the bar starts and how wide it is, in % of the span
    width: float
    retry: bool  # a later attempt of the same step execution
    fallback_of: str | None  # the step this one stands in for


@dataclass(frozen=True)
class CaseDetail:
    case: int
    status: str
    input: str
    output: str | None
    error: str | None
    steps: list[tuple[str, str, str]]  # key, label, output


@dataclass(frozen=True)
class RunDetail:
    summary: RunSummary
    attempts: list[Attempt]
    cases: list[CaseDetail]
    span: float
    workflow_error: str | None
    lease: tuple[str, float] | None


def run_detail(store: SqliteStore, row: RunRow, workflows: Workflows) -> RunDetail:
    """Everything the run page shows: the summary, the timeline of every attempt, each case's data."""
    recs = sorted(_records(store, row.run_id), key=lambda r: (r.start, r.end))
    wf, why = workflows.get(row.workflow)
    owners = dict(wf.fallback_owner) if wf is not None else {}
    t0 = min((r.start for r in recs), default=0.0)
    span = max((r.end for r in recs), default=t0) - t0
    scale = 100.0 / span if span > 0 else 0.0
    attempts = [Attempt(r, r.start - t0, (r.start - t0) * scale, max((r.end - r.start) * scale, 0.4),
                        r.attempt > 1, owners.get(r.step)) for r in recs]
    cases, red = [], redactor()
    for c in store.cases(row.run_id):
        steps = [(key, cp.label, shown(cp.output, red))
                 for key, cp in sorted(store.load_steps(row.run_id, c.case).items())]
        cases.append(CaseDetail(c.case, c.status, shown(c.input, red), None if c.output is None else
                                shown(c.output, red), None if c.error is None else red(c.error), steps))
    return RunDetail(summarize(store, row), attempts, cases, span, why, store.lease(row.run_id))


@dataclass(frozen=True)
class ReviewItem:
    """A human step waiting for its answer, with what the reviewer needs to decide."""

    run_id: str
    workflow: str
    case: int
    step: str
    npass: int
    since: float
    deadline: float | None  # the step's timeout after it began waiting; then its fallback takes over
    escalates_to: str | None  # that fallback step
    handler: str | None  # its on_failure step: what runs at the deadline (or an escalation) without a fallback
    choices: tuple[str, ...]  # the route's labels, when the step routes on its answer
    description: str
    input: str
    upstream: list[tuple[str, str]] = field(default_factory=list)  # (checkpoint key, output) of earlier steps


def review_queue(store: SqliteStore, workflows: Workflows) -> list[ReviewItem]:
    """Every pending human step across runs, nearest deadline first, then oldest first."""
    items, red = [], redactor()
    inputs: dict[str, dict[int, Any]] = {}
    for w in store.waiting():
        row = store.get_run(w.run_id)
        if row is None:
            continue
        wf, _ = workflows.get(row.workflow)
        step = wf.step(w.step) if wf is not None and w.step in wf.step_ids else None
        if w.run_id not in inputs:
            inputs[w.run_id] = {c.case: c.input for c in store.cases(w.run_id)}
        upstream = [(key, shown(cp.output, red)) for key, cp in sorted(store.load_steps(w.run_id, w.case).items())
                    if step_of_key(key) != w.step]
        items.append(ReviewItem(
            w.run_id, row.workflow, w.case, w.step, w.npass, w.since,
            None if step is None or step.timeout is None else w.since + step.timeout,
            None if step is None else step.fallback, None if step is None else step.on_failure,
            () if step is None else tuple(dict.fromkeys(b.when for b in step.route)),
            "" if step is None else step.description, shown(inputs[w.run_id].get(w.case), red), upstream))
    return sorted(items, key=lambda i: (math.inf if i.deadline is None else i.deadline, i.since))


def ago(t: float, now: float | None = None) -> str:
    """``12 s ago``, ``5 min ago``, ``in 3 min``: how far a time is from now, for people."""
    d = (time.time() if now is None else now) - t
    word = "ago" if d >= 0 else "from now"
    d = abs(d)
    amount = f"{d:.0f} s" if d < 90 else f"{d / 60:.0f} min" if d < 5400 else f"{d / 3600:.1f} h"
    return f"in {amount}" if word == "from now" else f"{amount} ago"
