"""A private PostgreSQL server for the tests: ``initdb`` in a temporary directory, a Unix socket only.

The server listens on no TCP port (``listen_addresses=''``), only on a socket
in its own directory, so it can reach and be reached by nothing else. initdb
refuses to run as root, so as root (CI) the server runs as ``nobody``, which
owns the directory; trust authentication is safe because only the socket
exists, and it lives in that directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

__all__ = ["PgServer", "missing"]

_BIN = Path("/usr/lib/postgresql/15/bin")


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    return found or (str(_BIN / name) if (_BIN / name).is_file() else None)


def missing() -> str | None:
    """Why no private server can be started here, or None."""
    absent = [t for t in ("initdb", "pg_ctl") if _tool(t) is None]
    if absent:
        return f"PostgreSQL binaries not found: {', '.join(absent)} (apt-get install postgresql)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    return None


class PgServer:
    """One server: :meth:`start`, :meth:`restart`, :meth:`stop`; :meth:`database` makes a fresh database's URL."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pf-pg-", dir="/tmp"))  # short: a socket path has 107 bytes
        self.data, self.log = self.dir / "data", self.dir / "log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "nobody")
            self._as = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
        self._pg(_tool("initdb") or "initdb", "-D", str(self.data), "-U", "petriflow", "--auth=trust", "-E", "UTF8",
                 "--no-sync")

    def _pg(self, *args: str) -> None:
        out = subprocess.run([*self._as, *args], capture_output=True, text=True, cwd=self.dir, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {out.stderr or out.stdout}")

    def _ctl(self, *args: str) -> None:
        self._pg(_tool("pg_ctl") or "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", *args)

    def start(self) -> PgServer:
        self._ctl("-o", f"-c listen_addresses='' -c unix_socket_directories={self.dir} -c max_connections=200",
                  "start")
        return self

    def restart(self) -> None:
        """Stop (dropping every connection) and start again on the same socket."""
        self._ctl("-m", "fast", "restart")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://petriflow@/{db}?host={self.dir}"

    def database(self) -> str:
        """A new empty database on this server and its URL (each test gets its own)."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
