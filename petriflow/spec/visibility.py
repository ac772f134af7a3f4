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


class _Graph:
    """The step graph as the rule reads it, built in one pass: who each step waits on, and how.

    ``ands[i]`` are step ``i``'s AND inputs (its root's ``after`` and the
    routers that lead to the root), ``xors[i]`` its root's ``after_any``,
    ``owners[i]`` the steps that hand over to it when it is a failure handler;
    all as step indices in file order. Building it once keeps the table
    linear in the workflow's size (looking up a step's routers per step, as
    ``Workflow.routers_of`` does, would scan every step for each).
    """

    def __init__(self, wf: Workflow) -> None:
        self.ids = wf.step_ids
        index = {sid: i for i, sid in enumerate(self.ids)}
        owner = wf.fallback_owner
        routers: dict[str, list[str]] = {}
        handled: dict[str, list[str]] = {}
        for s in wf.steps:
            for b in s.route:
                routers.setdefault(b.to, []).append(s.id)
            if s.on_failure:
                handled.setdefault(s.on_failure, []).append(s.id)

        def root(sid: str) -> Step:
            seen = {sid}
            while sid in owner and owner[sid] not in seen:
                sid = owner[sid]
                seen.add(sid)
            return wf.step(sid)

        def idx(names: Iterator[str] | tuple[str, ...]) -> tuple[int, ...]:
            return tuple(index[u] for u in dict.fromkeys(names) if u in index)

        self.ands: list[tuple[int, ...]] = []
        self.xors: list[tuple[int, ...]] = []
        self.owners: list[tuple[int, ...]] = []
        for s in wf.steps:
            r = root(s.id)
            self.ands.append(idx((*r.after, *routers.get(r.id, ()))))
            self.xors.append(idx(r.after_any))
            self.owners.append(idx(tuple(handled.get(s.id, ()))))

    def order(self) -> list[int]:
        """The steps in dependency order (Kahn's algorithm); ``ValueError`` on a cycle."""
        n = len(self.ids)
        succ: list[list[int]] = [[] for _ in range(n)]
        waiting = [0] * n
        for i in range(n):
            deps = set((*self.ands[i], *self.xors[i], *self.owners[i]))
            waiting[i] = len(deps)
            for u in deps:
                succ[u].append(i)
        ready = [i for i in range(n) if not waiting[i]]
        out: list[int] = []
        while ready:
            i = ready.pop()
            out.append(i)
            for v in succ[i]:
                waiting[v] -= 1
                if not waiting[v]:
                    ready.append(v)
        if len(out) != n:  # a cycle: the loader refuses these, so only a hand-made Workflow
            raise ValueError(f"the steps {[self.ids[i] for i in range(n) if waiting[i]]} wait on each other")
        return out

    def seen_bits(self) -> list[int]:
        """Per step, its visible set as a bitset over step indices (bit ``i`` = step ``i``).

        One pass in dependency order; a union or an intersection of two sets
        is one integer ``|`` or ``&``, so the table costs O(steps x edges / 64)
        word operations, not a set of names per step.
        """
        bits = [0] * len(self.ids)
        for i in self.order():
            if self.owners[i]:
                acc = bits[self.owners[i][0]]
                for u in self.owners[i][1:]:
                    acc &= bits[u]
                bits[i] = acc
                continue
            out = 0
            for u in self.ands[i]:
                out |= bits[u] | (1 << u)
            if self.xors[i]:
                u0 = self.xors[i][0]
                common = bits[u0] | (1 << u0)
                for u in self.xors[i][1:]:
                    common &= bits[u] | (1 << u)
                out |= common
            bits[i] = out
        return bits

    def names(self, bits: int) -> frozenset[str]:
        """The step ids of a bitset."""
        out = []
        while bits:
            low = bits & -bits
            out.append(self.ids[low.bit_length() - 1])
            bits ^= low
        return frozenset(out)


def visible_table(wf: Workflow) -> dict[str, frozenset[str]]:
    """Every step's visible set, in one pass over the step graph in dependency order (it is acyclic)."""
    g = _Graph(wf)
    return {sid: g.names(b) for sid, b in zip(g.ids, g.seen_bits(), strict=True)}


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


def _path_without(g: _Graph, bits: list[int], i: int, missing: int) -> tuple[str, ...]:
    """A chain of steps from a start to step ``i`` on which ``missing`` does not run (it is not in ``visible``)."""
    path, cur = [i], i
    for _ in range(len(g.ids)):
        nxt = next((u for u in (*g.ands[cur], *g.xors[cur], *g.owners[cur])
                    if u != missing and not bits[u] >> missing & 1), None)
        if nxt is None:
            break
        path.append(nxt)
        cur = nxt
    return tuple(g.ids[k] for k in reversed(path))


def problems(wf: Workflow) -> list[Reference]:
    """Every template reference to a step that may be missing where it is read."""
    g = _Graph(wf)
    index = {sid: i for i, sid in enumerate(g.ids)}
    bits: list[int] | None = None  # computed on the first template that names a step
    out: list[Reference] = []
    for i, s in enumerate(wf.steps):
        for what, template in _templates(s):
            try:
                names = list(dict.fromkeys(names_in(template)))
            except ValueError:
                continue  # a malformed template is the renderer's error, with its own message
            for name in names:
                if name not in index:
                    continue
                if bits is None:
                    bits = g.seen_bits()
                if not bits[i] >> index[name] & 1:
                    out.append(Reference(s.id, what, name, _path_without(g, bits, i, index[name])))
    return out
