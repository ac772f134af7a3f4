"""Serving the console: uvicorn on 127.0.0.1, one access token printed once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from petriflow.errors import InputError
from petriflow.execute.store import SqliteStore
from petriflow.ui.auth import new_token

__all__ = ["serve"]


def _check_port(host: str, port: int) -> None:
    """One clear line when the port is taken (else uvicorn prints its own error after the URL was shown)."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
            s.bind((host, port))
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                         hint="pass --port a free port (another petriflow ui may be running)") from None


def serve(db: str | Path, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
          say: Callable[[str], None] = print) -> None:
    """Serve the console over the store at ``db`` until interrupted; ``say`` gets the URL with the token."""
    import uvicorn

    from petriflow.ui.app import make_app

    path = Path(db)
    if not path.is_file():
        raise InputError(f"no checkpoint store at {path}", hint="pass --db the store your runs used")
    _check_port(host, port)
    store = SqliteStore(path)
    token = token or new_token()
    local = host in ("127.0.0.1", "localhost", "::1")
    hosts = (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}") if local else ()
    app = make_app(store, token=token, hosts=hosts)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            server_header=False, lifespan="off")
    server = uvicorn.Server(config)
    shown = "127.0.0.1" if local else host
    say(f"petriflow ui: {path} at http://{shown}:{port}/?token={token}")
    say("open that URL once (it sets a cookie); Ctrl-C stops the console")
    try:
        server.run()
    finally:
        store.close()
