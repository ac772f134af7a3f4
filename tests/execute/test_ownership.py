"""Run ownership (issue 11 item 1): one driver per run, a crashed driver's lease is taken over.

Every test runs on both durable stores (SQLite, PostgreSQL). Each test sets
the lease row by hand as another owner would have left it, so no test waits
for a clock: a live owner on this host (this test process
under another nonce), a gone one (a child process that has exited), and one
on another host whose lease has or has not expired.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from petriflow.errors import ExecutionError, InputError
from petriflow.execute import Executor, plan
from petriflow.execute.ownership import Leases
from petriflow.execute.store import open_store
from petriflow.spec import WorkflowBuilder

HOST = socket.gethostname()


def _dag() -> object:
    wf = (WorkflowBuilder("own")
          .step("a", kind="python", function="petriflow.execute.builtins:scripted",
                config={"kwargs": {"key": f"own{time.time_ns()}", "script": ["x"]}})
          .build())
    return plan(wf)


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(proc.stdout)


def _set_lease(store: object, owner: str, expires_in: float) -> None:
    """Write the lease row as another driver would have (the stores' shared SQL, so on either)."""
    store._w("INSERT INTO leases VALUES (?,?,?) ON CONFLICT (run_id) DO UPDATE SET owner=excluded.owner, "  # type: ignore[attr-defined]
             "expires=excluded.expires", ("R", owner, time.time() + expires_in))


def _resume_with_lease(db: str, owner: str, expires_in: float) -> list[object]:
    store = open_store(db)
    store.create_run("R", workflow="w")
    store.add_case("R", 0, "q")
    _set_lease(store, owner, expires_in)
    return asyncio.run(Executor(_dag(), store=store).resume("R"))  # type: ignore[arg-type]


def test_a_second_driver_is_refused_and_named(store_url: str) -> None:
    with pytest.raises(InputError, match=rf"run 'R' is being driven by process {os.getpid()} on {HOST}"):
        _resume_with_lease(store_url, f"{HOST}:{os.getpid()}:other", 30)


def test_a_live_lease_on_another_host_is_refused_until_it_expires(store_url: str) -> None:
    with pytest.raises(InputError, match="process 1 on elsewhere"):
        _resume_with_lease(store_url, "elsewhere:1:n", 30)
    assert _resume_with_lease(store_url, "elsewhere:1:n", -1)[0].ok  # type: ignore[attr-defined]


def test_a_crashed_owners_lease_is_taken_over_at_once_and_released_at_the_end(store_url: str) -> None:
    assert _resume_with_lease(store_url, f"{HOST}:{_dead_pid()}:n", 30)[0].ok  # type: ignore[attr-defined]
    assert open_store(store_url).lease("R") is None


def test_of_two_drivers_racing_exactly_one_takes_the_lease(store_url: str) -> None:
    open_store(store_url)
    barrier, won = threading.Barrier(8), []

    def grab(i: int) -> None:
        store = open_store(store_url)
        barrier.wait()
        if store.acquire_lease("R", f"{HOST}:{os.getpid()}:{i}", 30) is None:
            won.append(i)

    threads = [threading.Thread(target=grab, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1


def test_a_driver_whose_lease_was_taken_over_stops(store_url: str) -> None:
    store = open_store(store_url)
    leases = Leases(store, ttl=0.03)

    async def main() -> None:
        async with leases.hold("R"):
            _set_lease(store, "elsewhere:1:n", 30)  # a successor took it over
            await asyncio.sleep(30)

    with pytest.raises(ExecutionError, match="taken over by another driver"):
        asyncio.run(main())


def test_the_cli_refuses_a_second_driver_with_exit_2(store_url: str, tmp_path: Path) -> None:
    wf = tmp_path / "w.yaml"
    wf.write_text("name: w\nsteps:\n  - {id: a, kind: python, function: 'petriflow.execute.builtins:echo'}\n")
    store = open_store(store_url)
    store.create_run("R", workflow=str(wf))
    store.add_case("R", 0, "q")
    _set_lease(store, f"{HOST}:{os.getpid()}:x", 60)
    out = subprocess.run([sys.executable, "-m", "petriflow", "run", "--resume", "R", "--db", store_url],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.returncode == 2, out.stderr
    assert f"being driven by process {os.getpid()}" in out.stderr and "Traceback" not in out.stderr
