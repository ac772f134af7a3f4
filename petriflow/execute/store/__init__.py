"""Checkpoint stores: every step output is committed before any downstream step sees it.

A step's output is keyed by ``(run_id, case, key)`` where ``key`` is
``STEP#OCCURRENCE`` (``#2`` is the second pass of a loop) and
``STEP#OCCURRENCE/ITEM`` for one item of a map, so a resumed run finds
exactly the outputs of the executions it already made. Human answers and
tool results (by idempotency key) live in the same store, so another process
(``petriflow run --answer``) can answer a waiting step.

:func:`open_store` picks the store from what ``--db`` says: a path or
``sqlite:///PATH`` is :class:`SqliteStore`, ``postgresql://...`` is
:class:`PostgresStore` (one store for workers on several machines).
"""

from __future__ import annotations

from pathlib import Path

from petriflow.execute.store.base import (
    CaseRow,
    Checkpoint,
    MemoryStore,
    Queued,
    RunRow,
    RunStore,
    RunTotals,
    Waiting,
    output_json,
)
from petriflow.execute.store.postgres import PostgresStore
from petriflow.execute.store.sqlite import SqliteStore

__all__ = ["CaseRow", "Checkpoint", "MemoryStore", "PostgresStore", "Queued", "RunRow", "RunStore", "RunTotals",
           "SqliteStore", "Waiting", "is_url", "open_store", "output_json"]

_POSTGRES = ("postgresql://", "postgres://")
_SQLITE = "sqlite:///"


def is_url(db: str | Path) -> bool:
    """Whether ``--db`` names a database server rather than a file."""
    return str(db).startswith(_POSTGRES)


def open_store(db: str | Path | None) -> MemoryStore:
    """The store ``db`` names: in memory for None, PostgreSQL for a ``postgresql://`` URL, else an SQLite file.

    ``sqlite:///runs.sqlite`` is the file ``runs.sqlite`` and ``sqlite:////tmp/r.sqlite`` the absolute
    ``/tmp/r.sqlite``, as in SQLAlchemy's URLs.
    """
    if db is None:
        return MemoryStore()
    text = str(db)
    if text.startswith(_POSTGRES):
        return PostgresStore(text)
    return SqliteStore(text[len(_SQLITE):] if text.startswith(_SQLITE) else db)
