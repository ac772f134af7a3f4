"""Lower a :class:`Workflow` to a :class:`WorkflowNet`, keeping the map back to the workflow.

How each construct becomes net structure (ids in brackets):

* a step ``s`` is a start transition [``s.start``], a running place
  [``s.running``] and a finish transition [``s.finish``], so a running step
  is a visible token;
* ``after: [u]`` is a place [``u.to.s``] per dependency, all consumed by the
  start (AND-join); ``after_any: [u, v]`` is one place [``any.s``] that each
  of them fills (XOR-join);
* a route is one finish transition per branch [``s.choose.LABEL``], in
  conflict on ``s.running`` (XOR-split);
* ``loop: {to: t, max: N}`` adds a transition [``s.loop``] that takes a
  token from a budget place holding N [``s.loop_budget``] and re-enters ``t``
  through its own start [``t.start_loop.s``]; the budget makes the loop
  provably bounded;
* ``map: {over: u, max: M}`` spawns k items for k = 1..M [``s.spawn{k}``],
  runs each [``s.start``/``s.finish``] and collects exactly k
  [``s.collect{k}``], remembering k in [``s.n{k}``];
* a resource is a place holding its capacity [``res.r``]; start takes,
  finish, failure and give-up return;
* retries: [``s.fail``] takes one token of a budget of ``max_attempts - 1``
  [``s.retries``] and waits in [``s.backoff``] until [``s.retry``]; a
  timeout is a failure;
* a fallback ``f`` of ``s``: [``s.give_up``] hands over to ``f``, whose
  finish continues where ``s`` would have;
* ``on_failure: h``: the last step of ``s``'s fallback chain (``s`` itself
  without one) gets [``x.fail_out``], which ends its attempt for good and
  puts a token on [``x.fails.to.h``]; ``h`` starts from it and its finish
  puts the token in the sink: an ordinary path, so soundness covers it (a
  step failing while others run in parallel leaves their tokens behind, and
  the check says so).

The net has one source [``source``] and one sink [``sink``]; the final
marking is one token in the sink with every resource back at capacity;
budget places may hold anything at the end.

Giving up is not tied to an empty retry budget (a P/T net cannot test for
zero), so the net allows a give-up after any attempt: more behaviour than the
executor shows, never less, which keeps deadlock and soundness verdicts safe.

Two descriptions come out next to the structure. Every node gets an
:class:`~petriflow.net.petrinet.Origin`: words for people and drawings
(witnesses told as steps, labels), never compared to decide anything. And
the net gets its :class:`~petriflow.net.wiring.NetWiring`: one typed record
per step naming its transitions and places by role (start and the way it is
entered, finish per outcome, fail, retry, give-up, spawn and collect per k
as ints...), which is what :func:`~petriflow.execute.plan.plan` and the
simulator's tables read. The ids above are readable, not an interface.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import cast

import numpy as np

from petriflow.errors import NetError
from petriflow.limits import check_matrix, dense_fits, failing
from petriflow.net.petrinet import Origin, WorkflowNet
from petriflow.net.sparse import SparseArcs
from petriflow.net.wiring import (
    EntryKind,
    Finish,
    GiveUp,
    Link,
    LoopWiring,
    MapWiring,
    NetWiring,
    PlaceRole,
    RetryWiring,
    Start,
    StepWiring,
    TransitionRole,
    Way,
)
from petriflow.spec.model import Step, Workflow

__all__ = ["lower"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass
class _Builder:
    """Collects places, transitions and arcs with their origins, then freezes them."""

    places: dict[str, int] = field(default_factory=dict)
    transitions: list[str] = field(default_factory=list)
    arcs: list[tuple[str, str, int]] = field(default_factory=list)
    origins: dict[str, Origin] = field(default_factory=dict)

    def place(self, pid: str, origin: Origin, tokens: int = 0) -> str:
        if pid not in self.places:
            self.places[pid] = tokens
            self.origins[pid] = origin
        return pid

    def transition(self, tid: str, origin: Origin, consume: dict[str, int], produce: dict[str, int]) -> str:
        """Add a transition; returns its id, which differs from ``tid`` when a sanitised label repeats."""
        base, n = tid, 2
        while tid in self.origins:  # a sanitised label may repeat
            tid, n = f"{base}{n}", n + 1
        self.transitions.append(tid)
        self.origins[tid] = origin
        self.arcs += [(p, tid, w) for p, w in consume.items() if w]
        self.arcs += [(tid, p, w) for p, w in produce.items() if w]
        return tid


def _merge(*parts: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in parts:
        for p, w in part.items():
            out[p] = out.get(p, 0) + w
    return out


@dataclass(frozen=True)
class _Out:
    """One way a step can finish, before its transition exists: role, branch label or loop, arcs beyond running."""

    role: TransitionRole
    consume: dict[str, int]
    produce: dict[str, int]
    label: str = ""
    loop: LoopWiring | None = None

    def origin(self, sid: str) -> Origin:
        if self.role is TransitionRole.ROUTE:
            return Origin("route", sid, "finish", self.label)
        if self.loop is not None:
            return Origin("loop", sid, "back", self.loop.to)
        return Origin("step", sid, "finish")

    def tid(self, sid: str) -> str:
        if self.role is TransitionRole.ROUTE:
            return f"{sid}.choose.{_UNSAFE.sub('_', self.label)}"
        return f"{sid}.loop" if self.loop is not None else f"{sid}.finish"


class _Lowering:
    def __init__(self, wf: Workflow) -> None:
        self.wf = wf
        self.b = _Builder()
        self.owner = wf.fallback_owner
        self.routers: dict[str, tuple[str, ...]] = {}  # wf.routers_of, read once: a scan per call is O(steps^2)
        for u in wf.steps:
            for br in u.route:
                if u.id not in self.routers.get(br.to, ()):
                    self.routers[br.to] = (*self.routers.get(br.to, ()), u.id)
        self.loops_into: dict[str, list[str]] = {}  # loop target -> the steps looping back to it, in order
        for u in wf.steps:
            if u.loop is not None:
                self.loops_into.setdefault(u.loop.to, []).append(u.id)
        self.handlers = wf.failure_handlers
        self.terminal = set(wf.terminal_steps())
        self.initial = set(wf.initial_steps())
        self.xor_end = wf.ends_exclusive()
        self.links: dict[str, Link] = {}
        self.resource_places: dict[str, str] = {}
        self.wired: dict[str, StepWiring] = {}

    def root_of(self, sid: str) -> str:
        """``Workflow.root_of`` over the owner map built once (the property rebuilds it per call)."""
        while sid in self.owner:
            sid = self.owner[sid]
        return sid

    # -- places ---------------------------------------------------------------

    def edge(self, u: str, v: str) -> str:
        """The place a token takes from ``u`` to ``v`` (``any.v`` for an XOR-join, ``any.end`` for exclusive ends)."""
        into = None if v == "end" else v
        if v == "end" and self.xor_end:
            pid = self.b.place("any.end", Origin("join", None, "end"))
            link = Link(pid, PlaceRole.JOIN, None, self.wf.terminal_steps())
        elif v != "end" and u in self.wf.step(v).after_any:
            pid = self.b.place(f"any.{v}", Origin("join", v))
            link = Link(pid, PlaceRole.JOIN, into, self.wf.step(v).after_any)
        else:
            pid = self.b.place(f"{u}.to.{v}", Origin("dependency", into, "input", u))
            link = Link(pid, PlaceRole.DEPENDENCY, into, () if u == "begin" else (u,))
        self.links.setdefault(pid, link)
        return pid

    def resources(self, s: Step) -> dict[str, int]:
        out: dict[str, int] = {}
        for r, n in s.uses.items():
            pid = self.b.place(f"res.{r}", Origin("resource", None, "capacity", r), self.wf.resources[r].capacity)
            self.resource_places.setdefault(r, pid)
            out[pid] = n
        return out

    def inputs(self, s: Step) -> list[tuple[Way, dict[str, int]]]:
        """Each way ``s`` can be entered, with the places it takes: ordinary inputs, one per loop coming back."""
        if s.id in self.handlers:
            return [(Way(EntryKind.FAILURE, f, self.failed_place(f, s.id)), {self.failed_place(f, s.id): 1})
                    for f in self.wf.step_ids if self.fails_to(f) == s.id]
        if s.id in self.owner:
            giver = self.owner[s.id]
            handover = self.b.place(f"{giver}.gives_up.to.{s.id}", Origin("fallback", s.id, "input", giver))
            return [(Way(EntryKind.FALLBACK, giver, handover), {handover: 1})]
        ordinary: dict[str, int] = {}
        if s.id in self.initial:
            ordinary[self.edge("begin", s.id)] = 1
        for u in (*s.after, *self.routers.get(s.id, ())):
            ordinary[self.edge(u, s.id)] = 1
        if s.after_any:
            ordinary[self.edge(s.after_any[0], s.id)] = 1
        ways = [(Way(EntryKind.INPUTS), ordinary)]
        for other in self.loops_into.get(s.id, ()):
            entry = self.b.place(f"{s.id}.loop_from.{other}", Origin("loop", s.id, "entry", other))
            ways.append((Way(EntryKind.LOOP, other, entry), {entry: 1}))
        return ways

    def fails_to(self, sid: str) -> str | None:
        """The handler ``sid`` hands over to when it fails for good: only the end of a fallback chain fails out."""
        return self.wf.step(self.root_of(sid)).on_failure if self.wf.step(sid).fallback is None else None

    def failed_place(self, sid: str, handler: str) -> str:
        return self.b.place(f"{sid}.fails.to.{handler}", Origin("failure", handler, "input", sid))

    def fail_out(self, s: Step, res: dict[str, int], running: str) -> GiveUp | None:
        handler = self.fails_to(s.id)
        if handler is None:
            return None
        place = self.failed_place(s.id, handler)
        t = self.b.transition(f"{s.id}.fail_out", Origin("failure", s.id, "fails", handler), {running: 1},
                              _merge({place: 1}, res))
        return GiveUp(t, handler, place)

    def loop_of(self, sid: str) -> LoopWiring:
        """The budget and re-entry places of the loop declared on ``sid``."""
        loop = self.wf.step(sid).loop
        assert loop is not None
        budget = self.b.place(f"{sid}.loop_budget", Origin("loop", sid, "budget", loop.to), loop.max)
        entry = self.b.place(f"{loop.to}.loop_from.{sid}", Origin("loop", loop.to, "entry", sid))
        return LoopWiring(sid, loop.to, budget, entry)

    def outcomes(self, sid: str) -> list[_Out]:
        """Each way ``sid`` can finish. A fallback finishes as its owner would; a map item finishes into ``done``."""
        sid = self.root_of(sid)
        if sid in self.handlers:  # a handler ends the case: straight to the sink
            return [_Out(TransitionRole.FINISH, {}, {self.b.place("sink", Origin("end", None, "sink")): 1})]
        s = self.wf.step(sid)
        routed = {b.to for b in s.route}
        always = {self.edge(sid, v): 1 for v in self.wf.successors(sid) if v not in routed}
        if sid in self.terminal:
            always[self.edge(sid, "end")] = 1
        outs: list[_Out]
        if not s.route:
            outs = [_Out(TransitionRole.FINISH, {}, always)]
        else:
            outs = [_Out(TransitionRole.ROUTE, {}, _merge(always, {self.edge(sid, b.to): 1}), label=b.when)
                    for b in s.route]
        if s.loop is not None:
            loop = self.loop_of(sid)
            outs.append(_Out(TransitionRole.LOOP_BACK, {loop.budget: 1}, _merge({loop.entry: 1}, self.redeliver(sid)),
                             loop=loop))
        return outs

    def redeliver(self, sid: str) -> dict[str, int]:
        """Inputs from outside a loop's body that its steps need again on the next pass.

        Their producers ran once, before the loop; their outputs persist, so
        going back hands each of them to the repeated step once more.
        """
        region = self.wf.loop_region(sid)
        inside = set(region)
        target = self.wf.step(sid).loop.to  # type: ignore[union-attr]
        out: dict[str, int] = {}
        for v in region:
            if v == target:
                continue
            step = self.wf.step(v)
            feeders = (*step.after, *self.routers.get(v, ()))
            out.update({self.edge(u, v): 1 for u in feeders if u not in inside})
            if step.after_any and not inside & set(step.after_any):
                out[self.edge(step.after_any[0], v)] = 1
        return out

    # -- one step ---------------------------------------------------------------
    def step(self, s: Step) -> None:
        b = self.b
        res = self.resources(s)
        running = b.place(f"{s.id}.running", Origin("step", s.id, "running"))
        owner = self.root_of(s.id)
        starts: list[Start] = []
        finishes: list[Finish] = []
        map_wiring = None
        for way, takes in self.inputs(s):
            via = way.via if way.kind is EntryKind.LOOP else None
            suffix = f"_loop.{via}" if via else ""
            if s.map is not None:
                items = b.place(f"{s.id}.items", Origin("map", s.id, "items"))
                for n in range(1, s.map.max + 1):
                    count = b.place(f"{s.id}.n{n}", Origin("map", s.id, "count", str(n)))
                    t = b.transition(f"{s.id}.spawn{n}{suffix}", Origin("map", s.id, "spawns", f"{n} item(s)"),
                                     takes, {items: n, count: 1})
                    starts.append(Start(t, way, items=n))
            else:
                t = b.transition(f"{s.id}.start{suffix}", Origin("step", s.id, "start", via or ""),
                                 _merge(takes, res), {running: 1})
                starts.append(Start(t, way))
        if s.map is not None:
            map_wiring = self.map_parts(s, res, running)
        else:
            target_is_map = owner != s.id and self.wf.step(owner).map is not None
            outs = ([_Out(TransitionRole.FINISH, {}, {f"{owner}.done": 1})] if target_is_map
                    else self.outcomes(s.id))
            for out in outs:
                t = b.transition(out.tid(s.id), out.origin(s.id), _merge({running: 1}, out.consume),
                                 _merge(out.produce, res))
                finishes.append(Finish(t, out.role, out.label, out.loop))
        self.wired[s.id] = StepWiring(
            step=s.id, running=running, starts=tuple(starts), finishes=tuple(finishes),
            loop=self.loop_of(s.id) if s.loop is not None else None,
            retry=self.retries(s, res, running), give_up=self.give_up(s, res, running), map=map_wiring,
            on_failure=self.fail_out(s, res, running),
        )

    def map_parts(self, s: Step, res: dict[str, int], running: str) -> MapWiring:
        """A map's item start and finish, and one collect per item count (a map neither routes nor loops)."""
        assert s.map is not None
        b = self.b
        items, done = f"{s.id}.items", b.place(f"{s.id}.done", Origin("map", s.id, "done"))
        item_start = b.transition(f"{s.id}.start", Origin("step", s.id, "start"), _merge({items: 1}, res),
                                  {running: 1})
        item_finish = b.transition(f"{s.id}.finish", Origin("step", s.id, "finish"), {running: 1},
                                   _merge({done: 1}, res))
        [out] = self.outcomes(s.id)  # the loader refuses a map that routes or loops: one plain outcome
        counts = {n: f"{s.id}.n{n}" for n in range(1, s.map.max + 1)}
        collects = {n: b.transition(f"{s.id}.collect{n}", Origin("map", s.id, "collects", f"{n} item(s)"),
                                    _merge({counts[n]: 1, done: n}, out.consume), out.produce)
                    for n in counts}
        return MapWiring(item_start, item_finish, items, done, MappingProxyType(counts), MappingProxyType(collects))

    def retries(self, s: Step, res: dict[str, int], running: str) -> RetryWiring | None:
        """Fail takes a retry token (a map shares ``max_attempts - 1`` per item over all items) and backs off."""
        if s.retry.max_attempts <= 1:
            return None
        b = self.b
        instances = s.map.max if s.map is not None else 1
        budget = b.place(f"{s.id}.retries", Origin("retry", s.id, "budget"), (s.retry.max_attempts - 1) * instances)
        backoff = b.place(f"{s.id}.backoff", Origin("retry", s.id, "backoff"))
        fail = b.transition(f"{s.id}.fail", Origin("retry", s.id, "fail"), {running: 1, budget: 1},
                            _merge({backoff: 1}, res))
        retry = b.transition(f"{s.id}.retry", Origin("retry", s.id, "retry"), _merge({backoff: 1}, res), {running: 1})
        return RetryWiring(fail, retry, budget, backoff)

    def give_up(self, s: Step, res: dict[str, int], running: str) -> GiveUp | None:
        if s.fallback is None:
            return None
        handover = self.b.place(f"{s.id}.gives_up.to.{s.fallback}", Origin("fallback", s.fallback, "input", s.id))
        t = self.b.transition(f"{s.id}.give_up", Origin("fallback", s.id, "give_up", s.fallback), {running: 1},
                              _merge({handover: 1}, res))
        return GiveUp(t, s.fallback, handover)

    def run(self, sparse: bool | None) -> WorkflowNet:
        b, wf = self.b, self.wf
        source = b.place("source", Origin("begin", None, "source"), 1)
        begin = b.transition("begin", Origin("begin", None, "begin"), {source: 1},
                             {self.edge("begin", s): 1 for s in wf.initial_steps()})
        for s in wf.steps:
            self.step(s)
        sink = b.place("sink", Origin("end", None, "sink"))
        end = b.transition("end", Origin("end", None, "end"), {self.edge(s, "end"): 1 for s in wf.terminal_steps()},
                           {sink: 1})
        order = {p: i for i, p in enumerate(b.places)}
        wiring = NetWiring(
            begin=begin, end=end, source=source, sink=sink,
            steps=MappingProxyType({s.id: self.wired[s.id] for s in wf.steps}),
            resources=MappingProxyType(dict(sorted(self.resource_places.items(), key=lambda kv: order[kv[1]]))),
            links=MappingProxyType(dict(sorted(self.links.items(), key=lambda kv: order[kv[0]]))),
        )
        return self.freeze(wiring, sparse)

    def freeze(self, wiring: NetWiring, sparse: bool | None) -> WorkflowNet:
        b = self.b
        pids, tids = list(b.places), b.transitions
        pix, tix = {p: i for i, p in enumerate(pids)}, {t: i for i, t in enumerate(tids)}
        shape = (len(tids), len(pids))
        if sparse is None:  # dense when it fits (what the search kernels read), else kept sparse for check to reduce
            sparse = not dense_fits(*shape)
        consumed = [(tix[dst], pix[src], w) for src, dst, w in b.arcs if src not in tix]
        produced = [(tix[src], pix[dst], w) for src, dst, w in b.arcs if src in tix]
        pre: np.ndarray | SparseArcs
        post: np.ndarray | SparseArcs
        if sparse:
            pre, post = _sparse(consumed, shape), _sparse(produced, shape)
        else:
            check_matrix(*shape, fail=failing(NetError, f"workflow '{self.wf.name}'"))
            pre, post = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
            for matrix, arcs in ((pre, consumed), (post, produced)):
                for ti, pi, w in arcs:
                    matrix[ti, pi] += w
        resources = tuple(wiring.resources.values())
        budget_set = wiring.budgets  # a property that scans every place: read it once
        budgets = tuple(p for p in pids if p in budget_set)
        final = np.zeros(len(pids), dtype=np.int64)
        final[pix[wiring.sink]] = 1
        for r in resources:
            final[pix[r]] = b.places[r]
        mask = np.array([p not in budget_set for p in pids])
        return WorkflowNet(
            places=tuple(pids), transitions=tuple(tids), pre=cast(np.ndarray, pre), post=cast(np.ndarray, post),
            initial=np.array([b.places[p] for p in pids], dtype=np.int64), name=self.wf.name,
            final=final, final_mask=mask, source=wiring.source, sink=wiring.sink, origins=dict(b.origins),
            resources=resources, budgets=budgets, wiring=wiring,
        )


def _sparse(arcs: list[tuple[int, int, int]], shape: tuple[int, int]) -> SparseArcs:
    t, p, w = (np.array(column, dtype=np.int64) for column in zip(*arcs)) if arcs else (np.zeros(0, np.int64),) * 3
    return SparseArcs(t, p, w, shape)


def lower(workflow: Workflow, *, sparse: bool | None = None) -> WorkflowNet:
    """The workflow net of ``workflow`` with its wiring: one source, one sink, every node traced to its step.

    Its arcs are dense matrices when they fit in :data:`~petriflow.limits.MAX_MATRIX_CELLS` and the memory
    budget (:func:`~petriflow.limits.memory_limit`); a larger net
    (a chain of thousands of steps) keeps them as :class:`~petriflow.net.sparse.SparseArcs`, which ``check``
    reduces before it builds anything dense. ``sparse=True`` asks for that form at any size (tests compare
    the two paths).
    """
    return _Lowering(workflow).run(sparse)
