"""What each place and transition of a lowered net *is*, as typed records made by :func:`~petriflow.net.lower.lower`.

The planner, the simulator and the tests must agree on which transition is
a step's start, which finish chooses which route branch, which one takes
the loop budget, which fails, retries or gives up, and which spawns or
collects how many map items. :class:`~petriflow.net.petrinet.Origin` says
that in words for people and drawings; deciding by comparing those words
(or by parsing ``"3 item(s)"`` back into a number) lets two readers drift
apart. So the lowering also writes down, next to the net, one
:class:`StepWiring` per step that names its transitions and places by
role (enums, ints, place and transition ids), and a :class:`NetWiring` for
the whole net. Readers map over these records; nothing reads ``Origin``
to decide.

What a record owns (each node is owned once, checked when the record is
built): a step owns its start, finish, fail, retry, give-up, spawn, item and
collect transitions, and its running, retry budget, back-off, hand-over,
map items/done/count places, and, for the step that declares a loop, the
loop budget and the place the loop re-enters through. The net owns begin,
end, source, sink, the resource places and the *links*: the dependency and
join places between steps. Records may *refer* to nodes they do not own: a
fallback finishes as the step it stands in for, so its loop back takes
that step's loop budget, and a start entered by a loop names the looping
step's entry place.

>>> from petriflow.net.lower import lower
>>> from petriflow.spec import WorkflowBuilder
>>> net = lower(WorkflowBuilder("w").step("a", kind="python")
...             .step("b", kind="python", after=["a"], retry={"max_attempts": 2}).build())
>>> w = net.require_wiring()
>>> w.steps["b"].retry.fail, w.role_of("b.retry"), w.place_role("a.to.b")
('b.fail', <TransitionRole.RETRY: 'retry'>, <PlaceRole.DEPENDENCY: 'dependency'>)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import TypeVar

from petriflow.errors import NetError

__all__ = [
    "EntryKind", "Finish", "GiveUp", "Link", "LoopWiring", "MapWiring", "NetWiring", "PlaceRole", "RetryWiring",
    "Start", "StepWiring", "TransitionRole", "Way",
]


class TransitionRole(Enum):
    """What firing a transition means for the workflow."""

    BEGIN = "begin"  # the case starts: source -> the initial steps' inputs
    END = "end"  # the terminal steps' outputs -> sink
    START = "start"  # a step starts one attempt, by one way in (see Way)
    FINISH = "finish"  # a step finishes with no choice to make
    ROUTE = "route"  # a step finishes choosing one branch of its route
    LOOP_BACK = "loop_back"  # a step finishes by going round its loop (takes a loop budget token)
    FAIL = "fail"  # an attempt fails or times out (takes a retry budget token)
    RETRY = "retry"  # the back-off is over: the next attempt starts
    GIVE_UP = "give_up"  # the step hands over to its fallback
    FAIL_OUT = "fail_out"  # the step failed for good: its on_failure handler runs, then the case ends
    SPAWN = "spawn"  # a map step spawns k items (k is Start.items)
    ITEM_START = "item_start"  # one map item starts
    ITEM_FINISH = "item_finish"  # one map item is done
    COLLECT = "collect"  # a map step collects exactly k done items and finishes


class PlaceRole(Enum):
    """What a token on a place means for the workflow."""

    SOURCE = "source"
    SINK = "sink"
    RESOURCE = "resource"  # capacity tokens shared by all cases
    DEPENDENCY = "dependency"  # one step (or begin) done, for another step (or end): AND-join input
    JOIN = "join"  # one of several inputs done: XOR-join input
    RUNNING = "running"  # an attempt of the step is in flight
    LOOP_BUDGET = "loop_budget"  # passes left round a loop
    LOOP_ENTRY = "loop_entry"  # a loop going back, on its way into the loop's target
    RETRY_BUDGET = "retry_budget"  # retries left
    BACKOFF = "backoff"  # a failed attempt waiting for its retry
    HANDOVER = "handover"  # the step gave up; its fallback may start
    FAILED = "failed"  # the step failed for good; its on_failure handler may start
    ITEMS = "items"  # map items spawned, not started
    DONE = "done"  # map items finished, not collected
    COUNT = "count"  # how many items this map spawned (one place per k)


class EntryKind(Enum):
    """Where a start comes from."""

    INPUTS = "inputs"  # the step's ordinary inputs (dependencies, a join, a route branch, begin)
    LOOP = "loop"  # a loop coming back from Way.via
    FALLBACK = "fallback"  # Way.via gave up and hands over
    FAILURE = "failure"  # Way.via failed for good: this step is its on_failure handler


@dataclass(frozen=True)
class Way:
    """One way into a step: ``via`` is the looping or giving-up step, ``place`` the loop-entry or hand-over place.

    Ordinary inputs have neither: their places are links, read off the start's preset.
    """

    kind: EntryKind
    via: str | None = None
    place: str | None = None

    def __post_init__(self) -> None:
        ordinary = self.kind is EntryKind.INPUTS
        if ordinary != (self.via is None) or ordinary != (self.place is None):
            raise NetError(f"a {self.kind.value} way must name via and place exactly when it is not ordinary inputs")


@dataclass(frozen=True)
class Start:
    """A transition that starts a step by one way in; ``items`` is k for a map spawn, 0 for a plain start."""

    transition: str
    way: Way
    items: int = 0

    @property
    def role(self) -> TransitionRole:
        return TransitionRole.SPAWN if self.items else TransitionRole.START


@dataclass(frozen=True)
class LoopWiring:
    """A loop declared on ``step``: going back takes a token of ``budget`` and re-enters ``to`` through ``entry``."""

    step: str
    to: str
    budget: str
    entry: str


_FINISHES = (TransitionRole.FINISH, TransitionRole.ROUTE, TransitionRole.LOOP_BACK)


@dataclass(frozen=True)
class Finish:
    """One way a step finishes: plain, a route branch (``label`` is its ``when``), or round a loop (``loop``)."""

    transition: str
    role: TransitionRole
    label: str = ""
    loop: LoopWiring | None = None

    def __post_init__(self) -> None:
        if self.role not in _FINISHES:
            raise NetError(f"a finish cannot have role {self.role.value}")
        if (self.role is TransitionRole.LOOP_BACK) != (self.loop is not None):
            raise NetError(f"finish '{self.transition}' names a loop exactly when it loops back")


@dataclass(frozen=True)
class RetryWiring:
    """``fail`` takes a ``budget`` token and puts the attempt on ``backoff``; ``retry`` starts the next attempt."""

    fail: str
    retry: str
    budget: str
    backoff: str


@dataclass(frozen=True)
class GiveUp:
    """``transition`` ends the step's attempt and puts a token on ``handover``, where fallback ``to`` starts."""

    transition: str
    to: str
    handover: str


@dataclass(frozen=True)
class MapWiring:
    """A map step's inner parts; its spawns are the step's starts (``Start.items`` = k)."""

    item_start: str
    item_finish: str
    items: str
    done: str
    counts: Mapping[int, str]  # k -> the place remembering that k items were spawned
    collects: Mapping[int, str]  # k -> the transition collecting exactly k done items


@dataclass(frozen=True)
class StepWiring:
    """One step's transitions and places by role (see the module docstring for what it owns)."""

    step: str
    running: str
    starts: tuple[Start, ...]
    finishes: tuple[Finish, ...] = ()  # empty for a map step: it finishes by a collect
    loop: LoopWiring | None = None  # the loop this step declares (a fallback refers to its owner's in finishes)
    retry: RetryWiring | None = None
    give_up: GiveUp | None = None
    map: MapWiring | None = None
    on_failure: GiveUp | None = None  # failing for good hands over to the handler (role FAIL_OUT, place FAILED)

    @property
    def attempts(self) -> tuple[str, ...]:
        """The transitions that begin an attempt, taking the step's resources: the starts (a map: the item start),
        then the retry."""
        first = (self.map.item_start,) if self.map is not None else tuple(s.transition for s in self.starts)
        return first + ((self.retry.retry,) if self.retry is not None else ())

    def transitions(self) -> Iterator[tuple[str, TransitionRole]]:
        """The transitions this step owns, with their roles."""
        yield from ((s.transition, s.role) for s in self.starts)
        yield from ((f.transition, f.role) for f in self.finishes)
        if self.retry is not None:
            yield self.retry.fail, TransitionRole.FAIL
            yield self.retry.retry, TransitionRole.RETRY
        if self.give_up is not None:
            yield self.give_up.transition, TransitionRole.GIVE_UP
        if self.on_failure is not None:
            yield self.on_failure.transition, TransitionRole.FAIL_OUT
        if self.map is not None:
            yield self.map.item_start, TransitionRole.ITEM_START
            yield self.map.item_finish, TransitionRole.ITEM_FINISH
            yield from ((t, TransitionRole.COLLECT) for t in self.map.collects.values())

    def places(self) -> Iterator[tuple[str, PlaceRole]]:
        """The places this step owns, with their roles."""
        yield self.running, PlaceRole.RUNNING
        if self.loop is not None:
            yield self.loop.budget, PlaceRole.LOOP_BUDGET
            yield self.loop.entry, PlaceRole.LOOP_ENTRY
        if self.retry is not None:
            yield self.retry.budget, PlaceRole.RETRY_BUDGET
            yield self.retry.backoff, PlaceRole.BACKOFF
        if self.give_up is not None:
            yield self.give_up.handover, PlaceRole.HANDOVER
        if self.on_failure is not None:
            yield self.on_failure.handover, PlaceRole.FAILED
        if self.map is not None:
            yield self.map.items, PlaceRole.ITEMS
            yield self.map.done, PlaceRole.DONE
            yield from ((p, PlaceRole.COUNT) for p in self.map.counts.values())


@dataclass(frozen=True)
class Link:
    """A place between steps: ``from_steps`` done (empty: the case began), for ``into`` (None: the workflow's end).

    A ``DEPENDENCY`` has one producer (AND-join: the consumer needs all its
    links); a ``JOIN`` is filled by whichever of ``from_steps`` finishes (XOR-join).
    """

    place: str
    role: PlaceRole
    into: str | None
    from_steps: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.role not in (PlaceRole.DEPENDENCY, PlaceRole.JOIN):
            raise NetError(f"link '{self.place}' cannot have role {self.role.value}")


_Role = TypeVar("_Role", TransitionRole, PlaceRole)


def _index(pairs: Iterable[tuple[str, str | None, _Role]]) -> tuple[dict[str, _Role], dict[str, str]]:
    """Roles and owning steps by node id; a node claimed twice is a NetError (each node has one meaning)."""
    roles: dict[str, _Role] = {}
    owner: dict[str, str] = {}
    for node, step, role in pairs:
        if node in roles:
            raise NetError(f"'{node}' is wired twice: as {roles[node].value} and as {role.value}")
        roles[node] = role
        if step is not None:
            owner[node] = step
    return roles, owner


@dataclass(frozen=True)
class NetWiring:
    """The whole net by role: begin and end, source and sink, resources, links, and one record per step.

    ``steps`` is in workflow order; ``resources`` maps a resource id to its
    place, in place order.
    """

    begin: str
    end: str
    source: str
    sink: str
    steps: Mapping[str, StepWiring]
    resources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    links: Mapping[str, Link] = field(default_factory=lambda: MappingProxyType({}))
    transition_roles: Mapping[str, TransitionRole] = field(init=False, repr=False, compare=False)
    place_roles: Mapping[str, PlaceRole] = field(init=False, repr=False, compare=False)
    _owner: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "steps", MappingProxyType(dict(self.steps)))
        set_(self, "resources", MappingProxyType(dict(self.resources)))
        set_(self, "links", MappingProxyType(dict(self.links)))

        def transitions() -> Iterator[tuple[str, str | None, TransitionRole]]:
            yield self.begin, None, TransitionRole.BEGIN
            yield self.end, None, TransitionRole.END
            for sid, w in self.steps.items():
                yield from ((t, sid, role) for t, role in w.transitions())

        def places() -> Iterator[tuple[str, str | None, PlaceRole]]:
            yield self.source, None, PlaceRole.SOURCE
            yield self.sink, None, PlaceRole.SINK
            yield from ((p, None, PlaceRole.RESOURCE) for p in self.resources.values())
            yield from ((p, None, link.role) for p, link in self.links.items())
            for sid, w in self.steps.items():
                yield from ((p, sid, role) for p, role in w.places())

        t_roles, t_owner = _index(transitions())
        p_roles, p_owner = _index(places())
        set_(self, "transition_roles", MappingProxyType(t_roles))
        set_(self, "place_roles", MappingProxyType(p_roles))
        set_(self, "_owner", MappingProxyType({**t_owner, **p_owner}))

    def role_of(self, transition: str) -> TransitionRole:
        """What firing ``transition`` means; a NetError for an id the wiring does not know."""
        try:
            return self.transition_roles[transition]
        except KeyError:
            raise NetError(f"transition '{transition}' is not wired") from None

    def place_role(self, place: str) -> PlaceRole:
        """What a token on ``place`` means; a NetError for an id the wiring does not know."""
        try:
            return self.place_roles[place]
        except KeyError:
            raise NetError(f"place '{place}' is not wired") from None

    def step_of(self, node: str) -> str | None:
        """The step whose record owns ``node`` (None for begin, end, source, sink, resources and links)."""
        return self._owner.get(node)

    @property
    def budgets(self) -> frozenset[str]:
        """The loop and retry budget places: counters the final marking ignores."""
        return frozenset(p for p, role in self.place_roles.items()
                         if role in (PlaceRole.LOOP_BUDGET, PlaceRole.RETRY_BUDGET))
