"""Checkpoints: every step output is committed before any downstream step sees it.

:class:`RunStore` is the interface every store keeps; :class:`MemoryStore`
keeps its tables in dicts, for runs that need no resume. The durable stores
(:mod:`~petriflow.execute.store.sqlite` on one machine,
:mod:`~petriflow.execute.store.postgres` for workers on several) share their
SQL in :mod:`~petriflow.execute.store.sql`.

A step's output is keyed by ``(run_id, case, key)`` where ``key`` is
``STEP#OCCURRENCE`` (``#2`` is the second pass of a loop) and
``STEP#OCCURRENCE/ITEM`` for one item of a map, so a resumed run finds
exactly the outputs of the executions it already made. Human answers and
tool results (by idempotency key) live in the same file, so another process
(``petriflow run --answer``) can answer a waiting step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from petriflow.errors import ExecutionError
from petriflow.execute.ownership import owner_alive
from petriflow.trace import TraceRecord

__all__ = ["CaseRow", "Checkpoint", "MemoryStore", "Queued", "RunRow", "RunStore", "RunTotals", "Waiting",
           "output_json"]


@dataclass(frozen=True)
class Checkpoint:
    """A committed step execution: which step ran (the step or its fallback), its label and output."""

    step: str
    label: str
    output: Any
    cost: float = 0.0  # dollars the execution cost, so a resumed run's budget counts it


@dataclass(frozen=True)
class RunRow:
    run_id: str
    workflow: str
    created: float
    status: str
    options: dict[str, Any]


@dataclass(frozen=True)
class CaseRow:
    case: int
    input: Any
    status: str
    output: Any
    error: str | None


@dataclass(frozen=True)
class Queued:
    """An attempt of ``step`` (its execution ``key``) in ``case`` waiting for ``resource``'s units or permits.

    Written by :meth:`~petriflow.execute.policies.StepPolicies.acquire` from
    when the attempt starts waiting until it holds them; the console's live
    net reads these rows instead of guessing from capacities.
    """

    run_id: str
    case: int
    key: str
    step: str
    resource: str
    since: float


@dataclass(frozen=True)
class Waiting:
    """A human step of a case waiting for its answer (for ``petriflow runs pending``)."""

    run_id: str
    case: int
    step: str
    npass: int
    since: float


def output_json(step: str, value: Any) -> str:
    """The JSON text of a step output, or :class:`ExecutionError` when JSON would change it.

    A resumed run reads outputs back from JSON, so an output that does not
    survive ``json.loads(json.dumps(x)) == x`` (a set, a tuple, a dataclass,
    a numpy array, a dict with int keys) would reach downstream steps as
    different data than in the first run. Refusing it when it is committed
    keeps a run and its resume the same; NaN, which is not equal to itself,
    is allowed.
    """
    try:
        text = json.dumps(value, separators=(",", ":"))
        if json.loads(text) == value:
            return text
    except (TypeError, ValueError, RecursionError):
        text = ""
    bad = _not_json(value, "")
    if bad is None and text:
        return text  # equal but for NaN
    at, kind = bad or ("", type(value).__name__)
    raise ExecutionError(
        f"step '{step}' returned a {kind}{f' (at {at})' if at else ''}, which cannot be checkpointed; "
        "return JSON data (dict, list, str, number, bool, None)",
        where=f"step '{step}'", hint="convert it in the step, e.g. sorted(a_set), dataclasses.asdict(x), array.tolist()")


def _not_json(value: Any, at: str, depth: int = 0) -> tuple[str, str] | None:
    """Where inside ``value`` the first part JSON cannot carry unchanged is, and its type; None if nowhere."""
    if value is None or isinstance(value, (str, int, float)):
        return None
    if depth > 100:
        return (at, f"{type(value).__name__} nested too deep")
    if isinstance(value, list):
        for i, v in enumerate(value):
            if (bad := _not_json(v, f"{at}[{i}]", depth + 1)) is not None:
                return bad
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return (f"{at} key {k!r}", f"dict with a {type(k).__name__} key")
            if (bad := _not_json(v, f"{at}[{k!r}]", depth + 1)) is not None:
                return bad
        return None
    return (at, type(value).__name__)


@dataclass(frozen=True)
class RunTotals:
    """What a run's list row shows, summed by the store (so a page of runs costs a few queries, not 150)."""

    cases: int = 0
    ok: int = 0
    failed: int = 0
    waiting: int = 0
    attempts: int = 0
    failures: int = 0  # attempts whose outcome is not ok
    cost: float = 0.0
    tokens: int = 0
    first_start: float | None = None
    last_end: float | None = None


def totals_of(lines: Iterable[str]) -> tuple[int, int, float, int, float | None, float | None]:
    """Attempts, failed attempts, cost, tokens, first start and last end over a run's trace lines."""
    n = bad = tokens = 0
    cost = 0.0
    start: float | None = None
    end: float | None = None
    for line in lines:
        rec = json.loads(line)
        n += 1
        bad += rec.get("outcome") != "ok"
        cost += float(rec.get("cost") or 0.0)
        tokens += int(rec.get("input_tokens") or 0) + int(rec.get("output_tokens") or 0)
        if rec.get("start") is not None:
            start = rec["start"] if start is None else min(start, rec["start"])
        if rec.get("end") is not None:
            end = rec["end"] if end is None else max(end, rec["end"])
    return n, bad, cost, tokens, start, end


@runtime_checkable
class RunStore(Protocol):
    """What the executor, ``petriflow runs`` and the web console need of a checkpoint store.

    Every write is committed when the method returns: a step's output before
    any downstream step sees it (:meth:`save_step`, with its trace record in
    the same transaction), an answer before the waiting step reads it. At
    most one owner holds a run's lease at a time (:meth:`acquire_lease` is
    atomic in the store itself, not in the process).
    """

    durable: bool
    path: str | Path | None  # what to pass --db to reach this store again (None in memory)

    def acquire_lease(self, run_id: str, owner: str, ttl: float) -> str | None: ...
    def renew_lease(self, run_id: str, owner: str, ttl: float) -> bool: ...
    def release_lease(self, run_id: str, owner: str) -> None: ...
    def lease(self, run_id: str) -> tuple[str, float] | None: ...
    def create_run(self, run_id: str, *, workflow: str, options: dict[str, Any] | None = None) -> None: ...
    def get_run(self, run_id: str) -> RunRow | None: ...
    def set_run_status(self, run_id: str, status: str) -> None: ...
    def add_case(self, run_id: str, case: int, value: Any) -> None: ...
    def add_cases(self, run_id: str, values: list[Any]) -> None: ...
    def cases(self, run_id: str) -> list[CaseRow]: ...
    def finish_case(self, run_id: str, case: int, *, status: str, output: Any, error: str | None) -> None: ...
    def save_step(self, run_id: str, case: int, key: str, cp: Checkpoint, *,
                  trace: TraceRecord | None = None) -> None: ...
    def add_trace(self, rec: TraceRecord) -> None: ...
    def trace_lines(self, run_id: str) -> list[str]: ...
    def load_steps(self, run_id: str, case: int) -> dict[str, Checkpoint]: ...
    def answer(self, run_id: str, step: str, text: str, *, case: int | None = None,
               npass: int | None = None) -> None: ...
    def get_answer(self, run_id: str, step: str, case: int, *, npass: int = 1) -> str | None: ...
    def start_waiting(self, run_id: str, case: int, step: str, npass: int) -> None: ...
    def stop_waiting(self, run_id: str, case: int, step: str, npass: int) -> None: ...
    def waiting(self, run_id: str | None = None) -> list[Waiting]: ...
    def escalate(self, run_id: str, case: int, step: str, npass: int) -> bool: ...
    def escalated(self, run_id: str, case: int, step: str, npass: int) -> bool: ...
    def set_queued(self, q: Queued) -> None: ...
    def clear_queued(self, run_id: str, case: int, key: str) -> None: ...
    def queued(self, run_id: str) -> list[Queued]: ...
    def runs(self) -> list[RunRow]: ...
    def run_page(self, *, status: str | None = None, text: str | None = None, limit: int = 50,
                 offset: int = 0) -> tuple[list[RunRow], int]: ...
    def trace_since(self, seq: int, *, limit: int = 100_000) -> list[tuple[int, str]]: ...
    def run_totals(self, run_ids: list[str]) -> dict[str, RunTotals]: ...
    def tool_result(self, key: str) -> tuple[bool, Any]: ...
    def save_tool_result(self, key: str, result: Any) -> None: ...
    def close(self) -> None: ...


class MemoryStore:
    """The store interface, kept in dicts (lost when the process ends)."""

    def __init__(self) -> None:
        self._runs: dict[str, RunRow] = {}
        self._cases: dict[tuple[str, int], CaseRow] = {}
        self._steps: dict[tuple[str, int], dict[str, Checkpoint]] = {}
        self._answers: dict[tuple[str, str, int | None, int | None], str] = {}
        self._waiting: dict[tuple[str, int, str, int], float] = {}
        self._escalations: dict[tuple[str, int, str, int], float] = {}
        self._queued: dict[tuple[str, int, str], Queued] = {}
        self._tools: dict[str, Any] = {}
        self._leases: dict[str, tuple[str, float]] = {}

    durable = False
    path: str | Path | None = None

    # -- ownership (see :mod:`petriflow.execute.ownership`) -----------------------------
    def acquire_lease(self, run_id: str, owner: str, ttl: float) -> str | None:
        """Take the run's lease for ``ttl`` seconds; the live holder's name when another owner has it."""
        held = self._leases.get(run_id)
        now = time.time()
        if held is not None and held[0] != owner and held[1] > now and owner_alive(held[0]):
            return held[0]
        self._leases[run_id] = (owner, now + ttl)
        return None

    def renew_lease(self, run_id: str, owner: str, ttl: float) -> bool:
        """Extend the lease; False when ``owner`` no longer holds it (it was taken over)."""
        if self._leases.get(run_id, ("", 0.0))[0] != owner:
            return False
        self._leases[run_id] = (owner, time.time() + ttl)
        return True

    def release_lease(self, run_id: str, owner: str) -> None:
        if self._leases.get(run_id, ("", 0.0))[0] == owner:
            del self._leases[run_id]

    def lease(self, run_id: str) -> tuple[str, float] | None:
        """Who holds the run's lease and until when (epoch seconds), or None."""
        return self._leases.get(run_id)

    def create_run(self, run_id: str, *, workflow: str, options: dict[str, Any] | None = None) -> None:
        """Record a new run; a run id already there is left as it was (as the durable stores do)."""
        self._runs.setdefault(run_id, RunRow(run_id, workflow, time.time(), "running", dict(options or {})))

    def get_run(self, run_id: str) -> RunRow | None:
        return self._runs.get(run_id)

    def set_run_status(self, run_id: str, status: str) -> None:
        row = self._runs[run_id]
        self._runs[run_id] = RunRow(row.run_id, row.workflow, row.created, status, row.options)

    def add_case(self, run_id: str, case: int, value: Any) -> None:
        self._cases.setdefault((run_id, case), CaseRow(case, value, "pending", None, None))

    def add_cases(self, run_id: str, values: list[Any]) -> None:
        """All cases of a batch (one transaction in a durable store)."""
        for i, v in enumerate(values):
            self.add_case(run_id, i, v)

    def cases(self, run_id: str) -> list[CaseRow]:
        return [row for (r, _), row in sorted(self._cases.items(), key=lambda kv: kv[0][1]) if r == run_id]

    def finish_case(self, run_id: str, case: int, *, status: str, output: Any, error: str | None) -> None:
        row = self._cases[(run_id, case)]
        self._cases[(run_id, case)] = CaseRow(case, row.input, status, output, error)
        if status == "ok":  # a finished case is never resumed: its checkpoints would only grow the heap
            self._steps.pop((run_id, case), None)

    def save_step(self, run_id: str, case: int, key: str, cp: Checkpoint, *, trace: TraceRecord | None = None) -> None:
        """Commit a step execution with its trace record; an output JSON would change is an
        :class:`ExecutionError` (see :func:`output_json`)."""
        output_json(cp.step, cp.output)  # the same refusal as the durable store: a run must not depend on --db
        self._steps.setdefault((run_id, case), {})[key] = cp

    def add_trace(self, rec: TraceRecord) -> None:
        """Keep a trace record of an attempt that made no checkpoint (a failure); in memory, the trace file is all."""

    def trace_lines(self, run_id: str) -> list[str]:
        """The run's trace records as JSON lines, in the order they were committed (none in memory)."""
        return []

    def load_steps(self, run_id: str, case: int) -> dict[str, Checkpoint]:
        return dict(self._steps.get((run_id, case), {}))

    def answer(self, run_id: str, step: str, text: str, *, case: int | None = None, npass: int | None = None) -> None:
        """Answer a human step: for one case (or every case when ``case`` is None), one loop pass (or every one)."""
        self._answers[(run_id, step, case, npass)] = text

    def get_answer(self, run_id: str, step: str, case: int, *, npass: int = 1) -> str | None:
        """The most specific answer: this case before every case, this pass before every pass."""
        for key in ((case, npass), (case, None), (None, npass), (None, None)):
            if (found := self._answers.get((run_id, step, *key))) is not None:
                return found
        return None

    def start_waiting(self, run_id: str, case: int, step: str, npass: int) -> None:
        self._waiting.setdefault((run_id, case, step, npass), time.time())  # since it first waited

    def stop_waiting(self, run_id: str, case: int, step: str, npass: int) -> None:
        self._waiting.pop((run_id, case, step, npass), None)

    def waiting(self, run_id: str | None = None) -> list[Waiting]:
        """Human steps waiting for an answer, oldest first (of one run, or of every run)."""
        rows = [Waiting(*k, since) for k, since in self._waiting.items() if run_id in (None, k[0])]
        return sorted(rows, key=lambda w: w.since)

    def escalate(self, run_id: str, case: int, step: str, npass: int) -> bool:
        """Ask that the waiting human step be escalated now; False when it was asked already (recorded once).

        The step's wait (:meth:`~petriflow.execute.tools.KindRunner._human`)
        sees it at its next poll and ends exactly as when its deadline passes
        (:class:`~petriflow.errors.Escalated` is a ``TimeoutError``).
        """
        if (run_id, case, step, npass) in self._escalations:
            return False
        self._escalations[(run_id, case, step, npass)] = time.time()
        return True

    def escalated(self, run_id: str, case: int, step: str, npass: int) -> bool:
        """Whether someone asked that this wait be escalated."""
        return (run_id, case, step, npass) in self._escalations

    def set_queued(self, q: Queued) -> None:
        """Record that the attempt waits (until :meth:`clear_queued`); the first record's ``since`` stays."""
        self._queued.setdefault((q.run_id, q.case, q.key), q)

    def clear_queued(self, run_id: str, case: int, key: str) -> None:
        """The attempt holds what it waited for (or was cancelled while waiting)."""
        self._queued.pop((run_id, case, key), None)

    def queued(self, run_id: str) -> list[Queued]:
        """The run's attempts waiting for a resource now, longest waiting first."""
        return sorted((q for q in self._queued.values() if q.run_id == run_id), key=lambda q: q.since)

    def runs(self) -> list[RunRow]:
        """Every run, newest first (ties broken by run id, newest-looking first)."""
        return sorted(self._runs.values(), key=lambda r: (r.created, r.run_id), reverse=True)

    def run_page(self, *, status: str | None = None, text: str | None = None, limit: int = 50,
                 offset: int = 0) -> tuple[list[RunRow], int]:
        """One page of runs, newest first, with the number that match: ``status`` exactly, ``text`` in the
        run id or workflow (what the console's runs list filters by)."""
        rows = [r for r in self.runs() if status in (None, r.status)
                and (not text or text in r.run_id or text in r.workflow)]
        return rows[offset:offset + limit], len(rows)

    def trace_since(self, seq: int, *, limit: int = 100_000) -> list[tuple[int, str]]:
        """Trace lines committed after position ``seq``, with their positions, oldest first (none in memory)."""
        return []

    def run_totals(self, run_ids: list[str]) -> dict[str, RunTotals]:
        """Each run's case counts, waiting steps and attempt totals (over its trace lines)."""
        out = {}
        for rid in run_ids:
            cases = self.cases(rid)
            out[rid] = RunTotals(len(cases), sum(c.status == "ok" for c in cases),
                                 sum(c.status == "failed" for c in cases), len(self.waiting(rid)),
                                 *totals_of(self.trace_lines(rid)))
        return out

    def tool_result(self, key: str) -> tuple[bool, Any]:
        return (True, self._tools[key]) if key in self._tools else (False, None)

    def save_tool_result(self, key: str, result: Any) -> None:
        self._tools[key] = result

    def close(self) -> None:
        pass
