"""What a step sees: the one rule that ``petriflow check``, the planner and the executor share.

A step reads exactly the outputs of the steps that have finished on *every*
path to it, plus the case inputs (and, inside a loop, ``loop_pass`` and
``previous``). In the step graph that is:

* an ``after`` input ``u`` (and the router whose branch leads here) has
  finished, and so has everything ``u`` sees: the union over AND inputs;
* of an ``after_any`` (XOR) join only what *every* alternative sees (and
  the alternative itself) is certain: the intersection. Which alternative
  ran is read through the join's own names, :data:`AFTER_ANY` (its output)
  and :data:`AFTER_ANY_STEP` (its step id);
* a fallback sees what the step it stands in for sees; a failure handler
  sees what every step that hands over to it saw before it started.

A template that names a step outside that set may find it missing on some
path: :func:`problems` finds every such reference, with a path of steps on
which the named step did not run.

>>> from petriflow.spec import loads
>>> wf = loads('''
... name: v
... steps:
...   - {id: pick, kind: python, function: m:f, route: [{to: a, p: 0.5}, {to: b, p: 0.5}]}
...   - {id: a, kind: python, function: m:f}
...   - {id: b, kind: python, function: m:f}
...   - {id: join, kind: chat, prompt: "{a}", after_any: [a, b]}
... ''')
>>> sorted(visible(wf, "join"))
['pick']
>>> print(problems(wf)[0].message)
step 'join': the prompt names '{a}', which may not have run: pick -> b -> join: `a` did not run
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from petriflow.spec.model import Step, Workflow

__all__ = ["AFTER_ANY", "AFTER_ANY_STEP", "Reference", "names_in", "problems", "visible", "visible_table"]

AFTER_ANY = "after_any"
"""In a step with ``after_any``: the output of whichever of those steps ran (``{after_any}``, ``inputs["after_any"]``)."""
AFTER_ANY_STEP = "after_any_step"
"""In a step with ``after_any``: the id of the step that ran (``{after_any_step}``, ``inputs["after_any_step"]``)."""


def _preds(wf: Workflow, sid: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A step's AND inputs (its ``after`` and the routers that lead to it) and its XOR inputs."""
    root = wf.step(wf.root_of(sid))
    return tuple(dict.fromkeys((*root.after, *wf.routers_of(root.id)))), root.after_any


def _handled_by(wf: Workflow) -> dict[str, tuple[str, ...]]:
    """Failure handler -> the steps that hand over to it."""
    out: dict[str, list[str]] = {}
    for s in wf.steps:
        if s.on_failure:
            out.setdefault(s.on_failure, []).append(s.id)
    return {k: tuple(v) for k, v in out.items()}


def visible_table(wf: Workflow) -> dict[str, frozenset[str]]:
    """Every step's visible set, in one pass over the step graph in dependency order (it is acyclic)."""
    handled = _handled_by(wf)
    deps = {s.id: (*_preds(wf, s.id)[0], *_preds(wf, s.id)[1], *handled.get(s.id, ())) for s in wf.steps}
    table: dict[str, frozenset[str]] = {}
    todo = [s.id for s in wf.steps]
    while todo:
        later = []
        for sid in todo:
            if any(u not in table for u in deps[sid]):
                later.append(sid)
                continue
            if sid in handled:
                table[sid] = frozenset.intersection(*(table[o] for o in handled[sid]))
                continue
            ands, xors = _preds(wf, sid)
            out = frozenset().union(*(table[u] | {u} for u in ands))
            if xors:
                out |= frozenset.intersection(*(table[u] | {u} for u in xors))
            table[sid] = out
        if len(later) == len(todo):  # a cycle: the loader refuses these, so only a hand-made Workflow
            raise ValueError(f"the steps {later} wait on each other")
        todo = later
    return table


def visible(wf: Workflow, step_id: str) -> frozenset[str]:
    """The steps whose outputs ``step_id`` reads: those finished on every path to it."""
    return visible_table(wf)[step_id]


def names_in(template: str) -> Iterator[str]:
    """The top-level names a ``{name}`` template reads (``{previous[a]}`` reads ``previous``)."""
    for _, field, _, _ in string.Formatter().parse(template):
        if field:
            yield field.split(".", 1)[0].split("[", 1)[0]


def _templates(step: Step) -> Iterator[tuple[str, str]]:
    """``(what, template)`` for every template of a step: prompt, system, and string tool arguments."""
    if step.prompt:
        yield "prompt", step.prompt
    if step.system:
        yield "system prompt", step.system
    args = step.config.get("args")
    if isinstance(args, Mapping):
        for k, v in args.items():
            if isinstance(v, str):
                yield f"argument '{k}'", v


@dataclass(frozen=True)
class Reference:
    """A template of ``step`` names ``missing``, which did not run on the path ``path`` (steps, in order)."""

    step: str
    what: str
    missing: str
    path: tuple[str, ...]

    @property
    def message(self) -> str:
        return (f"step '{self.step}': the {self.what} names '{{{self.missing}}}', which may not have run: "
                f"{' -> '.join(self.path)}: `{self.missing}` did not run")

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "in": self.what, "missing": self.missing, "path": list(self.path),
                "message": self.message}


def _path_without(wf: Workflow, table: Mapping[str, frozenset[str]], sid: str, missing: str) -> tuple[str, ...]:
    """A chain of steps from a start to ``sid`` on which ``missing`` does not run (it is not in ``visible``)."""
    handled = _handled_by(wf)
    path, cur = [sid], sid
    for _ in range(len(wf.steps)):
        ands, xors = _preds(wf, cur)
        owners = handled.get(cur, ())
        nxt = next((u for u in (*ands, *xors, *owners) if u != missing and missing not in table[u]), None)
        if nxt is None:
            break
        path.append(nxt)
        cur = nxt
    return tuple(reversed(path))


def problems(wf: Workflow) -> list[Reference]:
    """Every template reference to a step that may be missing where it is read."""
    ids = set(wf.step_ids)
    table = visible_table(wf)
    out: list[Reference] = []
    for s in wf.steps:
        seen = table[s.id]
        for what, template in _templates(s):
            try:
                names = list(dict.fromkeys(names_in(template)))
            except ValueError:
                continue  # a malformed template is the renderer's error, with its own message
            for name in names:
                if name in ids and name not in seen:
                    out.append(Reference(s.id, what, name, _path_without(wf, table, s.id, name)))
    return out
