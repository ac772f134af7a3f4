"""The support engine: triage a message, have a model write the workflow for it, gate it, and run only that.

One customer message is one case, told in one trace and one checkpoint store:

1. **triage** runs the catalog's label sets (``sentiment``, ``intent``) as
   ``classify`` steps on its embedding model: a workflow built from the
   catalog (:func:`triage_workflow`), gated like any other, run by the
   executor as run ``RUN-engine``;
2. **generation** asks the catalog's generator for a workflow for this case
   and repairs it with the gate's verdicts (:func:`petriflow.generate.generate`);
   each round is a ``generate`` record (the model call) and a ``gate`` record
   (``branch``: ``passed`` or the refusing check) in the same run, and its
   verdict and witness are the round's checkpoint (``petriflow runs show``);
3. **the choice**: the workflow that passed, else (every round refused) the
   shipped, verified ``fallback`` workflow or the ``escalation`` workflow that
   hands the case to a person (a human step: ``petriflow runs pending`` /
   ``petriflow answer``); a ``choose`` record says which (``branch``:
   ``generated``, ``fallback`` or ``escalated``);
4. **the run**: the chosen workflow, gated against the catalog once more, runs
   as run ``RUN`` on the case, so ``petriflow run --resume RUN`` finishes it.

The case is built here from what authenticated the caller (``customer_id``,
``ticket_id``) and the triage's outputs; a model's answer can only name
catalog tools, whose arguments never carry the case (see docs/generate.md),
so no text in a message reaches another customer's records.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from petriflow.errors import InputError, ModelCallError, ServerError, SpecError
from petriflow.generate.catalog import Catalog
from petriflow.generate.gate import Verdict, gate
from petriflow.generate.generator import Generation, Round, generate
from petriflow.limits import MAX_DOCUMENT_BYTES, failing, load_yaml, read_text

__all__ = ["ON_REFUSAL", "Support", "support", "support_case", "triage_workflow"]

ON_REFUSAL = ("fallback", "escalate")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Support:
    """What the engine did with one message: the triage, every round, the workflow chosen and its run."""

    run_id: str
    case: Mapping[str, Any]
    triage: Mapping[str, Any]
    generation: Generation
    chosen: str
    """``generated`` (a round passed the gate), ``fallback`` or ``escalated`` (every round was refused)."""
    workflow: str
    """The file that ran (the generated workflow is written next to the run's other files)."""
    result: Any
    """The :class:`~petriflow.execute.executor.RunResult` of the chosen workflow."""

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {"run_id": self.run_id, "triage": dict(self.triage), "chosen": self.chosen, "workflow": self.workflow,
                "rounds": [x.to_json() for x in self.generation.rounds],
                "case": {"ok": r.ok, "output": r.output, "error": r.error, "cost": r.cost,
                         "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
                         "seconds": round(r.seconds, 6)}}


def triage_workflow(catalog: Catalog) -> Any:
    """A workflow of one ``classify`` step per label set of the catalog, in order, on its embedding model.

    Gated against the catalog before it is returned (a catalog whose label sets cannot be classified is the
    operator's error: :class:`SpecError`).
    """
    embed = [m for m, e in catalog.models.items() if e.kind == "embedding"]
    if not catalog.labels or not embed:
        raise SpecError("the catalog has no label sets or no embedding model to triage with", file=catalog.source,
                        hint="add `labels:` (e.g. sentiment, intent) and a model of kind embedding")
    steps: list[dict[str, Any]] = []
    for name, sets in catalog.labels.items():
        steps.append({"id": name, "kind": "classify", "model": embed[0],
                      "config": {"max_input_tokens": min(512, catalog.limits.max_input_tokens)},
                      "labels": {k: list(v) for k, v in sets.items()},
                      **({"after": [steps[-1]["id"]]} if steps else {})})
    verdict = gate({"name": f"{catalog.name}_triage", "steps": steps}, catalog)
    if not verdict.ok:
        raise SpecError(f"the catalog's triage does not pass the gate: {verdict.message()}", file=catalog.source,
                        hint="fix the catalog's labels, models or limits")
    return verdict.workflow


def support_case(message: str, *, customer_id: str, ticket_id: str | None = None) -> dict[str, Any]:
    """The case the engine runs: the message and the caller's authenticated ids (never a model's).

    The message is redacted of secrets (API keys, bearer tokens) first: it is embedded, templated into
    prompts, stored and traced, and a key a customer pasted must reach none of them.
    """
    from petriflow.execute.redact import redact

    for what, value in (("customer_id", customer_id), ("ticket_id", ticket_id)):
        if value is not None and not _ID.fullmatch(str(value)):
            raise InputError(f"{what} must be 1-64 letters, digits, '_' or '-'", where=f"--{what.split('_')[0]}",
                             hint="pass the id the caller was authenticated as")
    if not message.strip():
        raise InputError("the message is empty", hint='petriflow support "MESSAGE" --customer ID')
    case = {"question": redact(message), "customer_id": str(customer_id)}
    if ticket_id is not None:
        case["ticket_id"] = str(ticket_id)
    return case


def _request(message: str, triage: Mapping[str, Any]) -> str:
    """What the generator is asked: the message, and the triage's labels (its own line, after the message)."""
    told = ", ".join(f"{k} {v.get('label')}" for k, v in triage.items() if isinstance(v, Mapping))
    return f"{message}\n(triage: {told})" if told else message


def _gate_file(path: Path, catalog: Catalog, *, what: str) -> Verdict:
    """Gate a workflow file (the shipped fallback or escalation): every check, or a clear error naming the file."""
    text = read_text(path, what="workflow file", max_bytes=MAX_DOCUMENT_BYTES, fail=failing(InputError, str(path)))
    doc = text if path.suffix.lower() == ".json" else load_yaml(text, fail=failing(InputError, str(path)))
    verdict = gate(doc, catalog)
    if not verdict.ok:
        raise SpecError(f"the {what} workflow does not pass the gate: {verdict.message()}", file=str(path),
                        hint=f"the {what} must be a verified workflow of the catalog")
    return verdict


def _round_records(run_id: str, rnd: Round, *, last: bool) -> tuple[Any, Any]:
    """A round's ``generate`` record (the model call) and ``gate`` record (its verdict), timed back from now.

    The gate's ``branch`` is ``passed`` or the refusing check; a refusal is ``retryable`` while another round
    follows, ``fatal`` for the last.
    """
    from petriflow.trace import TraceRecord

    end = time.time()
    v = rnd.verdict
    asked = end - v.seconds
    return (TraceRecord(run_id, 0, "generate", asked - rnd.model_seconds, asked, rnd.number, "ok", model=rnd.model,
                        input_tokens=rnd.input_tokens, output_tokens=rnd.output_tokens, cost=rnd.cost),
            TraceRecord(run_id, 0, "gate", asked, end, rnd.number, "ok" if v.ok else "error",
                        branch="passed" if v.ok else v.check, error=None if v.ok else ("fatal" if last else "retryable")))


def _write_generated(gen: Generation, workdir: str | Path | None, run_id: str) -> Path:
    """Write the workflow that passed as ``RUN.json`` (its steps; the catalog supplies models and tools)."""
    from petriflow.execute.servers import home

    work = Path(workdir) if workdir is not None else home() / "support"
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"{run_id}.json"
    doc = {k: v for k, v in (gen.document or {}).items() if k not in ("models", "tools")}
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path


def _defaults(catalog: Catalog) -> tuple[Path, Path]:
    """The shipped fallback (``NAME.yaml`` beside the catalog) and escalation (``escalation.yaml``)."""
    here = Path(catalog.source or ".").parent
    return here / f"{catalog.name}.yaml", here / "escalation.yaml"


async def support(message: str, catalog: Catalog, *, customer_id: str, ticket_id: str | None = None,
                  store: Any = None, trace: Any = None, client: Any = None, rounds: int = 3,
                  on_refusal: str = "fallback", fallback: str | Path | None = None,
                  escalation: str | Path | None = None, workdir: str | Path | None = None, run_id: str | None = None,
                  budget: float | None = None, max_tokens: int = 600, catalog_path: str | None = None,
                  log: Callable[[Round], None] | None = None, told: Callable[[str], None] | None = None,
                  on_wait: Callable[[str, int, str, int], None] | None = None) -> Support:
    """Triage ``message``, generate and gate a workflow for it, run what passed (or the fallback); see the module.

    ``told`` receives one line per stage for a person to read; ``log`` every round; ``on_wait`` a human step
    that waits (run, case, step, pass). A generated workflow is written to ``workdir`` (default
    ``$PETRIFLOW_HOME/support``) as ``RUN.json``, so ``petriflow run --resume RUN`` can gate and finish it.
    """
    from petriflow.execute.client import ModelClient
    from petriflow.execute.executor import Executor, new_run_id
    from petriflow.execute.plan import plan
    from petriflow.execute.store import Checkpoint, MemoryStore
    from petriflow.execute.trace import TraceWriter
    from petriflow.trace import TraceRecord

    if on_refusal not in ON_REFUSAL:
        raise InputError(f"on_refusal must be one of {', '.join(ON_REFUSAL)}", hint="fallback or escalate")
    say = told or (lambda _: None)
    case = support_case(message, customer_id=customer_id, ticket_id=ticket_id)
    store = store if store is not None else MemoryStore()
    trace = trace if trace is not None else TraceWriter()
    rid = run_id or new_run_id()
    eng = f"{rid}-engine"
    fixed = _defaults(catalog)
    refuse_to = Path((fallback or fixed[0]) if on_refusal == "fallback" else (escalation or fixed[1]))
    refusal = (refuse_to, _gate_file(refuse_to, catalog, what="fallback" if on_refusal == "fallback" else "escalation"))  # before any call: a bad fallback costs nothing
    own = client is None
    cli = client if client is not None else ModelClient()
    try:
        # 1. triage
        tri = Executor(plan(triage_workflow(catalog)), store=store, trace=trace, client=cli, budget=budget)
        tri.kinds.prepare()
        res = await tri.run(case, run_id=eng)
        if not res.ok:
            raise InputError(f"the triage failed: {res.error}",
                             hint=f"nothing was generated or run; the triage's records: petriflow runs show {eng}")
        triage = {s: res.outputs[s] for s in catalog.labels}
        say("triage: " + ", ".join(f"{k} {v['label']} ({v['score']:.2f})" for k, v in triage.items()))

        # 2. generation, every round a checkpoint and two trace records
        done: list[Round] = []

        def round_done(rnd: Round) -> None:
            done.append(rnd)
            gen_rec, gate_rec = _round_records(eng, rnd, last=rnd.number == rounds)
            store.save_step(eng, 0, f"generate#{rnd.number}", Checkpoint("generate", rnd.verdict.check or "passed",
                                                                        rnd.to_json(), rnd.cost), trace=gen_rec)
            trace.write(gen_rec, stored=True)
            trace.write(gate_rec)
            say(f"round {rnd.number}: {rnd.verdict.message()}")
            if log is not None:
                log(rnd)

        request = _request(str(case["question"]), triage)
        try:
            gen = await generate(request, catalog, client=cli, rounds=rounds, budget=budget, max_tokens=max_tokens,
                                 log=round_done)
        except (ModelCallError, ServerError) as exc:  # no answer is no workflow: the case still gets served
            say(f"the generator did not answer: {exc}")
            gen = Generation(request, tuple(done))

        # 3. the choice: what passed, else the verified workflow gated above
        if gen.ok and gen.document is not None:
            path, verdict, chosen = _write_generated(gen, workdir, rid), gen.verdict, "generated"
        else:
            path, verdict = refusal
            chosen = "fallback" if on_refusal == "fallback" else "escalated"
            how = "falling back to the verified" if chosen == "fallback" else "escalating to a person with"
            why = "every round was refused" if len(done) == rounds else "no workflow was written"
            say(f"{why}: {how} {path}")
        now = time.time()
        trace.write(TraceRecord(eng, 0, "choose", now, now, 1, "ok", branch=chosen))
        store.set_run_status(eng, "ok")

        # 4. the run: only a gated workflow is planned
        ex = Executor(plan(verdict.workflow), store=store, trace=trace, client=cli, budget=budget)
        if on_wait is not None:
            ex.kinds.on_wait = on_wait
        ex.kinds.prepare()
        say(f"run {rid}: {chosen} workflow {path}")
        opts = {"budget": budget, "trace": str(trace.path) if trace.path else None, "workflow": str(path),
                "catalog": catalog_path or catalog.source, "engine": eng}
        (result,) = await ex.run_many([{**case, **triage}], run_id=rid, options=opts)
        return Support(rid, case, triage, gen, chosen, str(path), result)
    finally:
        trace.flush()
        if own:
            await cli.aclose()
