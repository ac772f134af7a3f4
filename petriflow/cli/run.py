"""``petriflow run``: plan a workflow (refusing an unsound one) and run it on real models.

A thin shell over :mod:`petriflow.execute`: one case per ``--input`` or a batch
(``--inputs FILE.jsonl``, with a progress bar), checkpointed in SQLite (the
default store lives under ``$PETRIFLOW_HOME``) so that ``--resume RUN_ID``
finishes a run after a crash; ``--answer RUN_ID STEP TEXT`` answers a human
step of a waiting run. Exit codes: 0 every case succeeded, 1 a case failed,
2 bad input, 3 a case stopped at its budget.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import click

from petriflow.cli.params import Amount
from petriflow.cli.runs import DB_HELP
from petriflow.errors import InputError
from petriflow.limits import MAX_RECORDS_BYTES, check_output, failing, load_json, read_text

__all__ = ["COMMANDS", "run"]


def _default_db() -> Path:
    from petriflow.cli.runs import default_db

    return default_db()


def _read_inputs(path: str) -> list[Any]:
    from petriflow.execute.attachments import resolve_case

    values: list[Any] = []
    lines = read_text(path, what="inputs", max_bytes=MAX_RECORDS_BYTES, fail=failing(InputError, path)).splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        value = load_json(line, fail=failing(InputError, f"{path}:{n}"))
        if not isinstance(value, (str, dict)):
            raise InputError("each line must be a string or an object", where=f"{path}:{n}")
        values.append(resolve_case(value, where=f"{path}:{n}", base=Path(path).parent))
    if not values:
        raise InputError("no inputs", where=path, hint="put one JSON value per line")
    return values


_FIELD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)


def _cases(texts: tuple[str, ...]) -> list[Any]:
    """The cases ``--input`` options give: one question each, or one case of ``KEY=VALUE`` fields.

    A text is a field only when what comes before its first ``=`` is a
    plain name, so a question with spaces before an ``=`` stays a question;
    ``question=...`` says so explicitly for one that would not. ``KEY=@FILE``
    makes the field a file (an image for a chat prompt; see
    :mod:`petriflow.execute.attachments`), ``KEY=@@x`` the text ``@x``.
    """
    from petriflow.execute.attachments import resolve_case, shorthand

    fields: dict[str, Any] = {}
    plain: list[str] = []
    for t in texts:
        m = _FIELD.fullmatch(t)
        if m is None:
            plain.append(t)
            continue
        key, value = m.groups()
        if key in fields:
            raise InputError(f"--input sets field '{key}' twice", hint="give each field once")
        fields[key] = shorthand(value)
    if not fields:
        return plain
    if len(plain) > 1 or (plain and "question" in fields):
        raise InputError("with KEY=VALUE fields, --input makes one case: give at most one plain question",
                         hint="write the question as --input question=TEXT, or use --inputs FILE.jsonl for many cases")
    if plain:
        fields["question"] = plain[0]
    return [resolve_case(fields, where="--input")]


def _show(value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("answer"), str):
        return str(value["answer"]) + (f"\n  [route: {value['route']}]" if value.get("route") else "")
    return value if isinstance(value, str) else json.dumps(value, default=str)


@click.command("run")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--input", "input_texts", metavar="TEXT|KEY=VALUE", multiple=True,
              help="TEXT: one case whose {question} is TEXT (repeat it for one case each). KEY=VALUE (KEY: "
                   "letters, digits, _): the case field {KEY}; then all --input options make one case, and a "
                   "TEXT among them is its question. KEY=@FILE: the field is that file (an image a chat "
                   "prompt's {KEY} sends as a content part). A question that looks like KEY=VALUE: "
                   "--input question='a=b'. A plain path is text: --input pdf=paper.pdf for the built-in PDF "
                   "loader (looked up next to the workflow file first).")
@click.option("--inputs", "inputs_path", metavar="FILE.jsonl", type=click.Path(dir_okay=False),
              help="A batch: one JSON string or object per line; a field {\"path\": FILE} or {\"url\": URL} "
                   "is a file (a relative FILE is read next to FILE.jsonl).")
@click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True,
              help="Cases in flight at once (resources still cap each model endpoint).")
@click.option("--trace", "trace_path", metavar="OUT.jsonl", type=click.Path(dir_okay=False),
              help="Append one JSON line per step attempt (what `petriflow fit` reads).")
@click.option("--db", "db_path", metavar="FILE|URL", help=DB_HELP)
@click.option("--resume", "resume_id", metavar="RUN_ID", help="Finish an interrupted run; nothing done is redone.")
@click.option("--run-id", "run_id", metavar="RUN_ID", help="Name the run (default: a fresh id).")
@click.option("--from-saved", "from_saved", is_flag=True,
              help="With --resume of a changed workflow: a new run from the saved outputs that still apply.")
@click.option("--answer", "answer", nargs=3, metavar="RUN_ID STEP TEXT",
              help="Answer a human step of a run (as `petriflow answer` does).")
@click.option("--budget", type=Amount(), metavar="DOLLARS",
              help="Per-case budget: a call that could exceed it is not made.")
@click.option("--cache", "cache_path", metavar="FILE.sqlite", type=click.Path(dir_okay=False),
              help="Answer repeated model requests from this response cache (keyed by the request's content).")
@click.option("--metrics", "metrics_path", metavar="OUT.prom", type=click.Path(dir_okay=False),
              help="Write per-step totals in Prometheus' text format when the run ends.")
@click.option("--catalog", "catalog_path", metavar="CATALOG.yaml", type=click.Path(dir_okay=False),
              help="Gate the workflow against this catalog first (petriflow generate's output); its tools "
                   "and models are the catalog's. A refusal exits 1 before anything runs.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: every case in this process. ray: a batch's cases spread over Ray workers "
                   "(the ray extra); give a --db every worker reaches (postgresql://... across machines).")
@click.option("--address", metavar="HOST:PORT", help="With --backend ray: the Ray cluster [default: $RAY_ADDRESS, "
                                                     "else a new local instance].")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="With --backend ray: worker processes, each running --concurrency cases at once.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def run(path: str | None, input_texts: tuple[str, ...], inputs_path: str | None, concurrency: int,
        trace_path: str | None, db_path: str | None, resume_id: str | None, run_id: str | None,
        answer: tuple[str, str, str] | None, budget: float | None, cache_path: str | None, metrics_path: str | None,
        as_json: bool, from_saved: bool = False, catalog_path: str | None = None, backend: str = "local",
        address: str | None = None, workers: int = 2) -> None:
    """Run the workflow at PATH on its models (local servers start when needed).

    The workflow is verified first: an unsound one is refused with the
    checker's witness. Every step output is checkpointed before any later
    step sees it, so `--resume RUN_ID` after a crash (kill -9 included) redoes
    no finished step.
    """
    from petriflow.execute.store import open_store

    store = open_store(db_path or _default_db())
    if answer:
        from petriflow.cli.runs import record_answer

        click.echo(record_answer(store, *answer))
        return
    if resume_id:
        row = store.get_run(resume_id)
        if row is None:
            raise InputError(f"no run '{resume_id}' in {store.path}", hint="pass the --db the run used")
        if path is None:
            from petriflow.execute.identity import workflow_file

            path = str(workflow_file(row.workflow, store, run_id=resume_id))
        if budget is None:
            budget = row.options.get("budget")
        trace_path = trace_path or row.options.get("trace")
        catalog_path = catalog_path or row.options.get("catalog")
    if path is None:
        raise InputError("no workflow given", hint="petriflow run WORKFLOW.yaml --input TEXT")
    if not resume_id and bool(input_texts) == (inputs_path is not None):
        raise InputError("give --input TEXT (once per case) or --inputs FILE.jsonl, not both and not neither")
    for flag, out in (("--trace", trace_path), ("--metrics", metrics_path)):
        if out is not None:
            check_output(out, inputs=(path, inputs_path, db_path, cache_path), what=flag[2:], makes_directory=True,
                         fail=failing(InputError, flag))
    if from_saved and not resume_id:
        raise InputError("--from-saved goes with --resume RUN_ID", hint="petriflow run --resume RUN --from-saved")
    if backend == "ray" and (from_saved or cache_path):
        raise InputError("--backend ray runs a batch or its --resume; --from-saved and --cache are local only",
                         hint="leave out --backend ray")
    if backend == "local" and (address or workers != 2):
        raise InputError("--address and --workers go with --backend ray", hint="add --backend ray")
    values = _cases(input_texts) if input_texts else (_read_inputs(inputs_path) if inputs_path else [])
    from petriflow.execute.store import is_url

    db = str(db_path or _default_db())  # what every worker opens: a server's URL, or the one SQLite file by its full path
    ray = {"db": db if is_url(db) else str(Path(db.removeprefix("sqlite:///")).resolve()), "address": address,
           "workers": workers} if backend == "ray" else None
    sys.exit(_execute(path, values, store=store, concurrency=concurrency, trace_path=trace_path,
                      resume_id=resume_id, run_id=run_id, budget=budget, as_json=as_json, cache_path=cache_path,
                      metrics_path=metrics_path, from_saved=from_saved, catalog_path=catalog_path, ray=ray))


def _execute(path: str, values: list[Any], *, store: Any, concurrency: int, trace_path: str | None,
             resume_id: str | None, run_id: str | None, budget: float | None, as_json: bool,
             cache_path: str | None = None, metrics_path: str | None = None, from_saved: bool = False,
             catalog_path: str | None = None, ray: dict[str, Any] | None = None) -> int:
    from petriflow.execute.executor import Executor, new_run_id
    from petriflow.execute.plan import plan
    from petriflow.execute.trace import TraceWriter
    from petriflow.spec import load

    if catalog_path is not None:
        from petriflow.cli.generate import gated_workflow

        wf = gated_workflow(path, catalog_path)  # only what passed every check is planned
    else:
        wf = load(path)
    dag = plan(wf)
    trace = TraceWriter(trace_path)
    if trace.error:  # refused before any call is paid for
        raise InputError(trace.error, hint="pass --trace a writable file")
    client = None
    if cache_path:
        from petriflow.execute.client import ModelClient, SqliteCache

        client = ModelClient(cache=SqliteCache(cache_path))
    executor = Executor(dag, store=store, trace=trace, budget=budget, client=client)
    from petriflow.cli.runs import answer_command

    def waits(run: str, case: int, step: str, npass: int) -> None:  # say who must do what, and how
        click.echo(f"run {run} case {case} waits for step '{step}'" + (f" (pass {npass})" if npass > 1 else "")
                   + f"; answer it with: {answer_command(run, step, 'VALUE', store)}"
                   + (f" --pass {npass}" if npass > 1 else ""), err=True)

    executor.kinds.on_wait = waits
    executor.kinds.prepare()  # starts the local model servers if the workflow needs them and none runs
    rid = (run_id or new_run_id()) if from_saved else (resume_id or run_id or new_run_id())
    n = len(store.cases(resume_id)) if resume_id else len(values)
    click.echo(f"run {rid}: {dag.name}, {n} case(s)" + (f", from the saved outputs of {resume_id}" if from_saved
                                                        else "")
               + ("" if resume_id and not from_saved else
                  f" (resume with: petriflow run --resume {rid} --db {store.path})"), err=True)
    bar = None
    if n > 1:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="case", file=sys.stderr, disable=None)
    t0 = time.perf_counter()

    def progress(_: Any) -> None:
        if bar is not None:
            bar.update(1)

    async def main() -> list[Any]:
        nonlocal rid
        async with executor:
            if ray is not None:
                return await _on_ray(executor, path, rid, values, ray, resume=bool(resume_id), concurrency=concurrency,
                                     budget=budget, progress=progress,
                                     options={"budget": budget, "trace": trace_path, "workflow": str(Path(path)),
                                              "catalog": catalog_path})
            if resume_id and from_saved:
                rid, results = await executor.rerun(resume_id, as_run_id=rid, concurrency=concurrency,
                                                    progress=progress)
                return results
            if resume_id:
                return await executor.resume(rid, concurrency=concurrency, progress=progress)
            return await executor.run_many(values, run_id=rid, concurrency=concurrency, progress=progress,
                                           options={"budget": budget, "trace": trace_path,
                                                    "workflow": str(Path(path)), "catalog": catalog_path})

    async def run_and_close() -> list[Any]:
        try:
            return await main()
        finally:
            if client is not None:
                await client.aclose()

    import asyncio  # on use: `petriflow check` does not pay for the event loop

    results = asyncio.run(run_and_close())
    wall = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    trace.close()
    failed_outputs = [trace.error] if trace.error else []
    if metrics_path:
        try:
            Path(metrics_path).parent.mkdir(parents=True, exist_ok=True)
            Path(metrics_path).write_text(trace.prometheus(workflow=dag.name), encoding="utf-8")
        except OSError as exc:
            failed_outputs.append(f"cannot write the metrics to {metrics_path}: {exc.strerror or exc}")
    if as_json:
        click.echo(json.dumps({
            "run_id": rid, "workflow": dag.name, "seconds": round(wall, 6),
            "cases": [{"case": r.case, "ok": r.ok, "output": r.output, "error": r.error, "cost": r.cost,
                       "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
                       "seconds": round(r.seconds, 6), "reused": r.reused} for r in results],
            "steps": {s: vars(v) for s, v in trace.stats.items()},
        }, indent=2, default=str))
    else:
        for r in results:
            prefix = f"[{r.case}] " if len(results) > 1 else ""
            click.echo(prefix + (_show(r.output) if r.ok else f"FAILED: {r.error}"))
        click.echo("")
        click.echo(trace.summary(wall_seconds=wall))
    for problem in failed_outputs:  # after the answers are printed; they are stored whatever happened here
        click.echo(f"petriflow: error: {problem}; the results above are stored in run {rid} "
                   f"(petriflow runs show {rid} --db {store.path})", err=True)
    if all(r.ok for r in results):
        return 2 if failed_outputs else 0
    return 3 if any(r.exit_code == 3 for r in results) else 1


async def _on_ray(executor: Any, path: str, rid: str, values: list[Any], ray: dict[str, Any], *, resume: bool,
                  concurrency: int, budget: float | None, progress: Any, options: dict[str, Any]) -> list[Any]:
    """A batch on Ray workers: this process owns the run and records it; the workers run its cases."""
    from petriflow.execute.distributed import run_on_ray

    store = executor.store
    async with executor.leases.hold(rid):
        if resume:
            executor.check_unchanged(rid)
        else:
            executor.open_run(rid, values, options)
        todo = [(r.case, r.input) for r in store.cases(rid) if r.status != "ok"]
        before = {r.case for r in store.cases(rid) if r.status == "ok"}
        ran = await run_on_ray(executor, str(Path(path).resolve()), ray["db"], rid, todo, workers=ray["workers"],
                               concurrency=concurrency, budget=budget, address=ray["address"], progress=progress,
                               on_worker=lambda slot, pid: click.echo(f"ray worker {slot}: process {pid}", err=True))
        earlier = executor.finished(rid)  # the trace file and totals, from every worker's committed records
        for case in before:
            progress(earlier[case])
        merged = {**{c: earlier[c] for c in before}, **{r.case: r for r in ran}}
        store.set_run_status(rid, "ok" if all(r.ok for r in merged.values()) else "failed")
        return [merged[k] for k in sorted(merged)]


COMMANDS = [run]
