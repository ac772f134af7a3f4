"""Checkpoints: every step output is committed before any downstream step sees it.

Two stores with one interface. :class:`SqliteStore` is durable: SQLite in
WAL mode with ``synchronous=NORMAL``, so a commit survives ``kill -9`` of the
process (the WAL is in the OS's page cache; only a power cut could lose the
last commits) at tens of microseconds per commit. :class:`MemoryStore`
keeps the same tables in dicts, for runs that need no resume.

A step's output is keyed by ``(run_id, case, key)`` where ``key`` is
``STEP#OCCURRENCE`` (``#2`` is the second pass of a loop) and
``STEP#OCCURRENCE/ITEM`` for one item of a map, so a resumed run finds
exactly the outputs of the executions it already made. Human answers and
tool results (by idempotency key) live in the same file, so another process
(``petriflow run --answer``) can answer a waiting step.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from petriflow.errors import ExecutionError, InputError
from petriflow.execute.ownership import owner_alive
from petriflow.limits import failing, open_database
from petriflow.trace import TraceRecord, dumps

__all__ = ["CaseRow", "Checkpoint", "MemoryStore", "RunRow", "RunTotals", "SqliteStore", "Waiting", "open_store", "output_json"]


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
class Waiting:
    """A human step of a case waiting for its answer (for ``petriflow runs pending``)."""

    run_id: str
    case: int
    step: str
    npass: int
    since: float


@dataclass(frozen=True)
class RunTotals:
    """What a run's list row shows, summed by the store (so a page of runs costs three queries, not 150)."""

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


def _dump(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


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


class MemoryStore:
    """The store interface, kept in dicts (lost when the process ends)."""

    def __init__(self) -> None:
        self._runs: dict[str, RunRow] = {}
        self._cases: dict[tuple[str, int], CaseRow] = {}
        self._steps: dict[tuple[str, int], dict[str, Checkpoint]] = {}
        self._answers: dict[tuple[str, str, int | None, int | None], str] = {}
        self._waiting: dict[tuple[str, int, str, int], float] = {}
        self._tools: dict[str, Any] = {}
        self._leases: dict[str, tuple[str, float]] = {}

    durable = False

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
        self._runs[run_id] = RunRow(run_id, workflow, time.time(), "running", dict(options or {}))

    def get_run(self, run_id: str) -> RunRow | None:
        return self._runs.get(run_id)

    def set_run_status(self, run_id: str, status: str) -> None:
        row = self._runs[run_id]
        self._runs[run_id] = RunRow(row.run_id, row.workflow, row.created, status, row.options)

    def add_case(self, run_id: str, case: int, value: Any) -> None:
        self._cases.setdefault((run_id, case), CaseRow(case, value, "pending", None, None))

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
        self._waiting[(run_id, case, step, npass)] = time.time()

    def stop_waiting(self, run_id: str, case: int, step: str, npass: int) -> None:
        self._waiting.pop((run_id, case, step, npass), None)

    def waiting(self, run_id: str | None = None) -> list[Waiting]:
        """Human steps waiting for an answer, oldest first (of one run, or of every run)."""
        rows = [Waiting(*k, since) for k, since in self._waiting.items() if run_id in (None, k[0])]
        return sorted(rows, key=lambda w: w.since)

    def runs(self) -> list[RunRow]:
        """Every run, newest first."""
        return sorted(self._runs.values(), key=lambda r: -r.created)

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
        """Each run's case counts, waiting steps and attempt totals (memory keeps no trace: attempts are 0)."""
        out = {}
        for rid in run_ids:
            cases = self.cases(rid)
            out[rid] = RunTotals(len(cases), sum(c.status == "ok" for c in cases),
                                 sum(c.status == "failed" for c in cases), len(self.waiting(rid)))
        return out

    def tool_result(self, key: str) -> tuple[bool, Any]:
        return (True, self._tools[key]) if key in self._tools else (False, None)

    def save_tool_result(self, key: str, result: Any) -> None:
        self._tools[key] = result

    def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, workflow TEXT, created REAL, status TEXT, options TEXT);
CREATE TABLE IF NOT EXISTS cases (run_id TEXT, ncase INTEGER, input TEXT, status TEXT, output TEXT, error TEXT,
                                  PRIMARY KEY (run_id, ncase));
CREATE TABLE IF NOT EXISTS steps (run_id TEXT, ncase INTEGER, key TEXT, step TEXT, label TEXT, output TEXT,
                                  committed REAL, cost REAL, PRIMARY KEY (run_id, ncase, key));
CREATE TABLE IF NOT EXISTS answers (run_id TEXT, step TEXT, ncase INTEGER, text TEXT, answered REAL);
CREATE TABLE IF NOT EXISTS tool_calls (key TEXT PRIMARY KEY, result TEXT);
CREATE TABLE IF NOT EXISTS leases (run_id TEXT PRIMARY KEY, owner TEXT, expires REAL);
CREATE TABLE IF NOT EXISTS waiting (run_id TEXT, ncase INTEGER, step TEXT, npass INTEGER, since REAL,
                                    PRIMARY KEY (run_id, ncase, step, npass));
CREATE TABLE IF NOT EXISTS trace (seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, ncase INTEGER, line TEXT);
CREATE INDEX IF NOT EXISTS trace_by_run ON trace (run_id, seq);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created);
"""


class SqliteStore(MemoryStore):
    """The durable store: one SQLite file in WAL mode; each write is its own committed transaction."""

    durable = True

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._db = open_database(self.path, what="checkpoint store", isolation_level=None, check_same_thread=False,
                                 timeout=30, fail=failing(InputError, str(path)))
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(steps)")}
            if "cost" not in columns:  # a store written before checkpoints carried their cost
                self._db.execute("ALTER TABLE steps ADD COLUMN cost REAL")
            if "npass" not in {row[1] for row in self._db.execute("PRAGMA table_info(answers)")}:
                self._db.execute("ALTER TABLE answers ADD COLUMN npass INTEGER")  # answers before they were per pass
            self._db.execute("DELETE FROM leases WHERE 0")  # a read-only store is found now, not at a checkpoint
        except sqlite3.DatabaseError as exc:
            if "readonly" in str(exc) or "read-only" in str(exc):
                raise InputError("the checkpoint store is read-only: a run must write its checkpoints",
                                 where=str(path), hint="make the file and its directory writable, or pass --db "
                                                       "a writable file") from None
            raise InputError(f"cannot open the checkpoint store: {exc}", where=str(path),
                             hint="pass --db a new file or a petriflow store") from None

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        self._db.execute(sql, args)  # autocommit: one transaction per statement

    def acquire_lease(self, run_id: str, owner: str, ttl: float) -> str | None:
        """One ``BEGIN IMMEDIATE`` transaction, so of two drivers racing for a run exactly one wins."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute("SELECT owner, expires FROM leases WHERE run_id=?", (run_id,)).fetchone()
            now = time.time()
            if row is not None and row[0] != owner and row[1] > now and owner_alive(row[0]):
                self._db.execute("ROLLBACK")
                return str(row[0])
            self._db.execute("INSERT OR REPLACE INTO leases VALUES (?,?,?)", (run_id, owner, now + ttl))
            self._db.execute("COMMIT")
            return None
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def renew_lease(self, run_id: str, owner: str, ttl: float) -> bool:
        cur = self._db.execute("UPDATE leases SET expires=? WHERE run_id=? AND owner=?",
                               (time.time() + ttl, run_id, owner))
        return cur.rowcount == 1

    def release_lease(self, run_id: str, owner: str) -> None:
        self._write("DELETE FROM leases WHERE run_id=? AND owner=?", (run_id, owner))

    def lease(self, run_id: str) -> tuple[str, float] | None:
        row = self._db.execute("SELECT owner, expires FROM leases WHERE run_id=?", (run_id,)).fetchone()
        return None if row is None else (str(row[0]), float(row[1]))

    def create_run(self, run_id: str, *, workflow: str, options: dict[str, Any] | None = None) -> None:
        self._write("INSERT OR IGNORE INTO runs VALUES (?,?,?,?,?)",
                    (run_id, workflow, time.time(), "running", _dump(options or {})))

    def get_run(self, run_id: str) -> RunRow | None:
        row = self._db.execute("SELECT run_id, workflow, created, status, options FROM runs WHERE run_id=?",
                               (run_id,)).fetchone()
        return None if row is None else RunRow(row[0], row[1], row[2], row[3], json.loads(row[4]))

    def set_run_status(self, run_id: str, status: str) -> None:
        self._write("UPDATE runs SET status=? WHERE run_id=?", (status, run_id))

    def add_case(self, run_id: str, case: int, value: Any) -> None:
        self._write("INSERT OR IGNORE INTO cases VALUES (?,?,?,?,?,?)", (run_id, case, _dump(value), "pending", None, None))

    def add_cases(self, run_id: str, values: list[Any]) -> None:
        """All cases of a batch in one transaction."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO cases VALUES (?,?,?,?,?,?)",
                                 [(run_id, i, _dump(v), "pending", None, None) for i, v in enumerate(values)])

    def cases(self, run_id: str) -> list[CaseRow]:
        rows = self._db.execute("SELECT ncase, input, status, output, error FROM cases WHERE run_id=? ORDER BY ncase",
                                (run_id,)).fetchall()
        return [CaseRow(r[0], json.loads(r[1]), r[2], None if r[3] is None else json.loads(r[3]), r[4]) for r in rows]

    def finish_case(self, run_id: str, case: int, *, status: str, output: Any, error: str | None) -> None:
        self._write("UPDATE cases SET status=?, output=?, error=? WHERE run_id=? AND ncase=?",
                    (status, _dump(output), error, run_id, case))

    def save_step(self, run_id: str, case: int, key: str, cp: Checkpoint, *, trace: TraceRecord | None = None) -> None:
        """The checkpoint and its trace record in one transaction: after any crash both are there or neither."""
        row = (run_id, case, key, cp.step, cp.label, output_json(cp.step, cp.output), time.time(), cp.cost)
        if trace is None:
            self._write("INSERT OR REPLACE INTO steps VALUES (?,?,?,?,?,?,?,?)", row)
            return
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT OR REPLACE INTO steps VALUES (?,?,?,?,?,?,?,?)", row)
            self._db.execute("INSERT INTO trace (run_id, ncase, line) VALUES (?,?,?)", (run_id, case, dumps(trace)))

    def add_trace(self, rec: TraceRecord) -> None:
        self._write("INSERT INTO trace (run_id, ncase, line) VALUES (?,?,?)", (rec.run_id, rec.case, dumps(rec)))

    def trace_lines(self, run_id: str) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT line FROM trace WHERE run_id=? ORDER BY seq", (run_id,))]

    def load_steps(self, run_id: str, case: int) -> dict[str, Checkpoint]:
        rows = self._db.execute("SELECT key, step, label, output, cost FROM steps WHERE run_id=? AND ncase=?",
                                (run_id, case)).fetchall()
        return {r[0]: Checkpoint(r[1], r[2], json.loads(r[3]), r[4] or 0.0) for r in rows}

    def answer(self, run_id: str, step: str, text: str, *, case: int | None = None, npass: int | None = None) -> None:
        self._write("INSERT INTO answers (run_id, step, ncase, text, answered, npass) VALUES (?,?,?,?,?,?)",
                    (run_id, step, case, text, time.time(), npass))

    def get_answer(self, run_id: str, step: str, case: int, *, npass: int = 1) -> str | None:
        row = self._db.execute(
            "SELECT text FROM answers WHERE run_id=? AND step=? AND (ncase=? OR ncase IS NULL) "
            "AND (npass=? OR npass IS NULL) ORDER BY ncase IS NULL, npass IS NULL, answered LIMIT 1",
            (run_id, step, case, npass)).fetchone()
        return None if row is None else str(row[0])

    def start_waiting(self, run_id: str, case: int, step: str, npass: int) -> None:
        self._write("INSERT OR IGNORE INTO waiting VALUES (?,?,?,?,?)", (run_id, case, step, npass, time.time()))

    def stop_waiting(self, run_id: str, case: int, step: str, npass: int) -> None:
        self._write("DELETE FROM waiting WHERE run_id=? AND ncase=? AND step=? AND npass=?",
                    (run_id, case, step, npass))

    def waiting(self, run_id: str | None = None) -> list[Waiting]:
        rows = self._db.execute("SELECT run_id, ncase, step, npass, since FROM waiting WHERE ? IS NULL OR run_id=? "
                                "ORDER BY since", (run_id, run_id)).fetchall()
        return [Waiting(str(r[0]), int(r[1]), str(r[2]), int(r[3]), float(r[4])) for r in rows]

    def runs(self) -> list[RunRow]:
        rows = self._db.execute("SELECT run_id, workflow, created, status, options FROM runs "
                                "ORDER BY created DESC, run_id DESC").fetchall()
        return [RunRow(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def run_page(self, *, status: str | None = None, text: str | None = None, limit: int = 50,
                 offset: int = 0) -> tuple[list[RunRow], int]:
        where = "WHERE (? IS NULL OR status=?) AND (? IS NULL OR instr(run_id, ?) > 0 OR instr(workflow, ?) > 0)"
        args = (status, status, text or None, text, text)
        total = int(self._db.execute(f"SELECT count(*) FROM runs {where}", args).fetchone()[0])
        rows = self._db.execute(f"SELECT run_id, workflow, created, status, options FROM runs {where} "
                                "ORDER BY created DESC, run_id DESC LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
        return [RunRow(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows], total

    def trace_since(self, seq: int, *, limit: int = 100_000) -> list[tuple[int, str]]:
        rows = self._db.execute("SELECT seq, line FROM trace WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
        return [(int(r[0]), str(r[1])) for r in rows]

    def run_totals(self, run_ids: list[str]) -> dict[str, RunTotals]:
        if not run_ids:
            return {}
        marks = ",".join("?" * len(run_ids))
        cases = {r[0]: r[1:] for r in self._db.execute(
            f"SELECT run_id, count(*), total(status='ok'), total(status='failed') FROM cases "
            f"WHERE run_id IN ({marks}) GROUP BY run_id", run_ids)}
        waits = dict(self._db.execute(f"SELECT run_id, count(*) FROM waiting WHERE run_id IN ({marks}) "
                                      "GROUP BY run_id", run_ids).fetchall())
        attempts = {r[0]: r[1:] for r in self._db.execute(
            "SELECT run_id, count(*), total(json_extract(line, '$.outcome') != 'ok'), "
            "total(json_extract(line, '$.cost')), total(json_extract(line, '$.input_tokens')) "
            "+ total(json_extract(line, '$.output_tokens')), min(json_extract(line, '$.start')), "
            f"max(json_extract(line, '$.end')) FROM trace WHERE run_id IN ({marks}) GROUP BY run_id", run_ids)}
        out = {}
        for rid in run_ids:
            n, ok, failed = cases.get(rid, (0, 0, 0))
            a, bad, cost, tokens, start, end = attempts.get(rid, (0, 0, 0.0, 0, None, None))
            out[rid] = RunTotals(int(n), int(ok), int(failed), int(waits.get(rid, 0)), int(a), int(bad), float(cost),
                                 int(tokens), start, end)
        return out

    def tool_result(self, key: str) -> tuple[bool, Any]:
        row = self._db.execute("SELECT result FROM tool_calls WHERE key=?", (key,)).fetchone()
        return (False, None) if row is None else (True, json.loads(row[0]))

    def save_tool_result(self, key: str, result: Any) -> None:
        self._write("INSERT OR REPLACE INTO tool_calls VALUES (?,?)", (key, _dump(result)))

    def close(self) -> None:
        self._db.close()


def open_store(path: str | Path | None) -> MemoryStore:
    """A durable store at ``path``, or an in-memory one when ``path`` is None."""
    return MemoryStore() if path is None else SqliteStore(path)
