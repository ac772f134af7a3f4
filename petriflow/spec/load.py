"""Read a workflow from YAML or JSON, validate it, and build a :class:`Workflow`.

Every error is a :class:`SpecError` with the file, the line and the step, what
is wrong and what would fix it. Files are parsed with PyYAML's composer so
that every value keeps the line it came from (a JSON file is checked as JSON
first, then read for its lines as YAML). Sizes, depth, aliases and numbers
are held to :mod:`petriflow.limits` before the schema sees the document.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from petriflow.errors import SpecError
from petriflow.limits import MAX_DOCUMENT_BYTES, Fail, check_tree, compose_yaml, load_json, read_text
from petriflow.spec import conditions
from petriflow.spec._fastschema import Unsupported, is_valid
from petriflow.spec._graph import adjacency, find_cycle, has_path
from petriflow.spec.model import (
    Branch,
    Loop,
    MapOver,
    ModelEndpoint,
    Resource,
    Retry,
    Step,
    ToolDecl,
    Workflow,
)
from petriflow.spec.schema import WORKFLOW_SCHEMA

__all__ = ["from_document", "load", "loads"]

Path_ = tuple[str | int, ...]


class _Lines:
    """Line numbers (1-based) of every value in a document, keyed by its path."""

    def __init__(self) -> None:
        self.by_path: dict[Path_, int] = {}

    def line(self, path: Path_) -> int | None:
        while path:
            if path in self.by_path:
                return self.by_path[path]
            path = path[:-1]
        return self.by_path.get((), None)


def _to_python(node: yaml.Node, path: Path_, lines: _Lines, file: str, scalars: yaml.SafeLoader) -> Any:
    lines.by_path[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in out:
                raise SpecError(
                    f"key '{key}' appears twice",
                    file=file,
                    line=key_node.start_mark.line + 1,
                    hint="remove one of them",
                )
            out[key] = _to_python(value_node, path + (key,), lines, file, scalars)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, path + (i,), lines, file, scalars) for i, v in enumerate(node.value)]
    try:
        return scalars.construct_object(node, deep=True)  # scalars: ints, floats, bools, strings
    except (yaml.YAMLError, ValueError) as exc:  # e.g. an integer of 5000 digits
        raise SpecError(f"cannot read the value: {str(exc).splitlines()[0]}", file=file, line=lines.by_path[path],
                        hint="fix the value") from None


def _failing(file: str) -> Fail:
    """How the limits of :mod:`petriflow.limits` report a refusal here: a :class:`SpecError` at ``file:line``."""

    def fail(message: str, *, hint: str, line: int | None = None) -> SpecError:
        return SpecError(message, file=file, line=line, hint=hint)

    return fail


def loads(text: str, *, file: str = "<string>") -> Workflow:
    """Parse and check a workflow document given as YAML or JSON text.

    A ``.json`` file must be JSON (no trailing commas, no ``NaN``) and its
    values are JSON's; YAML then only tells the line of each value. Both go
    through the size, depth and alias budgets of :mod:`petriflow.limits`.
    """
    fail = _failing(file)
    json_doc: Any = None
    if file.endswith(".json"):
        json_doc = load_json(text, fail=fail)
    try:
        root = compose_yaml(text, fail=fail)
    except SpecError:
        if json_doc is None:
            raise
        return from_document(json_doc, file=file)  # JSON that YAML 1.1 cannot read (tabs): no line numbers
    if root is None:
        raise SpecError("the file is empty", file=file, hint="a workflow needs `name` and `steps`")
    lines = _Lines()
    doc = _to_python(root, (), lines, file, yaml.SafeLoader(""))
    return from_document(doc if json_doc is None else json_doc, file=file, lines=lines)


def load(path: str | Path) -> Workflow:
    """Load a workflow file (``.yaml``, ``.yml`` or ``.json``): a regular UTF-8 file within the size budget."""
    p = Path(path)
    if not p.exists():
        raise SpecError("no such file", file=str(path), hint="check the path")
    if p.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise SpecError(f"unknown workflow file type '{p.suffix}'", file=str(path),
                        hint="use .yaml, .yml or .json (or .pnml for a net)")
    text = read_text(p, what="workflow file", max_bytes=MAX_DOCUMENT_BYTES, fail=_failing(str(path)))
    return loads(text, file=str(path))


def _schema_error(doc: Mapping[str, Any], file: str, lines: _Lines | None) -> None:
    try:
        if is_valid(doc, WORKFLOW_SCHEMA):  # the common case, without importing jsonschema (0.1-0.2 s)
            return
    except Unsupported:
        pass
    import jsonschema  # imported on use: `import petriflow` stays light

    validator = jsonschema.Draft202012Validator(WORKFLOW_SCHEMA)
    errors = sorted(validator.iter_errors(doc), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not errors:
        return
    err = jsonschema.exceptions.best_match(errors) or errors[0]
    path = tuple(err.absolute_path)
    step = None
    if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
        steps = doc.get("steps") or []
        if path[1] < len(steps) and isinstance(steps[path[1]], dict):
            step = steps[path[1]].get("id")
    where = ".".join(str(x) for x in path) or "the document"
    msg = err.message
    if err.validator == "maxItems" and isinstance(err.instance, list):  # jsonschema quotes the whole list back
        msg = f"{len(err.instance):,} items, more than the {err.validator_value:,} allowed"
    elif len(msg) > 300:
        msg = msg[:200] + " ... " + msg[-60:]
    if err.validator == "additionalProperties":
        hint = "remove it or fix its spelling; `petriflow schema` lists the allowed keys"
    elif err.validator == "required":
        hint = "add it"
    elif err.validator == "maxItems" and path == ("steps",):
        hint = "split the workflow, or map one step over items (`map:`) instead of writing a step per item"
    elif err.validator in ("enum", "type", "pattern", "minimum", "maximum", "exclusiveMinimum", "minItems"):
        hint = "`petriflow schema` gives the allowed values"
    else:
        hint = "`petriflow schema` describes the format"
    raise SpecError(f"{where}: {msg}", file=file, line=lines.line(path) if lines else None, step=step, hint=hint)


def from_document(doc: Any, *, file: str = "<document>", lines: _Lines | None = None) -> Workflow:
    """Check a parsed document (dicts and lists) and build the workflow."""
    if not isinstance(doc, dict):
        raise SpecError("the document must be a mapping with `name` and `steps`", file=file, line=1,
                        hint="start the file with `name: ...` and a `steps:` list; `petriflow schema` has the format")
    check_tree(doc, fail=_failing(file), line_of=lines.line if lines else None)
    _schema_error(doc, file, lines)

    def where(i: int, *key: str | int) -> int | None:
        return lines.line(("steps", i) + key) if lines else None

    steps: list[Step] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(doc["steps"]):
        sid = raw["id"]
        if sid in ("begin", "end", "loop_pass", "previous", "after_any", "after_any_step"):
            # the net's ends; the names a loop pass and an XOR-join read
            raise SpecError(f"'{sid}' is reserved", file=file, line=where(i, "id"), step=sid, hint="rename the step")
        if sid in seen:
            raise SpecError(f"duplicate step id '{sid}' (first defined on line {where(seen[sid])})",
                            file=file, line=where(i, "id"), step=sid, hint="give every step its own id")
        seen[sid] = i
        if "hedge_after" in raw.get("config", {}):  # once an option of the model client: fail loudly, not ignore it
            raise SpecError("`config.hedge_after`: hedged requests were removed; a second copy of a call is in "
                            "neither the net, the budget check nor the simulator", file=file,
                            line=where(i, "config", "hedge_after"), step=sid,
                            hint="remove it; give the step a `timeout` and retries instead")
        uses = raw.get("uses", {})
        if isinstance(uses, list):
            uses = {u: 1 for u in uses}
        steps.append(Step(
            id=sid,
            kind=raw["kind"],
            after=tuple(raw.get("after", ())),
            after_any=tuple(raw.get("after_any", ())),
            route=tuple(_branch(b, fail_at=_condition_fail(file, where(i, "route", j, "when"), sid))
                        for j, b in enumerate(raw.get("route", ()))),
            loop=_loop(raw["loop"], _condition_fail(file, where(i, "loop", "when"), sid)) if "loop" in raw else None,
            map=MapOver(**raw["map"]) if "map" in raw else None,
            uses=dict(uses),
            retry=_retry(raw["retry"]) if "retry" in raw else Retry(),
            timeout=raw.get("timeout"),
            fallback=raw.get("fallback"),
            on_failure=raw.get("on_failure"),
            model=raw.get("model"),
            prompt=raw.get("prompt"),
            system=raw.get("system"),
            output_schema=raw.get("output_schema"),
            tool=raw.get("tool"),
            function=raw.get("function"),
            labels={k: tuple(v) for k, v in raw.get("labels", {}).items()},
            config=raw.get("config", {}),
            latency=raw.get("latency"),
            cost=raw.get("cost"),
            failure_rate=float(raw.get("failure_rate", 0.0)),
            tokens=raw.get("tokens", {}),
            description=raw.get("description", ""),
            line=where(i),
        ))
    resources = {rid: Resource(id=rid, **r) for rid, r in doc.get("resources", {}).items()}
    models: dict[str, ModelEndpoint] = {}
    for mid, m in doc.get("models", {}).items():
        fields: dict[str, Any] = {k: v for k, v in m.items() if k != "name"}
        if "accepts" in fields:
            fields["accepts"] = tuple(fields["accepts"])
        models[mid] = ModelEndpoint(id=mid, name=m.get("name", mid), **fields)
    tools = {name: ToolDecl(name=name, function=t["function"], schema=t.get("schema", {"type": "object"}),
                            retry_on=tuple(t.get("retry_on", ToolDecl.retry_on)), description=t.get("description", ""),
                            line=lines.line(("tools", name, "function")) if lines else None)
             for name, t in doc.get("tools", {}).items()}
    for t in tools.values():
        _check_tool_schema(t, file)
    wf = Workflow(name=doc["name"], steps=tuple(steps), resources=resources, models=models,
                  description=doc.get("description", ""), source=file, tools=tools)
    _check_references(wf, file, where, seen)
    return wf


def _check_tool_schema(tool: ToolDecl, file: str) -> None:
    """A declared tool's ``schema`` must itself be a valid JSON Schema (arguments are checked against it)."""
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(dict(tool.schema))
    except jsonschema.SchemaError as exc:
        raise SpecError(f"tool '{tool.name}': its schema is not a valid JSON Schema: {exc.message}", file=file,
                        line=tool.line, hint="fix `schema` (draft 2020-12), e.g. {type: object, properties: "
                        "{query: {type: string}}}") from None


def _condition_fail(file: str, line: int | None, step: str) -> Any:
    """Parse a ``when`` expression, or raise a :class:`SpecError` at its line, for its step."""

    def parsed(text: str) -> None:
        try:
            conditions.parse(text)
        except conditions.ConditionError as exc:
            raise SpecError(f"`when`: {exc}", file=file, line=line, step=step, hint=exc.hint) from None

    return parsed


def _branch(raw: Mapping[str, Any], *, fail_at: Any) -> Branch:
    """A route branch: its label (name, bare label or target) and its test (label, expression or else)."""
    to, name, when = raw["to"], raw.get("name"), raw.get("when")
    if when is None:
        return Branch(to=to, p=float(raw["p"]), when=name or to, match=to)
    when = str(when)
    if when == "else":
        return Branch(to=to, p=float(raw["p"]), when=name or to, default=True)
    if conditions.is_label(when):
        return Branch(to=to, p=float(raw["p"]), when=name or when, match=when)
    fail_at(when)
    return Branch(to=to, p=float(raw["p"]), when=name or to, condition=when)


def _loop(raw: Mapping[str, Any], fail_at: Any) -> Loop:
    loop = Loop(**raw)
    if loop.condition is not None:
        fail_at(loop.condition)
    return loop


def _retry(raw: Mapping[str, Any]) -> Retry:
    opts = dict(raw)
    if "on" in opts:
        opts["on"] = tuple(opts["on"])
    return Retry(**opts)


def _check_references(wf: Workflow, file: str, where: Any, index: Mapping[str, int]) -> None:
    """What the schema cannot say: references, cycles, probabilities, loop and map targets."""
    ids = set(index)
    fallbacks = wf.fallback_owner

    def fail(step: Step, key: str, msg: str, hint: str) -> None:
        raise SpecError(msg, file=file, line=where(index[step.id], key) or step.line, step=step.id, hint=hint)

    for s in wf.steps:
        for key, refs in (("after", s.after), ("after_any", s.after_any)):
            for r in refs:
                if r not in ids:
                    fail(s, key, f"`{key}` names unknown step '{r}'", f"define a step '{r}' or remove it")
                if r == s.id:
                    fail(s, key, "a step cannot wait for itself", "use `loop` to repeat a step")
                if r in fallbacks:
                    fail(s, key, f"'{r}' is the fallback of '{fallbacks[r]}' and cannot be waited on",
                         f"wait for '{fallbacks[r]}' instead; its fallback stands in for it")
        both = set(s.after) & set(s.after_any)
        if both:
            fail(s, "after_any", f"'{sorted(both)[0]}' is in both `after` and `after_any`", "keep it in one of them")
        if len(s.after_any) == 1:
            fail(s, "after_any", "`after_any` with one step is a plain dependency", "move it to `after`")
        if s.route:
            total = sum(b.p for b in s.route)
            if abs(total - 1.0) > 1e-6:
                fail(s, "route", f"route probabilities sum to {total:g}, not 1", "make the branch `p` values add up to 1")
            whens = [b.when for b in s.route]
            if len(set(whens)) != len(whens):
                fail(s, "route", "two branches have the same label",
                     "give each branch its own `when`, or a `name` (routes to one step need names)")
            _check_exclusive(s, fail)
            for b in s.route:
                if b.to not in ids:
                    fail(s, "route", f"route goes to unknown step '{b.to}'", f"define a step '{b.to}'")
                if b.to == s.id or b.to in fallbacks:
                    fail(s, "route", f"route cannot go to '{b.to}'", "route to an ordinary downstream step")
        for r, n in s.uses.items():
            if r not in wf.resources:
                fail(s, "uses", f"uses unknown resource '{r}'", "declare it under `resources:` with a capacity")
            if n > wf.resources[r].capacity:
                fail(s, "uses", f"needs {n} of '{r}' but its capacity is {wf.resources[r].capacity}",
                     "raise the capacity or use fewer")
        if s.fallback is not None:
            if s.fallback not in ids or s.fallback == s.id:
                fail(s, "fallback", f"fallback '{s.fallback}' is not another step", "name a step defined in this file")
            fb = wf.step(s.fallback)
            if fb.inputs or fb.route or fb.loop or fb.map:
                fail(fb, "id", f"fallback step '{fb.id}' must not have its own after/route/loop/map",
                     f"it runs only when '{s.id}' gives up and then continues where '{s.id}' would have")
            if list(fallbacks).count(s.fallback) > 1 or sum(1 for x in wf.steps if x.fallback == s.fallback) > 1:
                fail(s, "fallback", f"'{s.fallback}' is the fallback of two steps", "give each its own fallback step")
        if s.on_failure is not None:
            _check_on_failure(wf, s, fail)
        if s.map is not None:
            if s.map.over not in s.after:
                fail(s, "map", f"map over '{s.map.over}', which is not in `after`", f"add '{s.map.over}' to `after`")
            if s.route or s.loop:
                fail(s, "map", "a map step cannot also route or loop", "put the route or loop on a step after it")
        if s.model is not None and wf.models and s.model not in wf.models and s.kind in ("chat", "embed", "classify"):
            fail(s, "model", f"model '{s.model}' is not declared under `models:`",
                 f"declare it or use one of: {', '.join(wf.models)}")

    graph = adjacency((s.id for s in wf.steps),
                      [(r, s.id) for s in wf.steps for r in s.inputs] + [(s.id, b.to) for s in wf.steps for b in s.route])
    cycle = find_cycle(graph)
    if cycle:
        names = [u for u, _ in cycle] + [cycle[0][0]]
        last = wf.step(cycle[-1][1])
        fail(last, "after", f"cycle without a bound: {' -> '.join(names)}",
             f"remove the back edge and put `loop: {{to: {cycle[-1][1]}, max: N}}` on '{cycle[-1][0]}'")
    for s in wf.steps:
        if s.loop is not None:
            if s.loop.to not in ids:
                fail(s, "loop", f"loop goes back to unknown step '{s.loop.to}'", "name an earlier step")
            if s.loop.to != s.id and not has_path(graph, s.loop.to, s.id):
                fail(s, "loop", f"loop target '{s.loop.to}' is not upstream of '{s.id}'",
                     "a loop goes back to a step this one (indirectly) waits on")
            _check_exhausted(s, fail)
            region = set(wf.loop_region(s.id))
            for inner in region - {s.id}:
                exits = {b.to for b in wf.step(inner).route}  # a branch that leaves the body ends the loop there
                for v in wf.successors(inner):
                    if v not in region and v not in exits:
                        fail(s, "loop", f"'{v}' waits on '{inner}' inside the loop of '{s.id}' and would run once per pass",
                             f"make '{v}' wait on '{s.id}' (the end of the loop) instead")
    ends = wf.terminal_steps()
    if len(ends) > 1 and not wf.ends_exclusive():
        for i, first in enumerate(ends):
            for second in ends[i + 1:]:
                router = wf.exclusive_by(first, second)
                if router:
                    fail(wf.step(second), "id", f"'{first}' and '{second}' end the workflow in different branches "
                         f"of route '{router}', while other steps end it in parallel",
                         f"add a step with `after_any: [{first}, {second}]` so that the branches meet before the end")
    if not wf.initial_steps():
        raise SpecError("no step can start: every step waits on another", file=file, line=1,
                        hint="give at least one step no `after`")


def _check_exclusive(s: Step, fail: Any) -> None:
    """A route whose branches test expressions: one default at most, and no two tests true at once, no gaps."""
    defaults = [b for b in s.route if b.default]
    if len(defaults) > 1:
        fail(s, "route", "two branches say `when: else`", "keep one default branch")
    tests = {b.when: conditions.parse(b.condition) for b in s.route if b.condition is not None}
    if not tests:
        return
    labels = [b.when for b in s.route if b.match is not None]
    names = ", ".join(f"'{b}'" for b in tests)
    if labels and not defaults:
        fail(s, "route", f"branches {', '.join(repr(x) for x in labels)} match labels while {names} test "
             "expressions, and whether both can hold cannot be decided",
             "add a default branch `{when: else, to: STEP, p: P}`, or write every branch as an expression")
    if labels:
        return
    domains: dict[tuple[str, ...], conditions.Domain] | None = {("output", "label"): conditions.Domain(values=tuple(s.labels)),
               ("output", "score"): conditions.Domain(low=0.0, high=1.0)} if s.kind == "classify" else None
    verdict = conditions.exclusivity(tests, has_default=bool(defaults), domains=domains)
    if verdict.problem == "overlap":
        a, b = verdict.branches
        fail(s, "route", f"the conditions of branches '{a}' and '{b}' both hold when {verdict.example}",
             "make the conditions exclusive (a route takes exactly one branch)")
    if verdict.problem == "gap":
        fail(s, "route", f"no branch's condition holds when {verdict.example}",
             "cover that case, or add a default branch `{when: else, to: STEP, p: P}`")
    if verdict.problem == "undecided" and not defaults:
        fail(s, "route", f"whether the conditions of {names} exclude each other and cover every output cannot "
             f"be decided ({verdict.reason})", "add a default branch `{when: else, to: STEP, p: P}`")


def _check_exhausted(s: Step, fail: Any) -> None:
    """A step that loops and routes must say which branch it takes once its loop budget is spent."""
    assert s.loop is not None
    whens = [b.when for b in s.route]
    if s.loop.exhausted is None:
        if s.route:
            fail(s, "loop", f"'{s.id}' loops and routes but does not say where it goes once its {s.loop.max} "
                 "pass(es) are spent", f"add `exhausted: BRANCH` to its loop, one of: {', '.join(whens)}")
        return
    if not s.route:
        fail(s, "loop", "`loop.exhausted` names a route branch, but the step does not route",
             "remove it: a loop without a route finishes plainly once its budget is spent")
    if s.loop.exhausted not in whens:
        fail(s, "loop", f"`loop.exhausted` is '{s.loop.exhausted}', which is no branch of the route",
             f"name one of: {', '.join(whens)}")
    if s.loop.when in whens:
        fail(s, "loop", f"the loop's `when` '{s.loop.when}' is also a route branch, so an output cannot say which",
             "give the loop a `when` that no branch uses")


def _check_on_failure(wf: Workflow, s: Step, fail: Any) -> None:
    """A failure handler is a step of its own that nothing waits on; it runs only when a step fails for good."""
    h = s.on_failure
    if h not in wf.step_ids or h == s.id:
        fail(s, "on_failure", f"on_failure '{h}' is not another step", "name a step defined in this file")
    handler = wf.step(h)  # type: ignore[arg-type]
    if handler.inputs or handler.route or handler.loop or handler.map or handler.on_failure or wf.successors(h):  # type: ignore[arg-type]
        fail(handler, "id", f"failure handler '{h}' must not have after/route/loop/map/on_failure, nor be waited on",
             f"it runs only when '{s.id}' fails for good, and the case ends after it")
    if h in wf.fallback_owner or any(x.fallback == h for x in wf.steps):
        fail(s, "on_failure", f"'{h}' is a fallback step and cannot also handle failures",
             "give the failure handler its own step")
    if s.id in wf.fallback_owner:
        fail(s, "on_failure", "a fallback step inherits the on_failure of the step it stands in for",
             f"put on_failure on '{wf.root_of(s.id)}'")
    if s.map is not None:
        fail(s, "on_failure", "a map step cannot have on_failure (its other items would be left running)",
             "put the map inside a step that can fail as a whole, or give the map's items a fallback")
