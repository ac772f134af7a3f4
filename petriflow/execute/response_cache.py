"""A response cache keyed by the content of the request.

A repeated request (same endpoint, model and body, byte for byte once
canonicalised) is answered from the cache instead of the model: useful when
re-running a workflow while tuning the parts after a model step, and in tests.
:class:`MemoryCache` lives as long as the process; :class:`SqliteCache` is a
file (WAL) that runs and processes share.

    >>> from petriflow.errors import InputError
from petriflow.execute.servers import Endpoint
from petriflow.limits import failing, open_database
    >>> c = MemoryCache()
    >>> key = request_key(Endpoint(base_url="http://h/v1", model="m"), {"messages": []})
    >>> c.put(key, {"text": "hi"}); c.get(key)
    {'text': 'hi'}
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from petriflow.errors import InputError
from petriflow.execute.servers import Endpoint
from petriflow.limits import failing, open_database

__all__ = ["MemoryCache", "ResponseCache", "SqliteCache", "request_key"]



class ResponseCache(Protocol):
    """Where answers are kept by the hash of their request (see :func:`request_key`)."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...


class MemoryCache:
    """A dict, for one process."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self._data.get(key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._data[key] = value

    def __len__(self) -> int:
        return len(self._data)


class SqliteCache:
    """An SQLite file (WAL), shared by runs and processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        fail = failing(InputError, str(path))
        self._db = open_database(self.path, what="response cache", check_same_thread=False, timeout=30, fail=fail)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT, created REAL)")
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise fail(f"cannot open the response cache: {exc}", hint="pass --cache a new file") from None

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", (key, json.dumps(value), time.time()))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def request_key(endpoint: Endpoint, payload: Mapping[str, Any]) -> str:
    """SHA-256 of the request's content: endpoint, model and the canonical JSON of the body."""
    doc = {"base_url": endpoint.base_url.rstrip("/"), "model": endpoint.model, "payload": payload}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()
