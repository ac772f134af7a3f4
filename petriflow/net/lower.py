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
  finish continues where ``s`` would have.

The net has one source [``source``] and one sink [``sink``]; the final
marking is one token in the sink with every resource back at capacity;
budget places may hold anything at the end.

Giving up is not tied to an empty retry budget (a P/T net cannot test for
zero), so the net allows a give-up after any attempt: more behaviour than the
executor shows, never less, which keeps deadlock and soundness verdicts safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from petriflow.errors import NetError
from petriflow.limits import check_matrix, failing
from petriflow.net.petrinet import Origin, WorkflowNet
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


class _Lowering:
    def __init__(self, wf: Workflow) -> None:
        self.wf = wf
        self.b = _Builder()
        self.owner = wf.fallback_owner
        self.terminal = set(wf.terminal_steps())
        self.initial = set(wf.initial_steps())
        self.xor_end = wf.ends_exclusive()

    # -- places ---------------------------------------------------------------
    def edge(self, u: str, v: str) -> str:
        """The place a token takes from ``u`` to ``v`` (``any.v`` for an XOR-join, ``any.end`` for exclusive ends)."""
        if v == "end" and self.xor_end:
            return self.b.place("any.end", Origin("join", None, "end"))
        if v != "end" and u in self.wf.step(v).after_any:
            return self.b.place(f"any.{v}", Origin("join", v))
        return self.b.place(f"{u}.to.{v}", Origin("dependency", v if v != "end" else None, "input", u))

    def resources(self, s: Step) -> dict[str, int]:
        return {self.b.place(f"res.{r}", Origin("resource", None, "capacity", r), self.wf.resources[r].capacity): n
                for r, n in s.uses.items()}

    def inputs(self, s: Step) -> list[dict[str, int]]:
        """Each way ``s`` can be entered: its ordinary inputs, and one per loop coming back to it."""
        if s.id in self.owner:
            return [{self.b.place(f"{self.owner[s.id]}.gives_up.to.{s.id}", Origin("fallback", s.id, "input", self.owner[s.id])): 1}]
        ordinary: dict[str, int] = {}
        if s.id in self.initial:
            ordinary[self.edge("begin", s.id)] = 1
        for u in (*s.after, *self.wf.routers_of(s.id)):
            ordinary[self.edge(u, s.id)] = 1
        if s.after_any:
            ordinary[self.edge(s.after_any[0], s.id)] = 1
        ways = [ordinary]
        for other in self.wf.steps:
            if other.loop is not None and other.loop.to == s.id:
                ways.append({self.b.place(f"{s.id}.loop_from.{other.id}", Origin("loop", s.id, "entry", other.id)): 1})
        return ways

    def outcomes(self, sid: str) -> list[tuple[Origin, dict[str, int], dict[str, int]]]:
        """Each way ``sid`` can finish: (origin, extra places consumed, places produced).

        A fallback finishes as its owner would; a map item finishes into ``done``.
        """
        sid = self.wf.root_of(sid)
        s = self.wf.step(sid)
        routed = {b.to for b in s.route}
        always = {self.edge(sid, v): 1 for v in self.wf.successors(sid) if v not in routed}
        if sid in self.terminal:
            always[self.edge(sid, "end")] = 1
        outs: list[tuple[Origin, dict[str, int], dict[str, int]]]
        if not s.route:
            outs = [(Origin("step", sid, "finish"), {}, always)]
        else:
            outs = [(Origin("route", sid, "finish", b.when), {}, _merge(always, {self.edge(sid, b.to): 1}))
                    for b in s.route]
        if s.loop is not None:
            budget = self.b.place(f"{sid}.loop_budget", Origin("loop", sid, "budget", s.loop.to), s.loop.max)
            back = self.b.place(f"{s.loop.to}.loop_from.{sid}", Origin("loop", s.loop.to, "entry", sid))
            outs.append((Origin("loop", sid, "back", s.loop.to), {budget: 1}, _merge({back: 1}, self.redeliver(sid))))
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
            feeders = (*step.after, *self.wf.routers_of(v))
            out.update({self.edge(u, v): 1 for u in feeders if u not in inside})
            if step.after_any and not inside & set(step.after_any):
                out[self.edge(step.after_any[0], v)] = 1
        return out

    # -- one step ---------------------------------------------------------------
    def step(self, s: Step) -> None:
        b = self.b
        res = self.resources(s)
        running = b.place(f"{s.id}.running", Origin("step", s.id, "running"))
        owner = self.wf.root_of(s.id)
        is_map = self.wf.step(owner).map is not None and s.id == owner
        for k, way in enumerate(self.inputs(s)):
            loop_from = next((self.b.origins[p].detail for p in way if self.b.origins[p].construct == "loop"), None)
            suffix = f"_loop.{loop_from}" if loop_from else ""
            if is_map:
                assert s.map is not None
                items = b.place(f"{s.id}.items", Origin("map", s.id, "items"))
                for n in range(1, s.map.max + 1):
                    count = b.place(f"{s.id}.n{n}", Origin("map", s.id, "count", str(n)))
                    b.transition(f"{s.id}.spawn{n}{suffix}", Origin("map", s.id, "spawns", f"{n} item(s)"),
                                 way, {items: n, count: 1})
            else:
                b.transition(f"{s.id}.start{suffix}", Origin("step", s.id, "start", loop_from or ""),
                             _merge(way, res), {running: 1})
        if is_map:
            assert s.map is not None
            items, done = f"{s.id}.items", b.place(f"{s.id}.done", Origin("map", s.id, "done"))
            b.transition(f"{s.id}.start", Origin("step", s.id, "start"), _merge({items: 1}, res), {running: 1})
            b.transition(f"{s.id}.finish", Origin("step", s.id, "finish"), {running: 1}, _merge({done: 1}, res))
            for n in range(1, s.map.max + 1):
                for origin, extra, produce in self.outcomes(s.id):
                    b.transition(f"{s.id}.collect{n}", Origin("map", s.id, "collects", f"{n} item(s)"),
                                 _merge({f"{s.id}.n{n}": 1, done: n}, extra), produce)
        else:
            target_is_map = owner != s.id and self.wf.step(owner).map is not None
            outs = ([(Origin("step", s.id, "finish"), {}, {f"{owner}.done": 1})] if target_is_map
                    else self.outcomes(s.id))
            for origin, extra, produce in outs:
                origin = Origin(origin.construct, s.id, origin.role, origin.detail)
                name = {"route": f"{s.id}.choose.{_UNSAFE.sub('_', origin.detail)}", "loop": f"{s.id}.loop"}
                b.transition(name.get(origin.construct, f"{s.id}.finish"), origin,
                             _merge({running: 1}, extra), _merge(produce, res))
        instances = s.map.max if is_map and s.map else 1
        if s.retry.max_attempts > 1:
            budget = b.place(f"{s.id}.retries", Origin("retry", s.id, "budget"), (s.retry.max_attempts - 1) * instances)
            backoff = b.place(f"{s.id}.backoff", Origin("retry", s.id, "backoff"))
            b.transition(f"{s.id}.fail", Origin("retry", s.id, "fail"), {running: 1, budget: 1}, _merge({backoff: 1}, res))
            b.transition(f"{s.id}.retry", Origin("retry", s.id, "retry"), _merge({backoff: 1}, res), {running: 1})
        if s.fallback is not None:
            handover = b.place(f"{s.id}.gives_up.to.{s.fallback}", Origin("fallback", s.fallback, "input", s.id))
            b.transition(f"{s.id}.give_up", Origin("fallback", s.id, "give_up", s.fallback), {running: 1},
                         _merge({handover: 1}, res))

    def run(self) -> WorkflowNet:
        b, wf = self.b, self.wf
        source = b.place("source", Origin("begin", None, "source"), 1)
        b.transition("begin", Origin("begin", None, "begin"), {source: 1},
                     {self.edge("begin", s): 1 for s in wf.initial_steps()})
        for s in wf.steps:
            self.step(s)
        sink = b.place("sink", Origin("end", None, "sink"))
        b.transition("end", Origin("end", None, "end"), {self.edge(s, "end"): 1 for s in wf.terminal_steps()}, {sink: 1})
        return self.freeze(source, sink)

    def freeze(self, source: str, sink: str) -> WorkflowNet:
        b = self.b
        pids, tids = list(b.places), b.transitions
        pix, tix = {p: i for i, p in enumerate(pids)}, {t: i for i, t in enumerate(tids)}
        check_matrix(len(tids), len(pids), fail=failing(NetError, f"workflow '{self.wf.name}'"))
        pre = np.zeros((len(tids), len(pids)), dtype=np.int64)
        post = np.zeros_like(pre)
        for src, dst, w in b.arcs:
            if src in tix:
                post[tix[src], pix[dst]] += w
            else:
                pre[tix[dst], pix[src]] += w
        resources = tuple(p for p in pids if b.origins[p].construct == "resource")
        budgets = tuple(p for p in pids if b.origins[p].role == "budget")
        final = np.zeros(len(pids), dtype=np.int64)
        final[pix[sink]] = 1
        for r in resources:
            final[pix[r]] = b.places[r]
        mask = np.array([p not in budgets for p in pids])
        return WorkflowNet(
            places=tuple(pids), transitions=tuple(tids), pre=pre, post=post,
            initial=np.array([b.places[p] for p in pids], dtype=np.int64), name=self.wf.name,
            final=final, final_mask=mask, source=source, sink=sink, origins=dict(b.origins),
            resources=resources, budgets=budgets,
        )


def lower(workflow: Workflow) -> WorkflowNet:
    """The workflow net of ``workflow``: one source, one sink, every node traced to its step."""
    return _Lowering(workflow).run()
