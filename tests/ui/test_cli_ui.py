"""``petriflow ui`` refuses bad input with one line and exit 2, before it prints a URL."""

from __future__ import annotations

import socket
from pathlib import Path

from petriflow.execute.store import SqliteStore
from tests.ui.harness import petriflow


def test_no_store_is_one_line_and_exit_2(tmp_path: Path) -> None:
    res = petriflow("ui", "--db", str(tmp_path / "nope.sqlite"))
    assert res.returncode == 2 and "no checkpoint store at" in res.stderr and "--db" in res.stderr
    assert "Traceback" not in res.stderr and "token=" not in res.stderr


def test_a_taken_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    SqliteStore(db).close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = petriflow("ui", "--db", str(db), "--port", str(port))
    assert res.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in res.stderr and "--port" in res.stderr
    assert "Traceback" not in res.stderr and "token=" not in res.stderr
