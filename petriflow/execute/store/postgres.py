"""The store for workers on several machines: PostgreSQL through psycopg 3.

Every write is committed before the method returns (``synchronous_commit``
as the server has it: ``on`` by default, so a commit is on disk). Taking a
lease is one transaction holding ``pg_advisory_xact_lock`` on the run, so of
drivers racing on any machines exactly one wins; the lease row's expiry then
hands a dead worker's run to the next. When the server goes away mid-run
(restarted, failed over) a statement waits for it: the store reconnects
with back-off for up to ``wait`` seconds and runs the statement again,
which is safe because every statement of :mod:`~petriflow.execute.store.sql`
has the same effect run twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from petriflow.errors import ExecutionError, InputError
from petriflow.execute.store.sql import Exec, Result, SqlStore, T, schema

__all__ = ["WAIT_SECONDS", "PostgresStore"]

WAIT_SECONDS = 300.0
"""How long a statement waits for a server that went away before the run fails."""


def redacted(url: str) -> str:
    """``url`` without its password, for messages (give the password in ``PGPASSWORD`` or ``~/.pgpass``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _placeholders(sql: str) -> str:
    return sql.replace("?", "%s")


class PostgresStore(SqlStore):
    """The durable store in a PostgreSQL database (``--db postgresql://USER@HOST/DB``)."""

    def __init__(self, url: str, *, wait: float = WAIT_SECONDS, connect_timeout: float = 10.0) -> None:
        super().__init__()
        import psycopg

        self._psycopg = psycopg
        self.url, self.path, self.wait = url, redacted(url), wait
        self._timeout = connect_timeout
        self._sql: dict[str, str] = {}
        try:
            self._conn = self._connect()
        except psycopg.Error as exc:
            raise InputError(f"cannot connect to the run store: {str(exc).strip()}", where=self.path,
                             hint="start the PostgreSQL server, or check the URL given to --db") from None
        try:
            self._transaction(lambda run: self._create(run, schema("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")),
                              lock="petriflow:schema")
        except psycopg.Error as exc:
            raise InputError(f"cannot use the run store: {str(exc).strip()}", where=self.path,
                             hint="the --db user must be able to create tables in the database") from None

    def _connect(self) -> Any:
        return self._psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, round(self._timeout)))

    def _prepared(self, sql: str) -> str:
        if (text := self._sql.get(sql)) is None:
            text = self._sql[sql] = _placeholders(sql)
        return text

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """``attempt``, run again on a new connection while the server is away, for up to ``wait`` seconds."""
        deadline, pause = time.monotonic() + self.wait, 0.05
        while True:
            try:
                return attempt()
            except (self._psycopg.OperationalError, self._psycopg.InterfaceError) as exc:
                if not self._conn.closed and not self._conn.broken:
                    raise  # the statement failed, not the connection
                problem = str(exc).strip()
            while True:
                if time.monotonic() > deadline:
                    raise ExecutionError(f"the run store was unreachable for {self.wait:.0f} s: {problem}",
                                         where=str(self.path), hint="start the PostgreSQL server, then --resume the run")
                time.sleep(pause)
                pause = min(0.5, pause * 2)
                try:
                    self._conn = self._connect()
                    break
                except self._psycopg.OperationalError as exc:
                    problem = str(exc).strip()

    def _execute(self, sql: str, args: Sequence[Any] = (), *, many: bool = False) -> Result:
        text = self._prepared(sql)

        def attempt() -> Result:
            with self._lock, self._conn.cursor() as cur:
                if many:
                    with self._conn.transaction():
                        cur.executemany(text, args)
                    return Result([], cur.rowcount)
                cur.execute(text, args)
                return Result(cur.fetchall() if cur.description else [], cur.rowcount)

        return self._retrying(attempt)

    def _transaction(self, work: Callable[[Exec], T], *, lock: str | None = None) -> T:
        """One transaction; ``lock`` is an advisory lock on its name, held until the commit."""
        def attempt() -> T:
            with self._lock, self._conn.transaction(), self._conn.cursor() as cur:
                def run(sql: str, args: Sequence[Any]) -> Result:
                    cur.execute(self._prepared(sql), args)
                    return Result(cur.fetchall() if cur.description else [], cur.rowcount)

                if lock is not None:
                    run("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (lock,))
                return work(run)

        return self._retrying(attempt)

    def _columns(self, table: str) -> set[str]:
        with self._conn.cursor() as cur:
            cur.execute("SELECT column_name FROM information_schema.columns WHERE table_name=%s "
                        "AND table_schema=current_schema()", (table,))
            return {str(r[0]) for r in cur.fetchall()}

    def close(self) -> None:
        self._conn.close()
