"""``petriflow runs list | show RUN | pending`` and ``petriflow answer RUN STEP [--pass N] VALUE``.

What a run did and what it waits for, read from the checkpoint store, so
nobody has to open the SQLite file by hand. ``answer`` checks the answer
against the run before storing it: the step must be a human step of the
run's workflow and the pass one it can reach, or the answer would wait
forever for a step that never asks (exit 2, with the steps that can be
answered).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from petriflow.errors import InputError

__all__ = ["COMMANDS", "DB_HELP", "answer", "answer_command", "default_db", "record_answer", "runs"]

DB_HELP = ("Checkpoint store: FILE.sqlite, sqlite:///FILE or postgresql://USER@HOST/DB "
           "[default: $PETRIFLOW_HOME/runs.sqlite].")
_DB = click.option("--db", "db_path", metavar="FILE|URL", help=DB_HELP)


def default_db() -> Path:
    """The store a run uses when no --db is given: ``$PETRIFLOW_HOME/runs.sqlite``."""
    from petriflow.execute.servers import home

    return home() / "runs.sqlite"


def _store(db_path: str | None) -> Any:
    from petriflow.execute.store import is_url, open_store

    if db_path and is_url(db_path):
        return open_store(db_path)
    path = Path(db_path.removeprefix("sqlite:///")) if db_path else default_db()
    if not path.is_file():
        raise InputError(f"no checkpoint store at {path}", hint="pass the --db the run used")
    return open_store(path)


def _run_row(store: Any, run_id: str) -> Any:
    from petriflow.execute.answers import run_row

    return run_row(store, run_id)


def _short(value: Any, width: int = 60) -> str:
    from petriflow.execute.answers import short

    return short(value, width)


def answer_command(run_id: str, step: str, value: str, store: Any) -> str:
    """The command line that answers ``step`` of ``run_id`` (what a waiting run prints)."""
    import shlex

    return f"petriflow answer {shlex.quote(run_id)} {shlex.quote(step)} {shlex.quote(value)} --db {store.path}"


@click.group("runs")
def runs() -> None:
    """The runs in a checkpoint store: list them, show one, list the human steps waiting."""


@runs.command("list")
@_DB
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_runs(db_path: str | None, as_json: bool) -> None:
    """Every run, newest first: status, cases done, who drives it."""
    store = _store(db_path)
    out = []
    for row in store.runs():
        cases = store.cases(row.run_id)
        lease = store.lease(row.run_id)
        out.append({"run_id": row.run_id, "workflow": row.workflow, "status": row.status,
                    "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.created)),
                    "cases": len(cases), "ok": sum(c.status == "ok" for c in cases),
                    "failed": sum(c.status == "failed" for c in cases),
                    "waiting": len(store.waiting(row.run_id)), "owner": lease[0] if lease else None})
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    for r in out:
        waiting = f", {r['waiting']} waiting" if r["waiting"] else ""
        click.echo(f"{r['run_id']}  {r['created']}  {r['status']:<8} {r['ok']}/{r['cases']} ok, {r['failed']} failed"
                   f"{waiting}  {_short(r['workflow'])}"
                   + (f"  (driven by {r['owner']})" if r["owner"] else ""))


@runs.command("show")
@click.argument("run_id")
@_DB
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(run_id: str, db_path: str | None, as_json: bool) -> None:
    """One run: each case's input, status, output or error, and every saved step output."""
    store = _store(db_path)
    row = _run_row(store, run_id)
    cases = [{"case": c.case, "input": c.input, "status": c.status, "output": c.output, "error": c.error,
              "steps": {k: cp.output for k, cp in sorted(store.load_steps(run_id, c.case).items())}}
             for c in store.cases(run_id)]
    if as_json:
        click.echo(json.dumps({"run_id": row.run_id, "workflow": row.workflow, "status": row.status,
                               "cases": cases}, indent=2, default=str))
        return
    click.echo(f"run {row.run_id}: {row.workflow}, {row.status}")
    for c in cases:
        click.echo(f"[{c['case']}] {c['status']}: {_short(c['input'])}")
        for key, out in c["steps"].items():
            click.echo(f"    {key}: {_short(out)}")
        if c["status"] == "ok":
            click.echo(f"    => {_short(c['output'])}")
        elif c["error"]:
            click.echo(f"    error: {_short(c['error'], 200)}")
    for w in store.waiting(run_id):
        click.echo(f"case {w.case} waits for step '{w.step}' (pass {w.npass}): "
                   f"{answer_command(run_id, w.step, 'VALUE', store)}" + (f" --pass {w.npass}" if w.npass > 1 else ""))


@runs.command("pending")
@click.argument("run_id", required=False)
@_DB
def pending(run_id: str | None, db_path: str | None) -> None:
    """The human steps waiting for an answer, and the command that answers each."""
    store = _store(db_path)
    if run_id is not None:
        _run_row(store, run_id)
    waits = store.waiting(run_id)
    if not waits:
        click.echo("nothing is waiting for an answer")
    for w in waits:
        click.echo(f"{w.run_id} case {w.case} step '{w.step}' pass {w.npass}, waiting since "
                   f"{time.strftime('%H:%M:%S', time.localtime(w.since))}: "
                   f"{answer_command(w.run_id, w.step, 'VALUE', store)}" + (f" --pass {w.npass}" if w.npass > 1 else ""))


def record_answer(store: Any, run_id: str, step: str, value: str, *, npass: int | None = 1,
                  case: int | None = None) -> str:
    """Check an answer against the run and store it (:func:`petriflow.execute.answers.record_answer`)."""
    from petriflow.execute.answers import record_answer as record

    return record(store, run_id, step, value, npass=npass, case=case)


@click.command("answer")
@click.argument("run_id")
@click.argument("step")
@click.argument("value", required=False)
@click.option("--pass", "npass", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="The loop pass to answer: pass N of a loop never reads another pass's answer.")
@click.option("--case", "case", type=int, metavar="K", help="The case to answer [default: every case].")
@click.option("--escalate", is_flag=True,
              help="Instead of answering, escalate the waiting step now: its fallback (or on_failure step) "
                   "takes over, exactly as when its timeout passes.")
@_DB
def answer(run_id: str, step: str, value: str | None, npass: int, case: int | None, escalate: bool,
           db_path: str | None) -> None:
    """Answer human step STEP of run RUN_ID with VALUE (a waiting run picks it up at once), or --escalate it."""
    if escalate == (value is not None):
        raise InputError("give an answer VALUE or --escalate, not both and not neither",
                         hint=f"petriflow answer {run_id} {step} VALUE, or petriflow answer {run_id} {step} --escalate")
    store = _store(db_path)
    if escalate:
        from petriflow.execute.answers import record_escalation

        click.echo(record_escalation(store, run_id, step, npass=npass, case=case))
        return
    assert value is not None
    click.echo(record_answer(store, run_id, step, value, npass=npass, case=case))


COMMANDS = [runs, answer]
