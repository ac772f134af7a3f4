"""``petriflow ui``: the local web console over a checkpoint store (see docs/ui.md)."""

from __future__ import annotations

import click

__all__ = ["COMMANDS", "ui"]


@click.command("ui")
@click.option("--db", "db_path", metavar="FILE.sqlite", type=click.Path(dir_okay=False),
              help="Checkpoint store [default: $PETRIFLOW_HOME/runs.sqlite].")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True, help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback lets other machines try the token.")
def ui(db_path: str | None, port: int, host: str) -> None:
    """Serve the web console: review queue, runs, the live net, predicted vs measured, /metrics.

    Prints one URL with an access token; opening it sets a cookie, and every
    request without it is refused.
    """
    from petriflow.cli.runs import default_db
    from petriflow.ui.server import serve

    serve(db_path or default_db(), host=host, port=port, say=lambda line: click.echo(line, err=True))


COMMANDS = [ui]
