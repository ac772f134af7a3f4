"""The ``petriflow`` command: a thin click shell over the public API.

Exit codes: 0 every check holds (or the command did its job), 1 a property
fails or a run failed, 2 bad input (one line on stderr, no traceback),
3 a budget was exceeded.

Each stage's commands live in a module of this package and are imported
here by name: :mod:`~petriflow.cli.verify` (check, schema, lower, draw),
:mod:`~petriflow.cli.simulate` (simulate, fit, sweep),
:mod:`~petriflow.cli.run` (run), :mod:`~petriflow.cli.runs` (runs, answer),
:mod:`~petriflow.cli.models` (models), :mod:`~petriflow.cli.ui` (ui), :mod:`~petriflow.cli.generate` (generate, and the gate
behind ``check --catalog`` and ``run --catalog``) and :mod:`~petriflow.cli.support` (support: the engine).
Each imports its stage only when the command runs, so ``petriflow --help``
stays fast.
"""

from __future__ import annotations

import io
import os
import sys

import click

from petriflow.cli import generate, models, run, runs, simulate, support, ui, verify
from petriflow.cli.verify import load_net
from petriflow.errors import PetriflowError, printable

__all__ = ["cli", "load_net", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="petriflow")
def cli() -> None:
    """Verify, simulate and run multi-model AI workflows as Petri nets.

    PATH is a workflow (.yaml, .yml, .json) or a Petri net (.pnml).
    """


for _module in (verify, simulate, run, runs, models, generate, support, ui):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning every petriflow error into one line and an exit code."""
    try:
        cli.main(args=argv, prog_name="petriflow", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        shown = io.StringIO()  # click repeats the user's arguments: print them as escaped as our own messages
        err.show(file=shown)
        for line in shown.getvalue().splitlines():
            click.echo(printable(line), err=True)
        sys.exit(2 if err.exit_code in (1, 2) else err.exit_code)
    except PetriflowError as err:
        from petriflow.execute.redact import redact

        click.echo(f"petriflow: error: {redact(str(err))}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except MemoryError:  # a stage without its own estimate ran out: still one line, and what to do
        click.echo("petriflow: error: out of memory (hint: `check --max-memory MB` refuses each stage before it "
                   "allocates past MB; or split the workflow)", err=True)
        sys.exit(2)
    except Exception as err:  # a bug: still one line, the traceback only on request
        if os.environ.get("PETRIFLOW_DEBUG"):
            raise
        click.echo(printable(f"petriflow: internal error: {type(err).__name__}: {err} "
                             "(please report it; PETRIFLOW_DEBUG=1 shows the traceback)"), err=True)
        sys.exit(70)


if __name__ == "__main__":
    main()
