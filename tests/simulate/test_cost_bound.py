"""The worst-case cost bound (:func:`petriflow.profile.bound.cost_bound`): sound, tight where it can be, and why not.

Soundness: no simulated case costs more than the bound, over random
workflows with loops, maps, retries, fallbacks and a route (the generator of
:mod:`tests.simulate.test_random_workflows`) and over 10,000 cases of each
shipped workflow with a profile, each simulated with its token draws cut at the step's
limits (a server never answers more than ``max_tokens``; the executor
refuses a prompt over ``max_input_tokens``). Tightness: for a workflow
without loops, retries or maps the bound is the dearest execution's cost,
found by trying every combination of route branches and running the
workflow's own enabling rules on each (an oracle that shares no code with
the bound).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petriflow.profile import Profile
from petriflow.profile.bound import MODEL_KINDS, CostBound, cost_bound
from petriflow.profile.distributions import Dist
from petriflow.rules import estimate_tokens, output_limit, prompt_limit
from petriflow.simulate import Load, simulate
from petriflow.spec import WorkflowBuilder, load
from petriflow.spec.model import Workflow, price_of
from tests.simulate.test_random_workflows import workflows

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, eq=False)
class Clipped(Dist):
    """``min(base, hi)``: a token count as a server with that limit bills it (simulator-only, no file form)."""

    base: Dist
    hi: float
    family = "clipped"

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.minimum(self.base.sample(rng, n), self.hi)

    @property
    def mean(self) -> float:  # not used by the simulator's draws
        return min(self.base.mean, self.hi)

    def scaled(self, factor: float) -> Dist:
        return Clipped(self.base.scaled(factor), self.hi * factor)


def limited(wf: Workflow, *, max_tokens: int, max_input_tokens: int) -> Workflow:
    """``wf`` with every model step's token limits set."""
    steps = tuple(replace(s, config=MappingProxyType({**s.config, "max_tokens": max_tokens,
                                                      "max_input_tokens": max_input_tokens}))
                  if s.kind in MODEL_KINDS else s for s in wf.steps)
    return replace(wf, steps=steps)


def clipped_profile(wf: Workflow, base: Profile) -> Profile:
    """``base`` with each model step's token draws cut at the workflow's limits for it."""
    steps = dict(base.steps)
    for s in wf.steps:
        sp = steps.get(s.id)
        if sp is None or s.kind not in MODEL_KINDS:
            continue
        limit_in = prompt_limit(s.config)
        assert limit_in is not None
        changes = {}
        if sp.input_tokens is not None:
            changes["input_tokens"] = Clipped(sp.input_tokens, float(limit_in))
        if sp.output_tokens is not None:
            changes["output_tokens"] = Clipped(sp.output_tokens, float(output_limit(s.config) if s.kind == "chat"
                                                                       else 0))
        steps[s.id] = replace(sp, **changes)
    return replace(base, steps=MappingProxyType(steps))


def worst_simulated(wf: Workflow, profile: Profile, *, cases: int, seed: int) -> float:
    res = simulate(wf, profile, cases=cases, load=Load.poisson(2.0), seed=seed, warmup=0)
    costs = np.concatenate([res.costs, res.failed_costs])
    return float(costs.max()) if costs.size else 0.0


# -- soundness --------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(workflows(), st.integers(0, 2**16), st.sampled_from([20, 60]))
def test_no_simulated_case_costs_more_than_the_bound(raw: Workflow, seed: int, max_tokens: int) -> None:
    wf = limited(raw, max_tokens=max_tokens, max_input_tokens=10)
    bound = cost_bound(wf)
    assert bound.usd is not None and bound.reason is None, bound.reason
    worst = worst_simulated(wf, clipped_profile(wf, Profile.from_workflow(wf)), cases=80, seed=seed)
    assert worst <= bound.usd * (1 + 1e-9), (worst, bound)


SHIPPED = sorted(ROOT.glob("models/**/*.profile.yaml"))


@pytest.mark.parametrize("profile_path", SHIPPED, ids=lambda p: p.name.removesuffix(".profile.yaml"))
def test_ten_thousand_cases_of_each_shipped_workflow_stay_within_the_bound(profile_path: Path) -> None:
    """Or the workflow has no bound, and says which step and what to set (no shipped workflow is left silent)."""
    wf = load(profile_path.with_name(profile_path.name.replace(".profile.yaml", ".yaml")))
    prof = Profile.load(profile_path, workflow=wf)
    bound = cost_bound(wf, prof)
    if bound.usd is None:
        assert bound.reason is not None and "max_input_tokens" in bound.reason and not bound.path
        return
    worst = worst_simulated(wf, clipped_profile(wf, prof), cases=10_000, seed=3)
    assert 0 < worst <= bound.usd


def test_the_qa_routers_dearest_path_goes_through_search() -> None:
    """The search branch carries the dearest prompt limit: the path is that one branch of the route, no other."""
    wf = load(ROOT / "models" / "qa_router.yaml")
    prof = Profile.load(ROOT / "models" / "qa_router.profile.yaml", workflow=wf)
    assert cost_bound(wf, prof).path == ("classify", "retrieve", "search", "aggregate")


# -- tightness: every route combination, by the workflow's own enabling rules -------------------------------


def brute_force(wf: Workflow) -> float:
    """The dearest execution: try every route combination, run each step whose rules let it, sum the calls."""
    routers = [s for s in wf.steps if s.route]
    best = 0.0
    for choice in itertools.product(*(range(len(r.route)) for r in routers)):
        picked = {r.id: r.route[k].to for r, k in zip(routers, choice)}
        routed = {b.to: r.id for r in routers for b in r.route}
        ran: set[str] = set()
        for s in wf.steps:  # the generator writes steps after their inputs
            if s.id in wf.fallback_owner:
                continue  # runs only in its owner's place
            ok = all(u in ran for u in s.after) and (not s.after_any or any(u in ran for u in s.after_any))
            if s.id in routed:
                ok = ok and routed[s.id] in ran and picked[routed[s.id]] == s.id
            if ok:
                ran.add(s.id)
        total = 0.0
        for sid in ran:
            s = wf.step(sid)
            own = by_hand(wf, s)
            fb = by_hand(wf, wf.step(s.fallback)) if s.fallback else 0.0
            best_of = max(own, fb)
            total += best_of
        best = max(best, total)
    return best


def by_hand(wf: Workflow, s: object) -> float:
    """One call at its limits, written out: the annotation, then input and output tokens at their prices."""
    step = s  # type: ignore[assignment]
    usd = float(step.cost or 0.0)  # type: ignore[attr-defined]
    if step.kind in MODEL_KINDS and step.model:  # type: ignore[attr-defined]
        m = wf.models[step.model]  # type: ignore[attr-defined]
        tin = step.config["max_input_tokens"]  # type: ignore[attr-defined]
        tin += sum(estimate_tokens(x) for xs in step.labels.values() for x in xs)  # type: ignore[attr-defined]
        tout = step.config.get("max_tokens", 256) if step.kind == "chat" else 0  # type: ignore[attr-defined]
        usd += m.price_call + (tin * m.price_input + tout * m.price_output) / 1e6
    return usd


@st.composite
def loop_free(draw: st.DrawFn) -> Workflow:
    """Blocks in sequence: a step, an AND fan-out of 2-3 steps and its join, or a route of 2-3 branch chains
    met again at an after_any join (routes inside branches too); priced models, some fallbacks."""
    b = (WorkflowBuilder("tight").model("a", price_input=1.0, price_output=3.0, price_call=0.0001)
         .model("z", price_input=0.2, price_output=0.5))
    n = [0]

    def step(after: list[str] | None = None, **extra: object) -> str:
        sid = f"s{n[0]}"
        n[0] += 1
        cfg = {"max_tokens": draw(st.sampled_from([16, 64, 300])), "max_input_tokens": draw(st.sampled_from([8, 90]))}
        kind = draw(st.sampled_from(["chat", "chat", "embed", "tool"]))
        opts: dict[str, object] = {"config": cfg, **extra}
        if kind != "tool":
            opts["model"] = draw(st.sampled_from(["a", "z"]))
        else:
            opts["cost"] = draw(st.sampled_from([0.0, 0.0005]))
        if after:
            opts["after"] = after
        if kind == "chat" and not extra and draw(st.integers(0, 3)) == 0:
            opts["fallback"] = f"{sid}fb"
            b.step(f"{sid}fb", kind="chat", model="a", config={"max_tokens": draw(st.sampled_from([8, 500])),
                                                                "max_input_tokens": 50})
        b.step(sid, kind=kind, **opts)
        return sid

    def block(last: str | None, depth: int) -> str:
        shape = draw(st.sampled_from(["one", "and", "route"] if depth < 2 else ["one", "and"]))
        after = [last] if last else None
        if shape == "one":
            return step(after)
        if shape == "and":
            head = step(after)
            parts = [step([head]) for _ in range(draw(st.integers(2, 3)))]
            return step(parts)
        k = draw(st.integers(2, 3))
        first = n[0]
        labels = [f"b{first}_{i}" for i in range(k)]
        targets = [f"r{first}_{i}" for i in range(k)]
        router = step(after, route=[{"to": t, "p": 1 / k, "when": w} for t, w in zip(targets, labels)])
        ends = []
        for t in targets:
            b.step(t, kind="chat", model=draw(st.sampled_from(["a", "z"])),
                   config={"max_tokens": draw(st.sampled_from([4, 128, 400])), "max_input_tokens": 20})
            end = t
            for _ in range(draw(st.integers(0, 2))):
                end = block(end, depth + 1)
            ends.append(end)
        sid = f"m{first}"
        b.step(sid, kind="python", function="petriflow.execute.builtins:first_answer", after_any=ends)
        assert router
        return sid

    last = None
    for _ in range(draw(st.integers(1, 4))):
        last = block(last, 0)
    return b.build()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loop_free())
def test_without_loops_retries_or_maps_the_bound_is_the_dearest_execution(wf: Workflow) -> None:
    bound = cost_bound(wf)
    assert bound.usd == pytest.approx(brute_force(wf), rel=1e-12, abs=1e-15)
    assert set(bound.path) <= set(wf.step_ids)


def test_a_route_takes_its_dearest_branch_and_names_it() -> None:
    wf = (WorkflowBuilder("r").model("m", price_input=1.0, price_output=1.0)
          .step("pick", kind="tool", route=[{"to": "cheap", "p": 0.9, "when": "c"}, {"to": "dear", "p": 0.1,
                                                                                     "when": "d"}])
          .step("cheap", kind="chat", model="m", config={"max_tokens": 10, "max_input_tokens": 10})
          .step("dear", kind="chat", model="m", config={"max_tokens": 1000, "max_input_tokens": 10})
          .step("last", kind="python", function="petriflow.execute.builtins:first_answer", after_any=["cheap", "dear"])
          .build())
    assert cost_bound(wf) == CostBound(1010 / 1e6, ("pick", "dear", "last"))


# -- loops, maps, retries, handlers --------------------------------------------------------------------------


def _chat(**extra: object) -> dict[str, object]:
    return {"kind": "chat", "model": "m", "config": {"max_tokens": 100, "max_input_tokens": 100}, **extra}


PER_CALL = price_of(type("P", (), {"price_input": 1.0, "price_output": 2.0, "price_call": 0.0})(), 100, 100)


def _wf(*steps: tuple[str, dict[str, object]]) -> Workflow:
    b = WorkflowBuilder("s").model("m", price_input=1.0, price_output=2.0)
    for sid, opts in steps:
        b.step(sid, **opts)
    return b.build()


def test_loops_multiply_maps_multiply_and_retries_add_nothing() -> None:
    wf = _wf(("a", _chat(retry={"max_attempts": 5})), ("b", _chat(after=["a"], loop={"to": "a", "max": 3})),
             ("c", _chat(after=["b"], output_schema={"type": "array"})),
             ("d", _chat(after=["c"], map={"over": "c", "max": 7})))
    # a and b run 4 times each (first pass + 3 back), c once, d once per item; failed attempts are not billed
    assert cost_bound(wf).usd == pytest.approx((4 + 4 + 1 + 7) * PER_CALL)


def test_a_failure_handler_counts_when_it_is_dearer_than_the_step() -> None:
    wf = _wf(("a", _chat(on_failure="h")),
             ("h", {"kind": "chat", "model": "m", "config": {"max_tokens": 5000, "max_input_tokens": 100}}))
    b = cost_bound(wf)
    assert b.usd == pytest.approx((100 + 2 * 5000) / 1e6) and b.path == ("a", "h")


def test_a_prompt_without_a_bound_has_no_bound_and_says_why() -> None:
    wf = _wf(("t", {"kind": "tool"}), ("a", {"kind": "chat", "model": "m", "config": {"max_tokens": 10},
                                             "after": ["t"]}))
    b = cost_bound(wf)
    assert b.usd is None and b.reason is not None and "'a'" in b.reason and "max_input_tokens" in b.reason
    assert b.to_json() == {"usd": None, "reason": b.reason}


def test_a_model_without_prices_has_no_bound_and_says_why() -> None:
    wf = _wf(("a", _chat()))
    unpriced = replace(wf, models=MappingProxyType({}))  # as a profile's sweep to an undeclared model leaves it
    b = cost_bound(unpriced)
    assert b.usd is None and b.reason is not None and "'a'" in b.reason and "no prices" in b.reason
    assert cost_bound(wf).usd == pytest.approx(PER_CALL)


def test_a_long_chain_is_bounded_step_by_step() -> None:
    wf = _wf(*((f"s{i}", _chat(**({"after": [f"s{i - 1}"]} if i else {}))) for i in range(1000)))
    b = cost_bound(wf)
    assert b.usd == pytest.approx(1000 * PER_CALL) and len(b.path) == 1000
