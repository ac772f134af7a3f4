"""The ``check``, ``schema``, ``lower`` and ``draw`` commands: verification and pictures of a net."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from petriflow.errors import InputError
from petriflow.limits import MAX_COUNT, MiB, check_output, failing, memory_limit, number

__all__ = ["COMMANDS", "check", "draw", "load_net", "lower", "schema"]


def load_net(path: str | Path) -> Any:
    """A workflow file lowered to its workflow net, or a ``.pnml`` net as it is."""
    p = Path(path)
    if p.suffix.lower() == ".pnml":
        from petriflow.net.pnml import read_pnml

        return read_pnml(p)
    from petriflow.net.lower import lower
    from petriflow.spec import load

    return lower(load(p))


def _final(spec: str, net: Any) -> Any:
    """``--final p1=1,p2`` as a net with that (complete) final marking."""
    import dataclasses

    tokens: dict[str, int] = {}
    for part in filter(None, (x.strip() for x in spec.split(","))):
        name, _, count = part.partition("=")
        try:
            n = int(count) if count else 1
        except ValueError:
            raise InputError(f"--final: '{part}' is not PLACE or PLACE=N", hint="e.g. --final sink=1,done") from None
        tokens[name] = int(number(n, what=f"the tokens of '{name}'", hi=MAX_COUNT, integer=True,
                                  fail=failing(InputError, "--final")))
        if name not in net.places:
            raise InputError(f"--final names unknown place '{name}'", hint="use place ids of the net")
    return dataclasses.replace(net, final=net.marking(tokens), final_mask=None)


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True,
              help="Print the report as JSON (a stable contract: a verdict not known is null, never false, "
                   "and <verdict>_unknown says why; see docs/verify.md).")
@click.option("--max-states", type=click.IntRange(min=1), default=5_000_000, show_default=True,
              help="Stop exploring after this many markings (exit 3 if that leaves a verdict open).")
@click.option("--max-memory", type=click.IntRange(min=1), default=None, metavar="MB",
              help="Hold every stage to this many megabytes: reading the file, the net's matrices (a net past it "
                   "is kept sparse and reduced, or refused in one line) and the state store (exit 3 if that "
                   "leaves a verdict open). Default: the state store stops at half the RAM.")
@click.option("--final", "final", metavar="PLACE[=N],...", help="Declare the final marking of a PNML net.")
@click.option("--property", "props", multiple=True, type=click.Choice(["deadlock", "bounded", "sound", "live"]),
              help="Check only these properties (repeatable). Default: all.")
@click.option("--full", is_flag=True, help="No reductions: explore every reachable marking.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when a terminal).")
@click.option("--budget", type=click.FloatRange(min=0), default=None, metavar="USD",
              help="Exit 1 unless the worst-case cost of one case (every loop, map and token limit at its "
                   "bound, the dearest branch of every route) is known and at most USD dollars.")
@click.option("--catalog", "catalog_path", type=click.Path(dir_okay=False), metavar="CATALOG.yaml",
              help="The generation gate: schema, catalog (tools, functions, models, prompts), arguments, "
                   "limits, spec, verify, references and worst-case cost (--budget, else the catalog's); "
                   "exit 1 names the check and its witness (docs/generate.md).")
def check(path: str, as_json: bool, max_states: int, max_memory: int | None, final: str | None,
          props: tuple[str, ...], full: bool, progress: bool | None, budget: float | None,
          catalog_path: str | None = None) -> None:
    """Check deadlock-freedom, boundedness, soundness and liveness of PATH, and bound the cost of one case.

    A failing property comes with its witness: the shortest firing sequence,
    told as workflow steps, and what is stuck where it ends. A workflow too
    big for a quick exact search is first reduced structurally (rules that
    keep every verdict: docs/verify.md); its witnesses are replayed on the
    original net (reduced_net gives the reduced size, states is null).
    `--property deadlock` alone searches a stubborn-set reduced state space
    (states is null, states_reduced counts). --full turns both off. A
    workflow's templates are checked too: a step may read only the steps
    finished on every path to it (a reference that may be missing fails the
    check, with a path on which it did not run), and every tool the file
    declares must import as module:callable (exit 2 if not). For a workflow
    file the report adds its worst-case cost (`cost_bound` in --json,
    docs/verify.md); --budget refuses one whose bound passes USD or is
    unknown, naming the path.
    """
    with memory_limit(max_memory * MiB if max_memory else None):
        _check(path, as_json, max_states, max_memory, final, props, full, progress, budget, catalog_path)


def _path_words(path: list[str], keep: int = 6) -> str:
    """A path of steps for a person: a long one (a chain of thousands) shows its ends; --json has it whole."""
    if len(path) <= 2 * keep + 1:
        return " -> ".join(path)
    return f"{' -> '.join(path[:keep])} -> ... ({len(path) - 2 * keep:,} more steps) ... -> {' -> '.join(path[-keep:])}"


def _check(path: str, as_json: bool, max_states: int, max_memory: int | None, final: str | None,
           props: tuple[str, ...], full: bool, progress: bool | None, budget: float | None,
           catalog_path: str | None) -> None:
    """:func:`check` inside its memory budget."""
    from petriflow.verify.report import PROPERTIES
    from petriflow.verify.report import check as run_check

    if catalog_path is not None:
        from petriflow.cli.generate import check_with_catalog

        check_with_catalog(path, catalog_path, budget=budget, as_json=as_json)
    wf = None
    if Path(path).suffix.lower() == ".pnml":
        net = load_net(path)
    else:
        from petriflow.net.lower import lower
        from petriflow.spec import load

        wf = load(path)
        net = lower(wf)
    if final:
        net = _final(final, net)
    show = sys.stderr.isatty() if progress is None else progress
    report = run_check(net, properties=props or PROPERTIES, max_states=max_states, full=full,
                       max_bytes=max_memory * MiB if max_memory else None, progress=show and not as_json)
    bound = _cost_bound(wf)
    over = _over_budget(bound, budget)
    refs = _references(wf)
    if as_json:
        doc = {**report.to_json(), "cost_bound": bound}
        if refs is not None:
            doc["references"] = not refs
            doc["reference_problems"] = [r.to_json() for r in refs]
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(report.explain())
        if refs:
            click.echo("references: a step reads a step that may not have run")
            for r in refs:
                click.echo(f"  {r.message}")
        if bound["usd"] is not None:
            click.echo(f"worst-case cost of one case: ${bound['usd']:.6g} along {_path_words(bound['path'])}")
        else:
            click.echo(f"worst-case cost of one case: unknown ({bound['reason']})")
    if over:
        click.echo(f"petriflow: {over}", err=True)
    sys.exit(report.exit_code or (1 if over or refs else 0))


def _references(wf: Any) -> list[Any] | None:
    """What a workflow's templates read that may be missing (:mod:`petriflow.spec.visibility`); None for PNML."""
    if wf is None:
        return None
    from petriflow.spec.visibility import problems

    if wf.tools:  # every declared tool resolves (a SpecError, exit 2, if not); no tools, no executor import
        from petriflow.execute.tools import DEFAULT_TOOLS, KindRunner

        KindRunner._with_declared(DEFAULT_TOOLS, wf)
    return problems(wf)


def _cost_bound(wf: Any) -> dict[str, Any]:
    """The ``cost_bound`` of the report: ``{"usd", "path"}``, or ``{"usd": null, "reason"}`` (a PNML net has no prices)."""
    if wf is None:
        return {"usd": None, "reason": "a PNML net has no models or prices; check the workflow file"}
    from petriflow.profile.bound import cost_bound

    return cost_bound(wf).to_json()


def _over_budget(bound: dict[str, Any], budget: float | None) -> str | None:
    """Why ``--budget`` refuses the workflow, or None when its bound is known and within it."""
    if budget is None:
        return None
    if bound["usd"] is None:
        return f"budget ${budget:g}: the worst-case cost is unknown: {bound['reason']}"
    if bound["usd"] > budget:
        return (f"budget ${budget:g}: one case can cost up to ${bound['usd']:.6g}, along "
                f"{_path_words(bound['path'])}; lower max_tokens, max_input_tokens, loop or map bounds "
                "on that path, or raise --budget")
    return None


@click.command()
def schema() -> None:
    """Print the JSON Schema of the workflow format."""
    from petriflow.spec.schema import WORKFLOW_SCHEMA

    click.echo(json.dumps(WORKFLOW_SCHEMA, indent=2))


@click.command()
@click.argument("workflow", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .pnml file to write.")
def lower(workflow: str, output: str) -> None:
    """Lower WORKFLOW to its Petri net and write it as PNML."""
    from petriflow.net.pnml import write_pnml

    if not output.lower().endswith(".pnml"):
        raise InputError(f"'{output}' is not a .pnml file", hint="name the output NET.pnml")
    check_output(output, inputs=(workflow,), what="net", fail=failing(InputError, "-o"))
    net = load_net(workflow)
    write_pnml(net, output)
    click.echo(f"wrote {output}: {len(net.places)} places, {len(net.transitions)} transitions, {net.arc_count} arcs")


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Picture to write: .png or .svg (matplotlib), .mmd (Mermaid), .dot (Graphviz).")
@click.option("--witness/--no-witness", default=True, show_default=True,
              help="Show where a deadlock gets stuck (small nets only).")
def draw(path: str, output: str, witness: bool) -> None:
    """Draw PATH as a Petri net; for a deadlocking workflow, mark where it gets stuck."""
    from petriflow.viz import draw as draw_net

    net = load_net(path)
    overlay = None
    if witness:
        from petriflow.viz.witness import deadlock_overlay

        overlay = deadlock_overlay(net)
    if overlay is None:
        out = draw_net(net, output)
    else:
        out = draw_net(net, output, highlight=overlay.highlight or None, marking=overlay.marking,
                       title=overlay.title, trail=overlay.trail)
    click.echo(f"wrote {out}")


COMMANDS = [check, schema, lower, draw]
