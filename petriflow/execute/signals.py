"""What a run's driver and the people watching it tell each other through the store, besides outputs.

Two small typed tables beside the checkpoint store's own, in the same
database, so another process (the console, ``petriflow answer``) sees them:

* ``escalations``: a person asked that a waiting human step be escalated
  now. The step's wait (:meth:`~petriflow.execute.tools.KindRunner._human`)
  sees it at its next poll and ends exactly as when its deadline passes
  (:class:`~petriflow.errors.Escalated` is a ``TimeoutError``), so the step's
  ``fallback`` takes over, or its ``on_failure`` handler, by the one rule
  :func:`petriflow.rules.after_failure` applies to every timeout.
* ``queued``: an attempt that waits for a resource's units or a rate
  permit (:meth:`~petriflow.execute.policies.StepPolicies.acquire`), from
  when it starts waiting until it holds them; the live net reads these
  rows instead of guessing from capacities.

A :class:`~petriflow.execute.store.MemoryStore` keeps the same rows in
dicts. The tables are made on first use, so a store written before they
existed reads as having none.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Any

__all__ = ["Queued", "clear_queued", "escalate", "escalated", "queued", "set_queued"]

_TABLES = (
    "CREATE TABLE IF NOT EXISTS escalations (run_id TEXT, ncase INTEGER, step TEXT, npass INTEGER, "
    "asked DOUBLE PRECISION, PRIMARY KEY (run_id, ncase, step, npass))",
    "CREATE TABLE IF NOT EXISTS queued (run_id TEXT, ncase INTEGER, key TEXT, step TEXT, resource TEXT, "
    "since DOUBLE PRECISION, PRIMARY KEY (run_id, ncase, key))",
)


@dataclass(frozen=True)
class Queued:
    """An attempt of ``step`` (its execution ``key``) in ``case`` waiting for ``resource`` since ``since``."""

    run_id: str
    case: int
    key: str
    step: str
    resource: str
    since: float


class _Memory:
    """The rows of a store without SQL."""

    def __init__(self) -> None:
        self.escalations: dict[tuple[str, int, str, int], float] = {}
        self.queued: dict[tuple[str, int, str], Queued] = {}


_memory: weakref.WeakKeyDictionary[Any, _Memory] = weakref.WeakKeyDictionary()
_made: weakref.WeakSet[Any] = weakref.WeakSet()


def _sql(store: Any) -> bool:
    """Whether ``store`` is an SQL store (its tables made now if they are not there yet)."""
    if not getattr(store, "durable", False):
        return False
    if store not in _made:
        for sql in _TABLES:
            store._w(sql)
        _made.add(store)
    return True


def _mem(store: Any) -> _Memory:
    rows = _memory.get(store)
    if rows is None:
        rows = _memory[store] = _Memory()
    return rows


def escalate(store: Any, run_id: str, case: int, step: str, npass: int) -> bool:
    """Ask that the waiting step be escalated now; False when it was asked already (recorded once)."""
    if _sql(store):
        return bool(store._w("INSERT INTO escalations VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
                             (run_id, case, step, npass, time.time())))
    rows = _mem(store).escalations
    if (run_id, case, step, npass) in rows:
        return False
    rows[(run_id, case, step, npass)] = time.time()
    return True


def escalated(store: Any, run_id: str, case: int, step: str, npass: int) -> bool:
    """Whether someone asked that this wait be escalated."""
    if _sql(store):
        return bool(store._q("SELECT 1 FROM escalations WHERE run_id=? AND ncase=? AND step=? AND npass=?",
                             (run_id, case, step, npass)))
    return (run_id, case, step, npass) in _mem(store).escalations


def set_queued(store: Any, run_id: str, case: int, key: str, step: str, resource: str) -> None:
    """Record that the attempt ``key`` waits for ``resource`` (until :func:`clear_queued`)."""
    if _sql(store):
        store._w("INSERT INTO queued VALUES (?,?,?,?,?,?) ON CONFLICT (run_id, ncase, key) DO UPDATE SET "
                 "resource=excluded.resource", (run_id, case, key, step, resource, time.time()))
        return
    _mem(store).queued.setdefault((run_id, case, key), Queued(run_id, case, key, step, resource, time.time()))


def clear_queued(store: Any, run_id: str, case: int, key: str) -> None:
    """The attempt holds what it waited for (or was cancelled while waiting)."""
    if _sql(store):
        store._w("DELETE FROM queued WHERE run_id=? AND ncase=? AND key=?", (run_id, case, key))
        return
    _mem(store).queued.pop((run_id, case, key), None)


def queued(store: Any, run_id: str) -> list[Queued]:
    """The run's attempts waiting for a resource now, longest waiting first."""
    if _sql(store):
        rows = store._q("SELECT run_id, ncase, key, step, resource, since FROM queued WHERE run_id=? ORDER BY since",
                        (run_id,))
        return [Queued(str(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4]), float(r[5])) for r in rows]
    return sorted((q for q in _mem(store).queued.values() if q.run_id == run_id), key=lambda q: q.since)
