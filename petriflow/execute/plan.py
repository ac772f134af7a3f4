"""``plan(workflow) -> Dag``: the executable plan, read off the verified net.

What was verified is what runs. :func:`plan` lowers the workflow, checks the
net (or takes a report the caller already has) and refuses a net that is not
sound, with the checker's witness in the message. The :class:`Dag` is then
read off the *net*, not re-derived from the workflow: the lowering's
:class:`~petriflow.net.wiring.StepWiring` names each step's transitions by
role, and the plan maps over it. Every way a step can start (its ordinary
inputs, a loop coming back, a fallback hand-over) is the preset of one of
its start transitions, every way it can finish (a plain finish, a route
branch, a loop back) is one finish transition with the places it fills. The executor plays the token game on those control places
only (resources are semaphores shared by all cases), so every run it makes is
a firing sequence of the verified net by construction; :attr:`Dag.net` and
the transition ids in each plan let a test replay it.

>>> from petriflow.spec import WorkflowBuilder
>>> wf = (WorkflowBuilder("two").step("a", kind="python", function="builtins:len")
...       .step("b", kind="python", function="builtins:len", after=["a"]).build())
>>> dag = plan(wf)
>>> [e.transition for e in dag.steps["b"].entries], dag.steps["a"].outcomes[0].transition
(['b.start'], 'a.finish')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

from petriflow.errors import SpecError, UnsoundWorkflowError
from petriflow.net.lower import lower
from petriflow.net.petrinet import WorkflowNet
from petriflow.net.wiring import EntryKind, Finish, NetWiring, PlaceRole, StepWiring, TransitionRole
from petriflow.spec.model import Resource, Step, Workflow
from petriflow.spec.visibility import AFTER_ANY, AFTER_ANY_STEP, problems, visible_table

__all__ = ["Dag", "Entry", "MapPlan", "Outcome", "StepPlan", "plan"]

Places = tuple[tuple[str, int], ...]
"""Control places with arc weights: ``(("a.to.b", 1), ...)``."""


@dataclass(frozen=True)
class Entry:
    """One way a step can start: the start (or map spawn) transition and the control places it takes."""

    transition: str
    consumes: Places
    loop_from: str = ""
    items: int = 0  # for a map spawn: how many items this transition spawns


@dataclass(frozen=True)
class Outcome:
    """One way a step can finish: ``label`` is ``""`` (plain), a route's ``when``, or ``"loop"``."""

    label: str
    transition: str
    consumes: Places  # beyond the running place: a loop budget
    produces: Places


@dataclass(frozen=True)
class MapPlan:
    """A map step's inner transitions: per-item start and finish, and one collect per item count."""

    over: str
    max: int
    item_start: str
    item_finish: str
    collect: Mapping[int, Outcome]


@dataclass(frozen=True)
class StepPlan:
    """Everything the executor needs to run one step, with the net transitions that record it."""

    id: str
    step: Step
    entries: tuple[Entry, ...]
    outcomes: tuple[Outcome, ...]
    uses: tuple[tuple[str, int], ...]
    upstream: tuple[str, ...]
    owner: str | None = None  # set on a fallback step: the step it stands in for
    fallback: str | None = None
    fail: str | None = None
    retry_budget: str | None = None  # the net's retry counter place (shared by loop passes and map items)
    retry: str | None = None
    give_up: str | None = None
    map: MapPlan | None = None
    fail_out: Outcome | None = None  # failing for good hands over to the on_failure handler (label "failed")
    loop_body: tuple[str, ...] = ()  # a step that loops: the steps each pass runs (their outputs become `previous`)
    in_loop: bool = False  # the step (or the step it stands in for) is inside some loop's body
    handler: bool = False  # an on_failure handler: it starts when another step fails for good
    sees: frozenset[str] = frozenset()  # the steps finished on every path to this one (petriflow.spec.visibility)
    joins: tuple[str, ...] = ()  # its after_any steps: the one that ran is read as `after_any`

    def view(self, outputs: Mapping[str, Any]) -> dict[str, Any]:
        """What this step reads of a case's outputs: the steps it sees, and which of its ``after_any`` ran.

        ``outputs`` is in finish order (the executor re-inserts a step's
        output when it finishes again), so the last of the joins in it is
        the one that ran on this pass.
        """
        out = {u: outputs[u] for u in self.sees if u in outputs}
        if self.joins:
            ran = [u for u in outputs if u in self.joins]
            if ran:
                out[AFTER_ANY], out[AFTER_ANY_STEP] = outputs[ran[-1]], ran[-1]
        return out

    def outcome(self, label: str) -> Outcome:
        for o in self.outcomes:
            if o.label == label:
                return o
        raise KeyError(label)

    @cached_property
    def labels(self) -> tuple[str, ...]:
        """The route labels this step can choose (empty when it does not route)."""
        return tuple(o.label for o in self.outcomes if o.label not in ("", "loop"))


@dataclass(frozen=True)
class Dag:
    """The immutable executable plan of a verified workflow.

    ``watchers`` says which steps may become ready when a control place gets
    a token; ``tracked`` lists every control place the executor keeps count
    of, with its initial tokens (loop budgets start full).
    """

    workflow: Workflow
    net: WorkflowNet
    report: Any
    steps: Mapping[str, StepPlan]
    begin: Outcome
    end: Entry
    watchers: Mapping[str, tuple[str, ...]]
    tracked: Mapping[str, int]
    resources: Mapping[str, Resource] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def name(self) -> str:
        return self.workflow.name


def _control(wiring: NetWiring, places: Mapping[str, int]) -> Places:
    """The places the executor counts per case: all but the resources (semaphores shared by every case)."""
    return tuple((p, w) for p, w in places.items() if wiring.place_role(p) is not PlaceRole.RESOURCE)


def _check(net: WorkflowNet, report: Any) -> Any:
    if report is None:
        from petriflow.verify.report import check

        report = check(net)
    if report.sound is not True:
        why = "is not sound" if report.sound is False else "could not be shown sound (the search hit a budget)"
        raise UnsoundWorkflowError(
            f"workflow '{net.name}' {why}; refusing to run it\n{report.explain()}",
            where=net.name,
            hint="fix the workflow so that `petriflow check` says sound, then run it",
        )
    return report


def _label(f: Finish) -> str:
    """An outcome's label: ``""`` for a plain finish, the branch's ``when``, or ``"loop"``."""
    if f.role is TransitionRole.ROUTE:
        return f.label
    return "loop" if f.role is TransitionRole.LOOP_BACK else ""


def _step_plan(net: WorkflowNet, w: StepWiring, s: Step, *, upstream: tuple[str, ...], owner: str | None,
               loop_body: tuple[str, ...], in_loop: bool, sees: frozenset[str], joins: tuple[str, ...]) -> StepPlan:
    """One step's plan: its wiring record, with the control places of each transition read off the net."""
    wiring = net.require_wiring()

    def pre(t: str) -> Places:
        return _control(wiring, net.preset(t))

    def post(t: str) -> Places:
        return _control(wiring, net.postset(t))

    entries = tuple(Entry(st.transition, pre(st.transition), (st.way.via or "") if st.way.kind is EntryKind.LOOP
                          else "", st.items) for st in w.starts)
    outcomes = tuple(Outcome(_label(f), f.transition, tuple((p, n) for p, n in pre(f.transition) if p != w.running),
                             post(f.transition)) for f in w.finishes)
    map_plan = None
    if w.map is not None:
        assert s.map is not None
        collect = {k: Outcome("", t, (), post(t)) for k, t in w.map.collects.items()}
        map_plan = MapPlan(s.map.over, s.map.max, w.map.item_start, w.map.item_finish, MappingProxyType(collect))
    retry = w.retry
    return StepPlan(
        id=s.id, step=s, entries=entries, outcomes=outcomes, uses=tuple(sorted(s.uses.items())), upstream=upstream,
        owner=owner, fallback=s.fallback, fail=retry.fail if retry else None,
        retry_budget=retry.budget if retry else None, retry=retry.retry if retry else None,
        give_up=w.give_up.transition if w.give_up else None, map=map_plan, loop_body=loop_body, in_loop=in_loop,
        sees=sees, joins=joins,
        fail_out=Outcome("failed", w.on_failure.transition, (), post(w.on_failure.transition)) if w.on_failure
        else None,
        handler=any(st.way.kind is EntryKind.FAILURE for st in w.starts),
    )


def plan(workflow: Workflow, *, report: Any = None, net: WorkflowNet | None = None) -> Dag:
    """Lower, verify (unless ``report`` is given) and read the executable plan off the net.

    Raises :class:`~petriflow.errors.UnsoundWorkflowError` with the witness
    when the net is not sound (or soundness is unknown).
    """
    net = lower(workflow) if net is None else net
    report = _check(net, report)
    refs = problems(workflow)
    if refs:
        raise SpecError(refs[0].message, file=workflow.source, step=refs[0].step,
                        hint="read it only where it ran on every path: after an XOR-join through {after_any}, "
                             "or wait for it with `after`; `petriflow check` lists every such reference")
    wf = workflow
    wiring = net.require_wiring()
    owners = wf.fallback_owner
    steps: dict[str, StepPlan] = {}
    bodies = {s.id: wf.loop_region(s.id) for s in wf.steps if s.loop is not None}
    looped = {v for body in bodies.values() for v in body}
    sees = visible_table(wf)
    for s in wf.steps:
        root = wf.root_of(s.id)  # a fallback (of a fallback) waits on what the step it stands in for waits on
        steps[s.id] = _step_plan(net, wiring.steps[s.id], s, upstream=wf.step(root).inputs + wf.routers_of(root),
                                 owner=owners.get(s.id), loop_body=bodies.get(root, ()), in_loop=root in looped,
                                 sees=sees[s.id], joins=wf.step(root).after_any)
    begin = Outcome("", wiring.begin, (), _control(wiring, net.postset(wiring.begin)))
    end = Entry(wiring.end, _control(wiring, net.preset(wiring.end)))
    watchers: dict[str, list[str]] = {}
    for sp in steps.values():
        for e in sp.entries:
            for p, _ in e.consumes:
                if sp.id not in watchers.setdefault(p, []):
                    watchers[p].append(sp.id)
    tracked = {p: 0 for p in watchers}
    tracked.update({p: 0 for p, _ in end.consumes})
    if wf.failure_handlers:  # a handler's finish marks the sink itself: the case ended through a failure path
        tracked[wiring.sink] = 0
    budgets = [p for sp in steps.values() for o in sp.outcomes for p, _ in o.consumes]
    budgets += [sp.retry_budget for sp in steps.values() if sp.retry_budget]
    for p in budgets:
        tracked[p] = int(net.initial[net.place_index(p)])
    return Dag(
        workflow=wf, net=net, report=report, steps=MappingProxyType(steps), begin=begin, end=end,
        watchers=MappingProxyType({p: tuple(v) for p, v in watchers.items()}),
        tracked=MappingProxyType(tracked), resources=MappingProxyType(dict(wf.resources)),
    )
