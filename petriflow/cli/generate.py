"""``petriflow generate`` and the gate behind ``check --catalog`` and ``run --catalog``.

``generate "REQUEST" --catalog CATALOG.yaml [-o WORKFLOW.json]`` asks the
catalog's generator model for a workflow, gates it and repairs it (at most
``--rounds`` rounds, each printed and, with ``--log``, written as a JSON
line); only a workflow that passed is written. The written file holds what
the model wrote (steps); the catalog supplies the models and tools, so the
file is checked and run *with* its catalog: ``petriflow check W --catalog C``
and ``petriflow run W --catalog C`` gate it again before anything runs.
Exit codes: 0 passed, 1 refused after every round, 2 bad input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from petriflow.cli.params import Amount
from petriflow.errors import InputError
from petriflow.limits import MAX_DOCUMENT_BYTES, check_output, failing, load_yaml, read_text

__all__ = ["COMMANDS", "gated_workflow", "generate", "read_document", "show_verdict"]


def read_document(path: str) -> Any:
    """A workflow file for the gate: a JSON file as its text (the gate's ``parse`` check reads it, as it
    reads a model's answer), a YAML file as data."""
    text = read_text(path, what="workflow file", max_bytes=MAX_DOCUMENT_BYTES, fail=failing(InputError, path))
    return text if path.lower().endswith(".json") else load_yaml(text, fail=failing(InputError, path))


def show_verdict(verdict: Any, *, as_json: bool) -> None:
    """Print a verdict as the gate's JSON or as one line (a refusal with its witness)."""
    if as_json:
        click.echo(json.dumps(verdict.to_json(), indent=2))
    else:
        click.echo(verdict.message())


def gated_workflow(path: str, catalog_path: str, *, budget: float | None = None) -> Any:
    """The workflow at ``path`` once the gate passed it against the catalog; a refusal exits 1 with its witness."""
    from petriflow.generate import gate, load_catalog

    verdict = gate(read_document(path), load_catalog(catalog_path), budget=budget)
    if not verdict.ok:
        click.echo(f"{path}: {verdict.message()}", err=True)
        sys.exit(1)
    return verdict.workflow


def check_with_catalog(path: str, catalog_path: str, *, budget: float | None, as_json: bool) -> None:
    """``check PATH --catalog C``: the whole gate; exit 0 when it passes, 1 when a check refuses."""
    from petriflow.generate import gate, load_catalog

    verdict = gate(read_document(path), load_catalog(catalog_path), budget=budget)
    show_verdict(verdict, as_json=as_json)
    sys.exit(0 if verdict.ok else 1)


@click.command("generate")
@click.argument("request")
@click.option("--catalog", "catalog_path", required=True, type=click.Path(dir_okay=False),
              help="What the workflow may use: tools, functions, models, prompts, label sets, limits.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the passing workflow here (JSON).")
@click.option("--rounds", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Rounds of generation and repair: a refusal's verdict and witness go back to the model.")
@click.option("--budget", type=Amount(), metavar="USD", help="Worst-case dollars per case (default: the catalog's).")
@click.option("--max-tokens", type=click.IntRange(1, 32_768), default=1024, show_default=True,
              help="Tokens the model may write for a round's draft (its plan: at most 200).")
@click.option("--log", "log_path", type=click.Path(dir_okay=False), metavar="ROUNDS.jsonl",
              help="Append one JSON line per round: verdict, witness, tokens, cost, model and gate seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the rounds and the workflow as JSON.")
def generate(request: str, catalog_path: str, output: str | None, rounds: int, budget: float | None,
             max_tokens: int, log_path: str | None, as_json: bool) -> None:
    """Have a model write a workflow for REQUEST from CATALOG; write it only if the gate passes it."""
    from petriflow.generate import generate_sync, load_catalog

    catalog = load_catalog(catalog_path)
    for out in (output, log_path):
        if out is not None:
            check_output(out, inputs=(catalog_path,), what="output", fail=failing(InputError, out))
    log = Path(log_path).open("a", encoding="utf-8") if log_path else None

    def told(rnd: Any) -> None:
        if not as_json:
            click.echo(f"round {rnd.number}: {rnd.verdict.message()}", err=True)
        if log is not None:
            log.write(json.dumps(rnd.to_json()) + "\n")
            log.flush()

    try:
        gen = generate_sync(request, catalog, rounds=rounds, budget=budget, max_tokens=max_tokens, log=told)
    finally:
        if log is not None:
            log.close()
    raw = gen.verdict.document
    written = None
    if gen.ok and raw is not None:
        doc = {k: v for k, v in raw.items() if k not in ("models", "tools")}  # the catalog's, added at run time
        if output:
            Path(output).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
            written = output
        elif not as_json:
            click.echo(json.dumps(doc, indent=2))
    if as_json:
        try:
            answer = json.loads(gen.rounds[-1].text)  # what the model wrote last (a draft), passed or not
        except ValueError:
            answer = None
        workflow = {k: v for k, v in raw.items() if k not in ("models", "tools")} if gen.ok and raw else None
        click.echo(json.dumps({"ok": gen.ok, "rounds": [r.to_json() for r in gen.rounds],
                               "workflow": workflow, "answer": answer, "written": written},
                              indent=2))
    elif written:
        click.echo(f"wrote {written}: passed the gate in round {len(gen.rounds)}; run it with: "
                   f"petriflow run {written} --catalog {catalog_path} --input ...", err=True)
    sys.exit(0 if gen.ok else 1)


COMMANDS = [generate]
