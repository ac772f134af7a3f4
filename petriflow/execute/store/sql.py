"""The durable stores' shared half: one schema and one set of statements for SQLite and PostgreSQL.

Both databases speak the same SQL for everything a store does (upserts are
``INSERT ... ON CONFLICT``, which SQLite has had since 3.24), so the
statements are written once, with ``?`` placeholders, and a dialect only
says how to run a statement and how to run a transaction:
:class:`~petriflow.execute.store.sqlite.SqliteStore` with ``BEGIN
IMMEDIATE`` on one file, :class:`~petriflow.execute.store.postgres.PostgresStore`
with a transaction holding an advisory lock, reconnecting when the server
restarts. Every statement can be run twice with the same effect (trace rows
carry a token, inserted ``ON CONFLICT DO NOTHING``), so a statement whose
commit was sent but whose reply was lost can simply be run again.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from petriflow.execute.ownership import owner_alive
from petriflow.execute.store.base import (
    CaseRow,
    Checkpoint,
    MemoryStore,
    Queued,
    RunRow,
    RunTotals,
    Waiting,
    output_json,
    totals_of,
)
from petriflow.trace import TraceRecord, dumps

__all__ = ["Result", "SqlStore", "schema"]

T = TypeVar("T")


class Result(NamedTuple):
    """What a statement gave: its rows (none for a write) and how many rows it changed."""

    rows: list[tuple[Any, ...]]
    rowcount: int


Exec = Callable[[str, Sequence[Any]], Result]


def schema(serial: str) -> list[str]:
    """The tables, in either dialect: ``serial`` is how it spells an auto-incrementing primary key."""
    return [
        "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, workflow TEXT, created DOUBLE PRECISION, "
        "status TEXT, options TEXT)",
        "CREATE TABLE IF NOT EXISTS cases (run_id TEXT, ncase INTEGER, input TEXT, status TEXT, output TEXT, "
        "error TEXT, PRIMARY KEY (run_id, ncase))",
        "CREATE TABLE IF NOT EXISTS steps (run_id TEXT, ncase INTEGER, key TEXT, step TEXT, label TEXT, output TEXT, "
        "committed DOUBLE PRECISION, cost DOUBLE PRECISION, PRIMARY KEY (run_id, ncase, key))",
        "CREATE TABLE IF NOT EXISTS answers (run_id TEXT, step TEXT, ncase INTEGER, text TEXT, "
        "answered DOUBLE PRECISION, npass INTEGER)",
        "CREATE TABLE IF NOT EXISTS tool_calls (key TEXT PRIMARY KEY, result TEXT)",
        "CREATE TABLE IF NOT EXISTS leases (run_id TEXT PRIMARY KEY, owner TEXT, expires DOUBLE PRECISION)",
        "CREATE TABLE IF NOT EXISTS waiting (run_id TEXT, ncase INTEGER, step TEXT, npass INTEGER, "
        "since DOUBLE PRECISION, PRIMARY KEY (run_id, ncase, step, npass))",
        f"CREATE TABLE IF NOT EXISTS trace (seq {serial}, run_id TEXT, ncase INTEGER, line TEXT, token TEXT)",
        "CREATE TABLE IF NOT EXISTS escalations (run_id TEXT, ncase INTEGER, step TEXT, npass INTEGER, "
        "asked DOUBLE PRECISION, PRIMARY KEY (run_id, ncase, step, npass))",
        "CREATE TABLE IF NOT EXISTS queued (run_id TEXT, ncase INTEGER, key TEXT, step TEXT, resource TEXT, "
        "since DOUBLE PRECISION, PRIMARY KEY (run_id, ncase, key))",
    ]


# columns added after the first stores were written: (table, column, type)
MIGRATIONS = (("steps", "cost", "DOUBLE PRECISION"), ("answers", "npass", "INTEGER"), ("trace", "token", "TEXT"))
INDEXES = ("CREATE UNIQUE INDEX IF NOT EXISTS trace_token ON trace (token)",
           "CREATE INDEX IF NOT EXISTS trace_by_run ON trace (run_id, seq)",  # the console's reads
           "CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created)",
           "CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created)")

_RUN = "SELECT run_id, workflow, created, status, options FROM runs"
_CASE = "INSERT INTO cases VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING"
_STEP = ("INSERT INTO steps VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (run_id, ncase, key) DO UPDATE SET "
         "step=excluded.step, label=excluded.label, output=excluded.output, committed=excluded.committed, "
         "cost=excluded.cost")
_TRACE = "INSERT INTO trace (run_id, ncase, line, token) VALUES (?,?,?,?) ON CONFLICT DO NOTHING"


def _dump(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


def _run_row(r: Sequence[Any]) -> RunRow:
    return RunRow(str(r[0]), str(r[1]), float(r[2]), str(r[3]), json.loads(r[4]))


class SqlStore(MemoryStore):
    """A store in an SQL database; a dialect supplies :meth:`_execute` and :meth:`_transaction`.

    One lock serialises the store's statements, so threads sharing a store
    never interleave two transactions on its one connection.
    """

    durable = True

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()

    # -- what a dialect supplies ------------------------------------------------------
    def _execute(self, sql: str, args: Sequence[Any] = (), *, many: bool = False) -> Result:
        """Run one statement in its own committed transaction (``many``: once per row of ``args``, in one)."""
        raise NotImplementedError

    def _transaction(self, work: Callable[[Exec], T], *, lock: str | None = None) -> T:
        """Run ``work`` in one transaction, committed when it returns; ``lock`` names what it must own alone."""
        raise NotImplementedError

    def _columns(self, table: str) -> set[str]:
        raise NotImplementedError

    # -- schema -----------------------------------------------------------------------------
    def _create(self, run: Exec, statements: list[str]) -> None:
        for sql in statements:
            run(sql, ())
        for table, column, kind in MIGRATIONS:
            if column not in self._columns(table):
                run(f"ALTER TABLE {table} ADD COLUMN {column} {kind}", ())
        for sql in INDEXES:
            run(sql, ())

    def _q(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._execute(sql, args).rows

    def _w(self, sql: str, args: Sequence[Any] = ()) -> int:
        with self._lock:
            return self._execute(sql, args).rowcount

    # -- ownership --------------------------------------------------------------------------
    def acquire_lease(self, run_id: str, owner: str, ttl: float) -> str | None:
        """One transaction owning the run's lock, so of two drivers racing for a run exactly one wins."""
        def take(run: Exec) -> str | None:
            rows = run("SELECT owner, expires FROM leases WHERE run_id=?", (run_id,)).rows
            now = time.time()
            if rows and rows[0][0] != owner and rows[0][1] > now and owner_alive(rows[0][0]):
                return str(rows[0][0])
            run("INSERT INTO leases VALUES (?,?,?) ON CONFLICT (run_id) DO UPDATE SET owner=excluded.owner, "
                "expires=excluded.expires", (run_id, owner, now + ttl))
            return None

        with self._lock:
            return self._transaction(take, lock=f"lease:{run_id}")

    def renew_lease(self, run_id: str, owner: str, ttl: float) -> bool:
        return self._w("UPDATE leases SET expires=? WHERE run_id=? AND owner=?", (time.time() + ttl, run_id, owner)) == 1

    def release_lease(self, run_id: str, owner: str) -> None:
        self._w("DELETE FROM leases WHERE run_id=? AND owner=?", (run_id, owner))

    def lease(self, run_id: str) -> tuple[str, float] | None:
        rows = self._q("SELECT owner, expires FROM leases WHERE run_id=?", (run_id,))
        return None if not rows else (str(rows[0][0]), float(rows[0][1]))

    # -- runs and cases -------------------------------------------------------------------
    def create_run(self, run_id: str, *, workflow: str, options: dict[str, Any] | None = None) -> None:
        self._w("INSERT INTO runs VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
                (run_id, workflow, time.time(), "running", _dump(options or {})))

    def get_run(self, run_id: str) -> RunRow | None:
        rows = self._q(f"{_RUN} WHERE run_id=?", (run_id,))
        return _run_row(rows[0]) if rows else None

    def set_run_status(self, run_id: str, status: str) -> None:
        self._w("UPDATE runs SET status=? WHERE run_id=?", (status, run_id))

    def add_case(self, run_id: str, case: int, value: Any) -> None:
        self._w(_CASE, (run_id, case, _dump(value), "pending", None, None))

    def add_cases(self, run_id: str, values: list[Any]) -> None:
        """All cases of a batch in one transaction."""
        rows = [(run_id, i, _dump(v), "pending", None, None) for i, v in enumerate(values)]
        with self._lock:
            self._execute(_CASE, rows, many=True)

    def cases(self, run_id: str) -> list[CaseRow]:
        rows = self._q("SELECT ncase, input, status, output, error FROM cases WHERE run_id=? ORDER BY ncase", (run_id,))
        return [CaseRow(r[0], json.loads(r[1]), r[2], None if r[3] is None else json.loads(r[3]), r[4]) for r in rows]

    def finish_case(self, run_id: str, case: int, *, status: str, output: Any, error: str | None) -> None:
        self._w("UPDATE cases SET status=?, output=?, error=? WHERE run_id=? AND ncase=?",
                (status, _dump(output), error, run_id, case))

    def runs(self) -> list[RunRow]:
        return [_run_row(r) for r in self._q(f"{_RUN} ORDER BY created DESC, run_id DESC")]

    def run_page(self, *, status: str | None = None, text: str | None = None, limit: int = 50,
                 offset: int = 0) -> tuple[list[RunRow], int]:
        conds: list[str] = []
        args: list[Any] = []
        if status is not None:
            conds.append("status=?")
            args.append(status)
        if text:
            like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conds.append("(run_id LIKE ? ESCAPE '\\' OR workflow LIKE ? ESCAPE '\\')")
            args += [like, like]
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        total = int(self._q(f"SELECT count(*) FROM runs {where}", args)[0][0])
        rows = self._q(f"{_RUN} {where} ORDER BY created DESC, run_id DESC LIMIT ? OFFSET ?", [*args, limit, offset])
        return [_run_row(r) for r in rows], total

    def trace_since(self, seq: int, *, limit: int = 100_000) -> list[tuple[int, str]]:
        rows = self._q("SELECT seq, line FROM trace WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
        return [(int(r[0]), str(r[1])) for r in rows]

    def run_totals(self, run_ids: list[str]) -> dict[str, RunTotals]:
        """Case counts summed in SQL; attempt totals over the runs' trace lines, read in one query."""
        if not run_ids:
            return {}
        marks = ",".join("?" * len(run_ids))
        cases = {r[0]: r[1:] for r in self._q(
            "SELECT run_id, count(*), sum(CASE WHEN status='ok' THEN 1 ELSE 0 END), "
            f"sum(CASE WHEN status='failed' THEN 1 ELSE 0 END) FROM cases WHERE run_id IN ({marks}) "
            "GROUP BY run_id", run_ids)}
        waits = {r[0]: r[1] for r in self._q(
            f"SELECT run_id, count(*) FROM waiting WHERE run_id IN ({marks}) GROUP BY run_id", run_ids)}
        lines: dict[str, list[str]] = {rid: [] for rid in run_ids}
        for rid, line in self._q(f"SELECT run_id, line FROM trace WHERE run_id IN ({marks}) ORDER BY seq", run_ids):
            lines[rid].append(line)
        out = {}
        for rid in run_ids:
            n, ok, failed = cases.get(rid, (0, 0, 0))
            out[rid] = RunTotals(int(n), int(ok or 0), int(failed or 0), int(waits.get(rid, 0)),
                                 *totals_of(lines[rid]))
        return out

    # -- checkpoints and trace --------------------------------------------------------------
    def save_step(self, run_id: str, case: int, key: str, cp: Checkpoint, *, trace: TraceRecord | None = None) -> None:
        """The checkpoint and its trace record in one transaction: after any crash both are there or neither."""
        row = (run_id, case, key, cp.step, cp.label, output_json(cp.step, cp.output), time.time(), cp.cost)
        if trace is None:
            self._w(_STEP, row)
            return
        line, token = dumps(trace), uuid.uuid4().hex

        def both(run: Exec) -> None:
            run(_STEP, row)
            run(_TRACE, (run_id, case, line, token))

        with self._lock:
            self._transaction(both)

    def add_trace(self, rec: TraceRecord) -> None:
        self._w(_TRACE, (rec.run_id, rec.case, dumps(rec), uuid.uuid4().hex))

    def trace_lines(self, run_id: str) -> list[str]:
        return [str(r[0]) for r in self._q("SELECT line FROM trace WHERE run_id=? ORDER BY seq", (run_id,))]

    def load_steps(self, run_id: str, case: int) -> dict[str, Checkpoint]:
        rows = self._q("SELECT key, step, label, output, cost FROM steps WHERE run_id=? AND ncase=?", (run_id, case))
        return {r[0]: Checkpoint(r[1], r[2], json.loads(r[3]), r[4] or 0.0) for r in rows}

    # -- human answers and tool results -------------------------------------------------------
    def answer(self, run_id: str, step: str, text: str, *, case: int | None = None, npass: int | None = None) -> None:
        self._w("INSERT INTO answers (run_id, step, ncase, text, answered, npass) VALUES (?,?,?,?,?,?)",
                (run_id, step, case, text, time.time(), npass))

    def get_answer(self, run_id: str, step: str, case: int, *, npass: int = 1) -> str | None:
        rows = self._q(
            "SELECT text FROM answers WHERE run_id=? AND step=? AND (ncase=? OR ncase IS NULL) "
            "AND (npass=? OR npass IS NULL) ORDER BY ncase IS NULL, npass IS NULL, answered LIMIT 1",
            (run_id, step, case, npass))
        return str(rows[0][0]) if rows else None

    def start_waiting(self, run_id: str, case: int, step: str, npass: int) -> None:
        self._w("INSERT INTO waiting VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
                (run_id, case, step, npass, time.time()))

    def stop_waiting(self, run_id: str, case: int, step: str, npass: int) -> None:
        self._w("DELETE FROM waiting WHERE run_id=? AND ncase=? AND step=? AND npass=?", (run_id, case, step, npass))

    def waiting(self, run_id: str | None = None) -> list[Waiting]:
        rows = self._q("SELECT run_id, ncase, step, npass, since FROM waiting WHERE CAST(? AS TEXT) IS NULL "
                       "OR run_id=? ORDER BY since", (run_id, run_id))
        return [Waiting(str(r[0]), int(r[1]), str(r[2]), int(r[3]), float(r[4])) for r in rows]

    def escalate(self, run_id: str, case: int, step: str, npass: int) -> bool:
        return bool(self._w("INSERT INTO escalations VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
                            (run_id, case, step, npass, time.time())))

    def escalated(self, run_id: str, case: int, step: str, npass: int) -> bool:
        return bool(self._q("SELECT 1 FROM escalations WHERE run_id=? AND ncase=? AND step=? AND npass=?",
                            (run_id, case, step, npass)))

    def set_queued(self, q: Queued) -> None:
        self._w("INSERT INTO queued VALUES (?,?,?,?,?,?) ON CONFLICT (run_id, ncase, key) DO UPDATE SET "
                "resource=excluded.resource", (q.run_id, q.case, q.key, q.step, q.resource, q.since))

    def clear_queued(self, run_id: str, case: int, key: str) -> None:
        self._w("DELETE FROM queued WHERE run_id=? AND ncase=? AND key=?", (run_id, case, key))

    def queued(self, run_id: str) -> list[Queued]:
        rows = self._q("SELECT run_id, ncase, key, step, resource, since FROM queued WHERE run_id=? ORDER BY since",
                       (run_id,))
        return [Queued(str(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4]), float(r[5])) for r in rows]

    def tool_result(self, key: str) -> tuple[bool, Any]:
        rows = self._q("SELECT result FROM tool_calls WHERE key=?", (key,))
        return (True, json.loads(rows[0][0])) if rows else (False, None)

    def save_tool_result(self, key: str, result: Any) -> None:
        self._w("INSERT INTO tool_calls VALUES (?,?) ON CONFLICT (key) DO UPDATE SET result=excluded.result",
                (key, _dump(result)))
