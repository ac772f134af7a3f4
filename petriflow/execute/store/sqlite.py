"""The store on one machine: one SQLite file in WAL mode.

``synchronous=NORMAL`` makes a commit survive ``kill -9`` of the process
(the WAL is in the OS's page cache; only a power cut could lose the last
commits) at tens of microseconds per commit. Each write is its own
transaction; a transaction of several writes is ``BEGIN IMMEDIATE``, which
takes the file's write lock first, so two processes racing for a lease
serialise on it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from petriflow.errors import InputError
from petriflow.execute.store.sql import Exec, Result, SqlStore, T, schema
from petriflow.limits import failing, open_database

__all__ = ["SqliteStore"]


class SqliteStore(SqlStore):
    """The durable store in one SQLite file (``--db FILE.sqlite`` or ``--db sqlite:///FILE``)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._db = open_database(self.path, what="checkpoint store", isolation_level=None, check_same_thread=False,
                                 timeout=30, fail=failing(InputError, str(path)))
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._transaction(lambda run: self._create(run, schema("INTEGER PRIMARY KEY AUTOINCREMENT")))
            self._db.execute("DELETE FROM leases WHERE 0")  # a read-only store is found now, not at a checkpoint
        except sqlite3.DatabaseError as exc:
            if "readonly" in str(exc) or "read-only" in str(exc):
                raise InputError("the checkpoint store is read-only: a run must write its checkpoints",
                                 where=str(path), hint="make the file and its directory writable, or pass --db "
                                                       "a writable file") from None
            raise InputError(f"cannot open the checkpoint store: {exc}", where=str(path),
                             hint="pass --db a new file or a petriflow store") from None

    def _execute(self, sql: str, args: Sequence[Any] = (), *, many: bool = False) -> Result:
        if many:
            return self._transaction(lambda _: Result([], self._db.executemany(sql, args).rowcount))
        return self._run(sql, args)  # autocommit: one transaction per statement

    def _run(self, sql: str, args: Sequence[Any]) -> Result:
        cur = self._db.execute(sql, args)
        return Result(cur.fetchall() if cur.description else [], cur.rowcount)

    def _transaction(self, work: Callable[[Exec], T], *, lock: str | None = None) -> T:
        """``BEGIN IMMEDIATE``: the file's write lock is the lock, whatever ``lock`` names."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                out = work(self._run)
                self._db.execute("COMMIT")
                return out
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _columns(self, table: str) -> set[str]:
        return {str(row[1]) for row in self._db.execute(f"PRAGMA table_info({table})")}

    def close(self) -> None:
        self._db.close()
