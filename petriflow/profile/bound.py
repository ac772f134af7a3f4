"""The worst-case cost of one case of a workflow: a bound no case can pass, computed before anything runs.

What a case is billed is what the executor charges (:mod:`petriflow.rules`,
``execute/pricing``): each *successful* attempt of a model call at the
tokens its endpoint reports, plus a step's ``cost:`` annotation; a failed
attempt (a 429, a 5xx, a timeout, a refusal) reports no usage and is not
billed. So retries add nothing to the bound; what a failure can add is the
step that runs instead, its ``fallback`` chain or its ``on_failure`` handler.
Every other choice is taken at its worst:

* a model call at its token limits: ``config.max_tokens`` output tokens
  (:func:`petriflow.rules.output_limit`, the executor's default when unset)
  and ``config.max_input_tokens`` prompt tokens
  (:func:`petriflow.rules.prompt_limit`; the executor refuses a call whose
  prompt it estimates above it). A model call whose prompt has no bound, or
  whose model has no prices, has no worst case: the bound is ``None`` with
  the reason;
* a step: the dearest of itself, its fallbacks and its failure handler; a
  map step ``map.max`` times that; a step inside loops once more than each
  enclosing loop's ``max`` for every loop;
* a route: its dearest branch. Which steps run depends on the branches
  taken; each step *requires* the set of route choices every way to it
  passes through (an ``after`` join all of its inputs' requirements, an
  ``after_any`` join or a step several routers reach only those common to
  all ways in). Steps are hung in a tree of route choices below the deepest
  choice they require, and the bound is the tree's value with the dearest
  branch at every router: exact for a workflow whose branches meet again
  only at ``after_any`` joins, and an upper bound otherwise (a step that
  needs two routers' choices at once is counted under one of them).

The structure alone decides (no state space), in time linear in the steps
and route choices: well under a second on the largest workflow the format
allows.

    >>> from petriflow.spec import WorkflowBuilder
    >>> wf = (WorkflowBuilder("b").model("m", name="m", price_input=1.0, price_output=2.0)
    ...       .step("a", kind="chat", model="m", config={"max_tokens": 100, "max_input_tokens": 50}).build())
    >>> cost_bound(wf)
    CostBound(usd=0.00025, path=('a',), reason=None)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from petriflow.profile.model import Profile
from petriflow.rules import estimate_tokens, output_limit, prompt_limit
from petriflow.spec.model import Priced, Step, Workflow, price_of

__all__ = ["MODEL_KINDS", "CostBound", "cost_bound"]

MODEL_KINDS = ("chat", "embed", "classify")
"""The step kinds that call a model (and are billed its tokens)."""

Choice = tuple[str, int]  # (router step, branch index)


@dataclass(frozen=True)
class CostBound:
    """The most one case can cost, in dollars, and the steps of its dearest path; or why there is no bound."""

    usd: float | None
    path: tuple[str, ...] = ()
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"usd": ..., "path": [...]}``, or ``{"usd": null, "reason": "..."}`` when no bound exists."""
        if self.usd is None:
            return {"usd": None, "reason": self.reason}
        return {"usd": self.usd, "path": list(self.path)}


class _NoBound(Exception):
    """A call has no worst case; the message says which and why."""


def cost_bound(wf: Workflow, profile: Profile | None = None) -> CostBound:
    """The worst-case cost of one case of ``wf`` (see the module docstring).

    ``profile`` may give other prices (its ``models``), another model per
    step (as ``sweep`` switches them) and the ``cost`` per call; the token
    limits are always the workflow's.
    """
    try:
        return _Bound(wf, profile).compute()
    except _NoBound as exc:
        return CostBound(None, (), str(exc))


class _Bound:
    def __init__(self, wf: Workflow, profile: Profile | None) -> None:
        self.wf, self.profile = wf, profile
        extra = set(wf.fallback_owner) | wf.failure_handlers
        self.main = [s for s in wf.steps if s.id not in extra]

    # -- one step ------------------------------------------------------------------------------------------
    def _prices(self, s: Step) -> tuple[str | None, Priced | None]:
        model = s.model
        if self.profile is not None and s.id in self.profile.steps:
            model = self.profile.steps[s.id].model or model
        if model is None:
            return None, None
        if self.profile is not None and model in self.profile.models:
            return model, self.profile.models[model]
        return model, self.wf.models.get(model)

    def call(self, s: Step) -> float:
        """The most one successful attempt of ``s`` is billed."""
        declared = self.profile.steps[s.id].cost if self.profile is not None and s.id in self.profile.steps else s.cost
        usd = float(declared or 0.0)
        if s.kind not in MODEL_KINDS:
            return usd
        model, prices = self._prices(s)
        if model is None:  # no endpoint to call: the executor cannot bill it (and refuses to plan it)
            return usd
        if prices is None:
            raise _NoBound(f"step '{s.id}' calls model '{model}', which has no prices: declare it under `models:` "
                           "with price_input/price_output")
        limit = prompt_limit(s.config)
        if limit is None:
            raise _NoBound(f"step '{s.id}' calls model '{model}' with no bound on its prompt: set "
                           "config.max_input_tokens (the executor refuses a longer prompt)")
        tokens_in = limit + sum(estimate_tokens(x) for xs in s.labels.values() for x in xs)  # classify's examples
        tokens_out = output_limit(s.config) if s.kind == "chat" else 0
        return usd + float(price_of(prices, tokens_in, tokens_out))

    def step(self, s: Step) -> tuple[float, tuple[str, ...]]:
        """The dearest one run of ``s`` can be billed, with the steps that bill it (``s`` first)."""
        best, who = self.call(s), s.id
        fb = s.fallback
        seen = {s.id}
        while fb is not None and fb not in seen:  # each fallback stands in for the one before
            seen.add(fb)
            c = self.call(self.wf.step(fb))
            if c > best:
                best, who = c, fb
            fb = self.wf.step(fb).fallback
        items = s.map.max if s.map is not None else 1
        total = items * best
        path: tuple[str, ...] = (s.id,) if who == s.id else (s.id, who)
        handler = s.on_failure
        if handler is not None:
            h, h_path = self.step(self.wf.step(handler))
            fail = (items - 1) * best + h  # a map's earlier items were billed before one failed for good
            if fail > total:
                total, path = fail, (s.id, *h_path)
        return total, path

    # -- the structure -------------------------------------------------------------------------------------
    def multiplicity(self) -> dict[str, int]:
        """How many times each main step can run in one case: the product of ``max + 1`` of the loops around it."""
        mult = {s.id: 1 for s in self.main}
        for s in self.main:
            if s.loop is not None:
                for sid in self.wf.loop_region(s.id):
                    if sid in mult:
                        mult[sid] *= s.loop.max + 1
        return mult

    def order(self) -> list[Step]:
        """The main steps, each after its inputs and routers (loop back-edges are not edges)."""
        ids = {s.id for s in self.main}
        preds: dict[str, set[str]] = {s.id: {u for u in s.inputs if u in ids} for s in self.main}
        for r in self.main:
            for b in r.route:
                if b.to in preds:
                    preds[b.to].add(r.id)
        done: list[Step] = []
        placed: set[str] = set()
        waiting = {sid: len(p) for sid, p in preds.items()}
        succ: dict[str, list[str]] = {sid: [] for sid in preds}
        for sid, ps in preds.items():
            for u in ps:
                succ[u].append(sid)
        ready = [s.id for s in self.main if not waiting[s.id]]
        while ready:
            sid = ready.pop()
            placed.add(sid)
            done.append(self.wf.step(sid))
            for v in succ[sid]:
                waiting[v] -= 1
                if not waiting[v]:
                    ready.append(v)
        if len(placed) != len(ids):  # a cycle outside loops: lowering refuses these; count nothing twice
            raise _NoBound("the workflow's steps wait on each other in a cycle")
        return done

    def requirements(self, order: list[Step]) -> dict[str, frozenset[Choice]]:
        """Per main step, the route choices every way to it passes through."""
        routed: dict[str, list[tuple[str, int]]] = {}
        for r in self.main:
            for k, b in enumerate(r.route):
                routed.setdefault(b.to, []).append((r.id, k))
        req: dict[str, frozenset[Choice]] = {}
        for s in order:
            need: frozenset[Choice] = frozenset().union(*(req[u] for u in s.after if u in req))
            ways = [req[u] for u in s.after_any if u in req]
            ways += [req[r] | {(r, k)} for r, k in routed.get(s.id, ())]
            if ways:
                need |= frozenset.intersection(*ways)
            req[s.id] = need
        return req

    def compute(self) -> CostBound:
        order = self.order()
        req = self.requirements(order)
        mult = self.multiplicity()
        ctx = {(r.id, k): req[r.id] | {(r.id, k)} for r in self.main for k in range(len(r.route))}
        node_of: dict[str, Choice | None] = {}
        for s in order:
            fits = [c for c in req[s.id] if ctx[c] <= req[s.id]]
            node_of[s.id] = max(fits, key=lambda c: (len(ctx[c]), c)) if fits else None
        own: dict[Choice | None, list[tuple[float, tuple[str, ...]]]] = {}
        routers: dict[Choice | None, list[Step]] = {}
        for s in order:
            usd, path = self.step(s)
            own.setdefault(node_of[s.id], []).append((mult[s.id] * usd, path))
            if s.route:
                routers.setdefault(node_of[s.id], []).append(s)
        memo: dict[Choice | None, tuple[float, list[tuple[str, ...]]]] = {}

        def value(node: Choice | None) -> tuple[float, list[tuple[str, ...]]]:
            if node in memo:
                return memo[node]
            total = 0.0
            paths: list[tuple[str, ...]] = []
            for usd, path in own.get(node, ()):
                total += usd
                paths.append(path)
            for r in routers.get(node, ()):
                best = max((value((r.id, k)) for k in range(len(r.route))), key=lambda v: v[0])
                total += best[0]
                paths += best[1]
            memo[node] = (total, paths)
            return memo[node]

        for node in sorted(ctx, key=lambda c: len(ctx[c]), reverse=True):  # deepest first: no deep recursion
            value(node)
        usd, paths = value(None)
        rank = {sid: i for i, sid in enumerate(self.wf.step_ids)}
        heads = sorted(paths, key=lambda p: rank[p[0]])
        return CostBound(usd, tuple(sid for p in heads for sid in p))

