"""Real parts for the console's tests: `petriflow run` and `petriflow ui` as processes, Debian's chromium.

Nothing is faked: runs are real ``petriflow run`` processes writing a real
SQLite store, the console is the real ``petriflow ui`` command on a free
loopback port (its token read from the line it prints), and pages are
driven in Debian's ``/usr/bin/chromium`` through playwright, with a fresh
profile and every network feature that would phone out switched off.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "tests" / "data" / "ui" / "review_flow.yaml"
MODERATION = ROOT / "models" / "content_moderation"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None (dev.py installs chromium when it runs as root)."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        return "Debian's chromium is not installed (python3 dev.py test installs it when run as root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e .[dev])"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def petriflow(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "petriflow", *args], capture_output=True, text=True, cwd=cwd,
                          env=ENV, timeout=timeout)


def start_run(db: Path, run_id: str, *inputs: str, workflow: Path = WORKFLOW,
              env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A real run in the background; it waits at the review step until someone answers."""
    args = [a for text in inputs for a in ("--input", text)]
    return subprocess.Popen([sys.executable, "-m", "petriflow", "run", str(workflow), *args, "--run-id", run_id,
                             "--db", str(db)], cwd=ROOT, env={**ENV, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_waiting(db: Path, run_id: str, n: int, timeout: float = 300) -> None:
    """Until ``n`` cases of the run wait for a reviewer."""
    wait_for(db, lambda store: len(store.waiting(run_id)) >= n, f"run {run_id} never had {n} case(s) waiting",
             timeout)


def wait_for(db: Path, check: Callable[[Any], bool], what: str, timeout: float = 300) -> None:
    """Until ``check(store)`` holds for the store at ``db`` (once the run has made it); ``what`` says what never came."""
    from petriflow.execute.store import SqliteStore

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            store = SqliteStore(db)
            try:
                if check(store):
                    return
            finally:
                store.close()
        time.sleep(0.05)
    raise AssertionError(what)


@dataclass
class Console:
    url: str  # http://127.0.0.1:PORT
    token: str
    proc: subprocess.Popen[str]


@contextmanager
def console(db: Path) -> Iterator[Console]:
    """``petriflow ui --db DB`` on a free port; yields its address and the token it printed."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "petriflow", "ui", "--db", str(db), "--port", str(port)],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
        assert m, f"petriflow ui printed {line!r}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield Console(m.group(1), m.group(2), proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def browser() -> Iterator[Any]:
    """A fresh chromium context (its own profile directory), headless, nothing downloaded."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                    headless=True, viewport={"width": 1360, "height": 900})
        ctx.set_default_timeout(180_000)  # patience on a loaded machine; no assertion is about time
        try:
            yield ctx
        finally:
            ctx.close()


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def approved_run(db: Path, run_id: str, *inputs: str) -> None:
    """A real run of the review workflow, every case approved with ``petriflow answer`` once all wait; it exits 0."""
    run = start_run(db, run_id, *inputs)
    try:
        wait_waiting(db, run_id, len(inputs))
        said = petriflow("answer", run_id, "review", "approve", "--db", str(db))
        assert said.returncode == 0, said.stderr
        code, _, err = finish(run)
        assert code == 0, err
    finally:
        run.kill()
