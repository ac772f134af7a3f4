"""Run ownership: one process drives a run at a time, through a lease in the checkpoint store.

Two processes that both resume one run would both redo every unfinished
case (paying each call twice and writing each trace record twice), so a
driver first takes the run's *lease*: a row naming its owner
(``host:pid:nonce``) and when the lease expires. The owner renews it every
third of its time to live; a second driver finds a live lease and is refused
(exit 2, naming the owner). A crashed owner stops renewing, so its lease
expires and the next driver takes it over; on the same host a successor does
not wait for the expiry when the owner's process is gone (``kill -9``),
which is what makes an immediate ``--resume`` after a crash work. Taking the
lease is one ``BEGIN IMMEDIATE`` transaction, so of two resumers racing,
exactly one wins.

An owner that finds at a renewal that its lease was taken over (it was
paused for longer than the lease lives) stops driving the run at once.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from petriflow.errors import ExecutionError, InputError

__all__ = ["LEASE_SECONDS", "Leases", "owner_alive", "owner_id"]

LEASE_SECONDS = 30.0


class LeaseStore(Protocol):
    """What ownership needs of a store: take, renew and give back a run's lease."""

    def acquire_lease(self, run_id: str, owner: str, ttl: float) -> str | None: ...
    def renew_lease(self, run_id: str, owner: str, ttl: float) -> bool: ...
    def release_lease(self, run_id: str, owner: str) -> None: ...


def owner_id() -> str:
    """This process's owner name: ``host:pid:nonce`` (the nonce tells two executors of one process apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_alive(owner: str) -> bool:
    """False only when ``owner`` ran on this host and its process is gone; otherwise its lease's expiry decides."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe(owner: str) -> str:
    """An owner as people read it: ``process 1234 on host``."""
    host, _, rest = owner.partition(":")
    return f"process {rest.partition(':')[0]} on {host}"


class Leases:
    """The leases one executor holds, counted so that concurrent calls for one run share one lease."""

    def __init__(self, store: LeaseStore, *, ttl: float = LEASE_SECONDS) -> None:
        self.store, self.ttl, self.owner = store, ttl, owner_id()
        self._held: dict[str, int] = {}
        self._beats: dict[str, asyncio.Task[None]] = {}
        self._drivers: dict[str, set[asyncio.Task[object]]] = {}

    @asynccontextmanager
    async def hold(self, run_id: str) -> AsyncIterator[None]:
        """Own ``run_id`` for the block: refused with :class:`InputError` (exit 2) while another owner holds it."""
        task = asyncio.current_task()
        if self._held.get(run_id, 0) == 0:
            holder = self.store.acquire_lease(run_id, self.owner, self.ttl)
            if holder is not None:
                raise InputError(f"run '{run_id}' is being driven by {describe(holder)}",
                                 hint="wait until it ends or stop that process; a crashed driver's lease is "
                                      f"taken over when its process is gone or after {self.ttl:.0f} s")
            self._beats[run_id] = asyncio.create_task(self._beat(run_id))
        self._held[run_id] = self._held.get(run_id, 0) + 1
        if task is not None:
            self._drivers.setdefault(run_id, set()).add(task)
        try:
            yield
        except asyncio.CancelledError:
            beat = self._beats.get(run_id)
            if beat is not None and beat.done() and not beat.cancelled():
                raise ExecutionError(f"run '{run_id}' was taken over by another driver while this one was paused",
                                     hint="petriflow runs show RUN tells what it finished") from None
            raise
        finally:
            if task is not None:
                self._drivers.get(run_id, set()).discard(task)
            self._held[run_id] -= 1
            if self._held[run_id] == 0:
                del self._held[run_id]
                self._beats.pop(run_id).cancel()
                self.store.release_lease(run_id, self.owner)

    async def _beat(self, run_id: str) -> None:
        """Renew the lease every third of its life; when it was lost, stop every task driving the run."""
        while True:
            await asyncio.sleep(self.ttl / 3)
            if not self.store.renew_lease(run_id, self.owner, self.ttl):
                for t in self._drivers.get(run_id, set()):
                    t.cancel()
                return
