"""The verification gate: a generated (or any) workflow runs only if every check passes.

:func:`gate` takes a workflow document and a :class:`~petriflow.generate.catalog.Catalog`
and runs the checks in order, stopping at the first refusal:

========== =====================================================================
check      refuses
========== =====================================================================
parse      text that is not one JSON object
schema     a document the generation schema (catalog-narrowed) does not allow
catalog    a tool, function, model, prompt, label set or template variable the
           catalog does not list; a ``tools:``/``models:`` section of its own
arguments  tool arguments (or function kwargs) that break their JSON Schema
limits     more steps, a longer chain, more loop passes, map items, attempts
           or ``max_tokens`` than the catalog allows
spec       what the workflow loader refuses (references, cycles, exclusivity)
verify     a net that is not sound (deadlock, livelock, leftover work, dead
           steps) or not bounded; the witness is the run told in steps
references a template naming a step that may not have run on some path to it
cost       a worst-case cost over the catalog's (or ``--budget``'s) dollars,
           or no bound at all when a budget is set
========== =====================================================================

Each refusal is a :class:`Verdict` naming its check, the reason and the
witness (step ids, or the run told in steps). The checks read the catalog
object only: no text in a request or a model's answer can widen it.
"""

from __future__ import annotations

import json
import re
import string
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from petriflow.errors import SpecError
from petriflow.generate.catalog import Catalog
from petriflow.generate.schema import generation_schema
from petriflow.profile.bound import CostBound, cost_bound

__all__ = ["CHECKS", "Verdict", "gate", "merged"]

CHECKS = ("parse", "schema", "catalog", "arguments", "limits", "spec", "verify", "references", "cost")
_LOOP_NAMES = ("loop_pass", "previous", "item")


@dataclass(frozen=True)
class Verdict:
    """The gate's answer: ``ok``, or the ``check`` that refused with its ``reason`` and ``witness``."""

    ok: bool
    check: str | None = None
    reason: str | None = None
    witness: tuple[str, ...] = ()
    workflow: Any = None
    """The loaded :class:`~petriflow.spec.model.Workflow` (from the ``spec`` check on)."""
    document: Mapping[str, Any] | None = None
    """The runnable document: the generated one with the catalog's ``models`` and ``tools``."""
    bound: CostBound | None = None
    seconds: float = 0.0
    passed: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "check": self.check, "reason": self.reason, "witness": list(self.witness),
                "passed": list(self.passed), "seconds": self.seconds,
                "cost_bound": None if self.bound is None else
                {"usd": self.bound.usd, "path": list(self.bound.path), "reason": self.bound.reason}}

    def message(self) -> str:
        """What the repair loop tells the model, and the CLI prints."""
        if self.ok:
            usd = self.bound.usd if self.bound is not None else None
            return "the gate passed every check" + (f" (worst case ${usd:.6f} per case)" if usd is not None else "")
        lines = [f"refused by the `{self.check}` check: {self.reason}"]
        lines += [f"    {w}" for w in self.witness]
        return "\n".join(lines)


class _Refused(Exception):
    def __init__(self, check: str, reason: str, witness: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.check, self.reason, self.witness = check, reason, witness


def merged(doc: Mapping[str, Any], catalog: Catalog) -> dict[str, Any]:
    """The runnable document: ``doc`` with the catalog's models and tools (their functions resolve next to it)."""
    out = dict(doc)
    out["models"] = dict(catalog.document.get("models", {}))
    if catalog.document.get("tools"):
        out["tools"] = dict(catalog.document["tools"])
    return out


def gate(doc: Any, catalog: Catalog, *, budget: float | None = None, max_states: int = 200_000) -> Verdict:
    """Run every check on ``doc`` (JSON text or a parsed document); the first refusal ends it."""
    t0 = time.perf_counter()
    passed: list[str] = []
    state: dict[str, Any] = {}
    try:
        for name, check in _CHECKS:
            check(state, doc, catalog, budget, max_states)
            passed.append(name)
    except _Refused as r:
        return Verdict(False, r.check, r.reason, r.witness, state.get("wf"), state.get("doc"), state.get("bound"),
                       time.perf_counter() - t0, tuple(passed))
    return Verdict(True, None, None, (), state["wf"], state["doc"], state.get("bound"), time.perf_counter() - t0,
                   tuple(passed))


# -- the checks, in order ----------------------------------------------------------------------


def _parse(state: dict[str, Any], doc: Any, catalog: Catalog, budget: float | None, max_states: int) -> None:
    if isinstance(doc, (str, bytes)):
        from petriflow.errors import InputError
        from petriflow.limits import failing, load_json

        try:
            doc = load_json(doc.decode(errors="replace") if isinstance(doc, bytes) else doc,
                            fail=failing(InputError, "the answer"))
        except (InputError, ValueError) as exc:
            raise _Refused("parse", f"not JSON: {getattr(exc, 'message', exc)}") from None
    if not isinstance(doc, Mapping):
        raise _Refused("parse", f"a workflow is a JSON object, not {type(doc).__name__}")
    state["raw"] = dict(doc)


def _schema(state: dict[str, Any], doc: Any, catalog: Catalog, budget: float | None, max_states: int) -> None:
    import jsonschema

    raw = state["raw"]
    validator = jsonschema.Draft202012Validator(generation_schema(catalog, strict=False))
    errors = sorted(validator.iter_errors(raw), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        err = jsonschema.exceptions.best_match(errors) or errors[0]
        path = list(err.absolute_path)
        raise _Refused("schema", f"{'.'.join(map(str, path)) or 'the document'}: {_short(err.message)}",
                       _step_at(raw, path))


def _catalog(state: dict[str, Any], doc: Any, catalog: Catalog, budget: float | None, max_states: int) -> None:
    raw = state["raw"]
    for key in ("tools", "models"):  # a file may repeat the catalog's own entries, never add or change one
        own = catalog.document.get(key, {})
        for name, entry in (raw.get(key) or {}).items():
            if own.get(name) != entry:
                raise _Refused("catalog", f"the workflow declares {key[:-1]} '{name}', which is not the "
                               f"catalog's (a workflow cannot add or change {key})", (f"`{key}.{name}`",))
    ids = {s["id"] for s in raw["steps"]}
    functions, prompts = catalog.function_specs, {p["prompt"] for p in catalog.prompts.values()}
    systems = {p["system"] for p in catalog.prompts.values() if "system" in p}
    label_sets = [{k: list(v) for k, v in sets.items()} for sets in catalog.labels.values()]
    for s in raw["steps"]:
        sid, kind = s["id"], s["kind"]
        where = (f"step '{sid}'",)
        if kind == "tool" and s.get("tool") not in catalog.tools:
            raise _Refused("catalog", f"tool '{s.get('tool')}' is not in the catalog (it has: "
                           f"{', '.join(catalog.tools) or 'none'})", where)
        if kind == "python" and s.get("function") not in functions:
            raise _Refused("catalog", f"function '{s.get('function')}' is not in the catalog", where)
        if kind in ("chat", "embed", "classify"):
            model = catalog.models.get(s.get("model") or "")
            want = "chat" if kind == "chat" else "embedding"
            if model is None or (model.kind in ("embedding", "embed")) != (want == "embedding"):
                raise _Refused("catalog", f"model '{s.get('model')}' is not a {want} model of the catalog", where)
        if kind == "chat" and (s.get("prompt") not in prompts or ("system" in s and s["system"] not in systems)):
            raise _Refused("catalog", "a chat step's prompt and system text are the catalog's prompts", where)
        if kind == "classify" and s.get("labels") not in label_sets:
            raise _Refused("catalog", "a classify step's labels are one of the catalog's label sets", where)
        for text in _templates(s):
            for name in _names(text, sid):
                if name not in ids and name not in catalog.inputs and name not in _LOOP_NAMES:
                    raise _Refused("catalog", f"the template names '{{{name}}}', which is neither a step nor a "
                                   f"case input of the catalog ({', '.join(catalog.inputs) or 'none'})", where)


def _arguments(state: dict[str, Any], doc: Any, catalog: Catalog, budget: float | None, max_states: int) -> None:
    import jsonschema

    for s in state["raw"]["steps"]:
        cfg = s.get("config") or {}
        if s["kind"] == "tool":
            schema, args, what = catalog.tools[s["tool"]].schema, cfg.get("args", {"query": "{question}"}), "args"
        elif s["kind"] == "python":
            schema, args, what = catalog.kwargs_schema(s["function"]), cfg.get("kwargs", {}), "kwargs"
        else:
            continue
        reserved = sorted({"case", "idempotency_key"} & set(args)) if isinstance(args, Mapping) else []
        if reserved:
            raise _Refused("arguments", f"config.{what} names {', '.join(reserved)}, which only the executor passes",
                           (f"step '{s['id']}'",))
        try:
            jsonschema.validate(args, _static(dict(schema), args, s["id"]))
        except jsonschema.ValidationError as exc:
            raise _Refused("arguments", f"config.{what} of tool/function break its schema: {_short(exc.message)}",
                           (f"step '{s['id']}'", f"{what}: {_short(json.dumps(args, default=str))}")) from None


def _static(schema: dict[str, Any], args: Any, sid: str) -> dict[str, Any]:
    """``schema`` for what is known before the run: a template argument (``"{facts}"``) is text whose value
    comes from the case, so it is held only to being a string here; the executor checks the rendered
    value against the full schema before every call."""
    if not isinstance(args, Mapping) or not isinstance(schema.get("properties"), Mapping):
        return schema
    props = dict(schema["properties"])
    for key, value in args.items():
        if isinstance(value, str) and key in props and any(True for _ in _names(value, sid)):
            declared = props[key].get("type") if isinstance(props[key], Mapping) else None
            if declared not in (None, "string") and not (isinstance(declared, list) and "string" in declared):
                raise _Refused("arguments", f"argument '{key}' is a template (text) but its schema wants "
                               f"{declared}", (f"step '{sid}'",))
            props[key] = {"type": "string"}
    return {**schema, "properties": props}


def _limits(state: dict[str, Any], doc: Any, catalog: Catalog, budget: float | None, max_states: int) -> None:
    lim, steps = catalog.limits, state["raw"]["steps"]
    if len(steps) > lim.steps:
        raise _Refused("limits", f"{len(steps)} steps, the catalog allows {lim.steps}",
                       tuple(f"step '{s['id']}'" for s in steps[lim.steps:lim.steps + 3]))
    for s in steps:
        where = (f"step '{s['id']}'",)
        checks = [("loop passes", (s.get("loop") or {}).get("max", 0), lim.loop),
                  ("map items", (s.get("map") or {}).get("max", 0), lim.map),
                  ("attempts", (s.get("retry") or {}).get("max_attempts", 1), lim.attempts),
                  ("max_tokens", (s.get("config") or {}).get("max_tokens", 256) if s["kind"] == "chat" else 0,
                   lim.max_tokens),
                  ("max_input_tokens", (s.get("config") or {}).get("max_input_tokens", 0), lim.max_input_tokens)]
        for what, got, most in checks:
            if isinstance(got, (int, float)) and got > most:
                raise _Refused("limits", f"{got} {what}, the catalog allows {most}", where)
    chain = _longest_chain(steps)
    if len(chain) > lim.depth:
        raise _Refused("limits", f"a chain of {len(chain)} steps, the catalog allows {lim.depth}",
                       tuple(f"step '{c}'" for c in chain))


def _spec(state: dict[str, Any], doc: Any, catalog: Catalog, budget: float | None, max_states: int) -> None:
    from petriflow.spec.load import from_document

    state["doc"] = full = merged(state["raw"], catalog)
    try:
        state["wf"] = from_document(full, file=catalog.source or "<catalog>")
    except SpecError as exc:
        raise _Refused("spec", exc.message, (f"step '{exc.step}'",) if exc.step else ()) from None


def _verify(state: dict[str, Any], doc: Any, catalog: Catalog, budget: float | None, max_states: int) -> None:
    from petriflow.net.lower import lower
    from petriflow.verify.report import check

    report = check(lower(state["wf"]), max_states=max_states)
    state["report"] = report
    failed, unknown = report.failed(), report.unknown()
    if not failed and not unknown:
        return
    told: list[str] = []
    for w in report.witnesses:
        told += [w.summary, *w.told, *w.stuck]
    what = ", ".join(f"not {p}" if p != "deadlock" else "deadlocks" for p in failed) or \
        f"{', '.join(unknown)} undecided within {max_states} states"
    raise _Refused("verify", what, tuple(told))


def _references(state: dict[str, Any], doc: Any, catalog: Catalog, budget: float | None, max_states: int) -> None:
    """Every template reference present on every path to the step that reads it (the rule of
    :mod:`petriflow.spec.visibility`, which ``check`` and ``plan`` apply too)."""
    from petriflow.spec.visibility import problems

    missing = problems(state["wf"])
    if missing:
        ref = missing[0]
        raise _Refused("references", f"step '{ref.step}' reads '{{{ref.missing}}}' in its {ref.what}, which does "
                       "not run on every path to it", tuple(f"`{p}` runs" for p in ref.path[:-1])
                       + (f"-> `{ref.step}` starts without `{ref.missing}`",))


def _cost(state: dict[str, Any], doc: Any, catalog: Catalog, budget: float | None, max_states: int) -> None:
    state["bound"] = bound = cost_bound(state["wf"])
    most = budget if budget is not None else catalog.limits.budget
    if most is None:
        return
    if bound.usd is None:
        raise _Refused("cost", f"no worst-case cost: {bound.reason}", bound.path)
    if bound.usd > most:
        raise _Refused("cost", f"the worst case costs ${bound.usd:.6f} per case, over the budget of ${most:.6f}",
                       tuple(f"step '{s}'" for s in bound.path))


_CHECKS = (("parse", _parse), ("schema", _schema), ("catalog", _catalog), ("arguments", _arguments),
           ("limits", _limits), ("spec", _spec), ("verify", _verify), ("references", _references), ("cost", _cost))


# -- helpers ------------------------------------------------------------------------------------


def _short(text: str, width: int = 240) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _step_at(raw: Mapping[str, Any], path: list[Any]) -> tuple[str, ...]:
    if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
        steps = raw.get("steps") or []
        if path[1] < len(steps) and isinstance(steps[path[1]], Mapping) and "id" in steps[path[1]]:
            return (f"step '{steps[path[1]]['id']}'",)
    return ()


def _templates(step: Mapping[str, Any]) -> Iterator[str]:
    for key in ("prompt", "system"):
        if isinstance(step.get(key), str):
            yield step[key]
    args = (step.get("config") or {}).get("args")
    if isinstance(args, Mapping):
        yield from (v for v in args.values() if isinstance(v, str))


def _names(text: str, sid: str) -> Iterator[str]:
    """The top-level names a template reads (``{a[b]}`` reads ``a``)."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise _Refused("catalog", f"the template cannot be read: {exc}", (f"step '{sid}'",)) from None
    for f in fields:
        name = re.split(r"[.\[]", f, maxsplit=1)[0]
        if not name or name.isdigit():
            raise _Refused("catalog", f"the template has a positional field '{{{f}}}'", (f"step '{sid}'",))
        yield name


def _longest_chain(steps: list[Mapping[str, Any]]) -> list[str]:
    """The longest chain of steps through after/after_any/route edges (loops' back edges left out)."""
    succ: dict[str, list[str]] = {s["id"]: [] for s in steps}
    for s in steps:
        for u in (*s.get("after", ()), *s.get("after_any", ())):
            if u in succ:
                succ[u].append(s["id"])
        for b in s.get("route", ()):
            if b.get("to") in succ:
                succ[s["id"]].append(b["to"])
    best: dict[str, list[str]] = {}

    def walk(v: str, seen: frozenset[str]) -> list[str]:
        if v in best:
            return best[v]
        tails = [walk(w, seen | {v}) for w in succ[v] if w not in seen]
        best[v] = [v, *max(tails, key=len, default=[])]
        return best[v]

    return max((walk(v, frozenset()) for v in succ), key=len, default=[])
