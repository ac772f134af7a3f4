"""``plan(workflow) -> Dag``: the executable plan, read off the verified net.

What was verified is what runs. :func:`plan` lowers the workflow, checks the
net (or takes a report the caller already has) and refuses a net that is not
sound, with the checker's witness in the message. The :class:`Dag` is then
read off the *net*, not re-derived from the workflow: every way a step can
start (its ordinary inputs, a loop coming back, a fallback hand-over) is the
preset of one of its start transitions, every way it can finish (a plain
finish, a route branch, a loop back) is one finish transition with the
places it fills. The executor plays the token game on those control places
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

from petriflow.errors import UnsoundWorkflowError
from petriflow.net.lower import lower
from petriflow.net.petrinet import WorkflowNet
from petriflow.spec.model import Resource, Step, Workflow

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


def _control(net: WorkflowNet, places: Mapping[str, int]) -> Places:
    return tuple((p, w) for p, w in places.items() if net.origins[p].construct != "resource")


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


def plan(workflow: Workflow, *, report: Any = None, net: WorkflowNet | None = None) -> Dag:
    """Lower, verify (unless ``report`` is given) and read the executable plan off the net.

    Raises :class:`~petriflow.errors.UnsoundWorkflowError` with the witness
    when the net is not sound (or soundness is unknown).
    """
    net = lower(workflow) if net is None else net
    report = _check(net, report)
    wf = workflow
    owners = wf.fallback_owner
    entries: dict[str, list[Entry]] = {s.id: [] for s in wf.steps}
    outcomes: dict[str, list[Outcome]] = {s.id: [] for s in wf.steps}
    extra: dict[str, dict[str, Any]] = {s.id: {} for s in wf.steps}
    collects: dict[str, dict[int, Outcome]] = {}
    begin: Outcome | None = None
    end: Entry | None = None
    for t in net.transitions:
        o = net.origins[t]
        pre, post = net.preset(t), net.postset(t)
        sid = o.step or ""
        running = f"{sid}.running"
        if o.construct == "begin":
            begin = Outcome("", t, (), _control(net, post))
        elif o.construct == "end":
            end = Entry(t, _control(net, pre))
        elif o.construct == "step" and o.role == "start":
            if wf.step(sid).map is not None:
                extra[sid]["item_start"] = t
            else:
                entries[sid].append(Entry(t, _control(net, pre), o.detail))
        elif o.construct == "map" and o.role == "spawns":
            loop_from = next((net.origins[p].detail for p in pre if net.origins[p].construct == "loop"), "")
            entries[sid].append(Entry(t, _control(net, pre), loop_from, int(o.detail.split()[0])))
        elif o.construct == "map" and o.role == "collects":
            n = int(o.detail.split()[0])
            collects.setdefault(sid, {})[n] = Outcome("", t, (), _control(net, post))
        elif o.construct in ("step", "route", "loop") and o.role in ("finish", "back"):
            if o.construct == "step" and wf.step(sid).map is not None:
                extra[sid]["item_finish"] = t
                continue
            label = {"step": "", "route": o.detail, "loop": "loop"}[o.construct]
            consumes = tuple((p, w) for p, w in _control(net, pre) if p != running)
            outcomes[sid].append(Outcome(label, t, consumes, _control(net, post)))
        elif o.construct == "retry" and o.role in ("fail", "retry"):
            extra[sid][o.role] = t
            if o.role == "fail":
                extra[sid]["retry_budget"] = next(p for p in pre if net.origins[p].role == "budget")
        elif o.construct == "fallback" and o.role == "give_up":
            extra[sid]["give_up"] = t
    assert begin is not None and end is not None, "a lowered workflow net has begin and end"
    steps: dict[str, StepPlan] = {}
    for s in wf.steps:
        owner = owners.get(s.id)
        root = wf.root_of(s.id)  # a fallback (of a fallback) waits on what the step it stands in for waits on
        map_plan = None
        if s.map is not None:
            map_plan = MapPlan(s.map.over, s.map.max, extra[s.id]["item_start"], extra[s.id]["item_finish"],
                               MappingProxyType(collects.get(s.id, {})))
        routers = wf.routers_of(root)
        steps[s.id] = StepPlan(
            id=s.id, step=s, entries=tuple(entries[s.id]), outcomes=tuple(outcomes[s.id]),
            uses=tuple(sorted(s.uses.items())), upstream=wf.step(root).inputs + routers, owner=owner,
            fallback=s.fallback, fail=extra[s.id].get("fail"), retry_budget=extra[s.id].get("retry_budget"), retry=extra[s.id].get("retry"),
            give_up=extra[s.id].get("give_up"), map=map_plan,
        )
    watchers: dict[str, list[str]] = {}
    for sp in steps.values():
        for e in sp.entries:
            for p, _ in e.consumes:
                if sp.id not in watchers.setdefault(p, []):
                    watchers[p].append(sp.id)
    tracked = {p: 0 for p in watchers}
    tracked.update({p: 0 for p, _ in end.consumes})
    budgets = [p for sp in steps.values() for o in sp.outcomes for p, _ in o.consumes]
    budgets += [sp.retry_budget for sp in steps.values() if sp.retry_budget]
    for p in budgets:
        tracked[p] = int(net.initial[net.place_index(p)])
    return Dag(
        workflow=wf, net=net, report=report, steps=MappingProxyType(steps), begin=begin, end=end,
        watchers=MappingProxyType({p: tuple(v) for p, v in watchers.items()}),
        tracked=MappingProxyType(tracked), resources=MappingProxyType(dict(wf.resources)),
    )
