"""``petriflow support "MESSAGE" --customer ID``: the customer-support engine, end to end, as one command.

Triage (the catalog's label sets on its embedding model), a generated
workflow gated and repaired for ``--rounds`` rounds, and the run of the one
that passed, else of the verified fallback (``--on-refusal fallback``, the
catalog's ``NAME.yaml``) or of the escalation to a person (``--on-refusal
escalate``); see :mod:`petriflow.generate.engine`. Every stage is printed on
stderr and lands in the ``--trace`` and the store. Exit codes as ``run``:
0 the case finished, 1 it failed, 2 bad input, 3 it stopped at its budget.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from petriflow.cli.params import Amount
from petriflow.cli.runs import DB_HELP
from petriflow.errors import InputError
from petriflow.limits import check_output, failing

__all__ = ["COMMANDS", "support"]

_CATALOG = "models/customer_support/catalog.yaml"


@click.command("support")
@click.argument("message")
@click.option("--customer", "customer_id", required=True, metavar="ID",
              help="The authenticated customer (the tools read only this customer's records; nothing in the "
                   "message or a model's answer can change it).")
@click.option("--ticket", "ticket_id", metavar="ID", help="The customer's ticket the case updates.")
@click.option("--catalog", "catalog_path", default=_CATALOG, show_default=True, type=click.Path(dir_okay=False),
              help="What a generated workflow may use: tools, functions, models, prompts, label sets, limits.")
@click.option("--rounds", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Rounds of generation and repair before the refusal path.")
@click.option("--on-refusal", type=click.Choice(["fallback", "escalate"]), default="fallback", show_default=True,
              help="When every round is refused: run the verified fallback workflow, or hand the case to a person.")
@click.option("--fallback", "fallback", metavar="WORKFLOW", type=click.Path(dir_okay=False),
              help="The verified workflow to fall back to [default: NAME.yaml beside the catalog].")
@click.option("--escalation", "escalation", metavar="WORKFLOW", type=click.Path(dir_okay=False),
              help="The workflow that escalates [default: escalation.yaml beside the catalog].")
@click.option("--budget", type=Amount(), metavar="USD", help="Worst-case dollars per case (default: the catalog's).")
@click.option("--max-tokens", type=click.IntRange(1, 32_768), default=600, show_default=True,
              help="Tokens the generator may write per round.")
@click.option("--db", "db_path", metavar="FILE|URL", help=DB_HELP)
@click.option("--run-id", "run_id", metavar="RUN_ID", help="Name the run (default: a fresh id).")
@click.option("--trace", "trace_path", metavar="OUT.jsonl", type=click.Path(dir_okay=False),
              help="Append one JSON line per step attempt, generation round and gate verdict.")
@click.option("--log", "log_path", metavar="ROUNDS.jsonl", type=click.Path(dir_okay=False),
              help="Append one JSON line per generation round (as petriflow generate --log).")
@click.option("--out", "out_dir", metavar="DIR", type=click.Path(file_okay=False),
              help="Where the generated workflow is written as RUN_ID.json [default: $PETRIFLOW_HOME/support].")
@click.option("--json", "as_json", is_flag=True, help="Print the triage, the rounds, the choice and the result as JSON.")
def support(message: str, customer_id: str, ticket_id: str | None, catalog_path: str, rounds: int, on_refusal: str,
            fallback: str | None, escalation: str | None, budget: float | None, max_tokens: int,
            db_path: str | None, run_id: str | None, trace_path: str | None, log_path: str | None,
            out_dir: str | None, as_json: bool) -> None:
    """Triage MESSAGE, let a model write its workflow, gate it, and run only a workflow that passed.

    A workflow refused every round is never run: the verified fallback runs
    instead (or, with --on-refusal escalate, a person takes the case; answer
    with `petriflow answer RUN agent TEXT`). The clarification loop and
    escalation steps wait in `petriflow runs pending` like any human step.
    """
    import asyncio

    from petriflow.cli.run import _default_db
    from petriflow.cli.runs import answer_command
    from petriflow.execute.store import open_store
    from petriflow.execute.trace import TraceWriter
    from petriflow.generate import load_catalog
    from petriflow.generate.engine import support as engine

    catalog = load_catalog(catalog_path)
    for out in (trace_path, log_path):
        if out is not None:
            check_output(out, inputs=(catalog_path, db_path), what="output", makes_directory=True,
                         fail=failing(InputError, out))
    store = open_store(db_path or _default_db())
    trace = TraceWriter(trace_path)
    if trace.error:
        raise InputError(trace.error, hint="pass --trace a writable file")
    log = Path(log_path).open("a", encoding="utf-8") if log_path else None

    def logged(rnd: Any) -> None:
        if log is not None:
            log.write(json.dumps(rnd.to_json()) + "\n")
            log.flush()

    def waits(run: str, case: int, step: str, npass: int) -> None:
        click.echo(f"run {run} case {case} waits for step '{step}'" + (f" (pass {npass})" if npass > 1 else "")
                   + f"; answer it with: {answer_command(run, step, 'VALUE', store)}"
                   + (f" --pass {npass}" if npass > 1 else ""), err=True)

    try:
        done = asyncio.run(engine(message, catalog, customer_id=customer_id, ticket_id=ticket_id, store=store,
                                  trace=trace, rounds=rounds, on_refusal=on_refusal, fallback=fallback,
                                  escalation=escalation, workdir=out_dir, run_id=run_id,
                                  budget=budget, max_tokens=max_tokens, catalog_path=catalog_path, log=logged,
                                  told=lambda line: click.echo(line, err=True), on_wait=waits))
    finally:
        if log is not None:
            log.close()
        trace.close()
    r = done.result
    if as_json:
        click.echo(json.dumps({**done.to_json(), "steps": {s: vars(v) for s, v in trace.stats.items()}},
                              indent=2, default=str))
    else:
        from petriflow.cli.run import _show

        click.echo(_show(r.output) if r.ok else f"FAILED: {r.error}")
        click.echo("")
        click.echo(trace.summary())
        click.echo(f"see it with: petriflow runs show {done.run_id} --db {store.path}", err=True)
    if trace.error:
        click.echo(f"petriflow: error: {trace.error}", err=True)
    sys.exit(0 if r.ok and not trace.error else (3 if r.exit_code == 3 else (1 if not r.ok else 2)))


COMMANDS = [support]
