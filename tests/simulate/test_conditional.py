"""Loop and route probabilities conditional on the route branch that led to the step: profile, simulator, fit."""

from __future__ import annotations

import numpy as np
import pytest

from petriflow.errors import ProfileError
from petriflow.profile import Profile
from petriflow.profile.fit import fit
from petriflow.simulate import Load, simulate
from petriflow.spec import Workflow, loads


def _after_pick(name: str, b_latency: float, rest: str) -> Workflow:
    """A workflow whose `pick` routes evenly to a (latency 0) or b (``b_latency``), then runs ``rest`` (YAML steps)."""
    return loads(f"""
name: {name}
steps:
  - id: pick
    kind: classify
    route: [{{when: a, to: a, p: 0.5}}, {{when: b, to: b, p: 0.5}}]
  - {{id: a, kind: tool, latency: 0}}
  - {{id: b, kind: tool, latency: {b_latency}}}
""" + rest)


# `pick` routes to a (latency 0) or b (latency 100); both lead to `draft` (1 s per pass), which `review`
# sends back at most 3 times: a case's latency is 100 * [b] + passes, so each branch's passes can be read off
WF = _after_pick("cond", 100, """
  - {id: draft, kind: tool, after_any: [a, b], latency: 1}
  - {id: review, kind: tool, after: [draft], latency: 0, loop: {to: draft, max: 3, p: 0.5}}
""")


def passes(p: float, bound: int = 3) -> float:
    """Expected passes of `draft`: 1 + p + ... + p**bound (a geometric number of go-backs, capped)."""
    return sum(p ** k for k in range(bound + 1))


def test_a_loop_draws_by_the_branch_that_led_to_it() -> None:
    prof = Profile.from_doc({"loops": {"review": {"p": 0.5, "given": {"pick=a": 0.9, "pick=b": 0.1}}}},
                            base=Profile.from_workflow(WF))
    prof.check(WF)
    res = simulate(WF, prof, cases=6000, load=Load.closed(1), seed=4, warmup=0)
    lat = res.latencies
    on_b = lat >= 100
    for branch, p in ((~on_b, 0.9), (on_b, 0.1)):
        got = lat[branch] - 100 * on_b[branch]
        sd = got.std() / np.sqrt(got.size)
        assert abs(got.mean() - passes(p)) < 4 * sd + 1e-9, (p, got.mean(), passes(p))


def test_without_given_both_branches_loop_alike() -> None:
    res = simulate(WF, cases=6000, load=Load.closed(1), seed=4, warmup=0)
    lat = res.latencies
    on_b = lat >= 100
    a, b = lat[~on_b], lat[on_b] - 100
    assert abs(a.mean() - b.mean()) < 4 * np.sqrt(a.var() / a.size + b.var() / b.size)
    assert abs(a.mean() - passes(0.5)) < 4 * a.std() / np.sqrt(a.size)


# `check`, after either branch of `pick`, routes to ok (1 s) or slow (10 s)
ROUTE2 = _after_pick("cond_route", 0, """
  - id: check
    kind: classify
    after_any: [a, b]
    route: [{when: ok, to: ok, p: 0.5}, {when: slow, to: slow, p: 0.5}]
  - {id: ok, kind: tool, latency: 1}
  - {id: slow, kind: tool, latency: 10}
""")


def test_a_route_draws_by_the_branch_of_an_earlier_route() -> None:
    doc = {"routes": {"check": {"ok": 0.5, "slow": 0.5, "given": {"pick=a": {"ok": 1.0, "slow": 0.0},
                                                                  "pick=b": {"ok": 0.2, "slow": 0.8}}}}}
    prof = Profile.from_doc(doc, base=Profile.from_workflow(ROUTE2))
    prof.check(ROUTE2)
    assert Profile.from_doc(prof.to_doc()).routes_given == prof.routes_given  # what a sweep's workers read
    n = 4000
    res = simulate(ROUTE2, prof, cases=n, seed=1, warmup=0)
    share_slow = float(np.mean(res.latencies >= 10))
    want = 0.5 * 0.0 + 0.5 * 0.8  # P(slow) = sum over pick's branches
    assert abs(share_slow - want) < 4 * np.sqrt(want * (1 - want) / n)
    assert res.critical_path["slow"] == pytest.approx(share_slow)


def test_given_round_trips_and_is_checked_against_the_workflow() -> None:
    doc = {"loops": {"review": {"p": 0.5, "given": {"pick=a": 0.9, "pick=b": 0.1}}}}
    prof = Profile.from_doc(doc, base=Profile.from_workflow(WF))
    again = Profile.from_doc(prof.to_doc())
    assert dict(again.loops_given["review"]) == {"pick=a": 0.9, "pick=b": 0.1} and again.loops["review"] == 0.5
    for bad, match in (({"pick=c": 0.5}, "no branch 'c'"), ({"draft=a": 0.5}, "not a routing step")):
        with pytest.raises(ProfileError, match=match):
            Profile.from_doc({"loops": {"review": {"given": bad}}}, base=Profile.from_workflow(WF)).check(WF)
    with pytest.raises(ProfileError, match="ROUTER=LABEL"):
        Profile.from_doc({"loops": {"review": {"given": {"pick": 0.5}}}})
    with pytest.raises(ProfileError, match="sum to"):
        Profile.from_doc({"routes": {"check": {"ok": 0.5, "slow": 0.5, "given": {"pick=a": {"ok": 0.5, "slow": 0.6}}}}})


def _traces(n: int, seed: int) -> list[dict]:
    """Executor-like records of WF: after a, review goes back with 0.9; after b with 0.1."""
    rng = np.random.default_rng(seed)
    out, t = [], 0.0

    def rec(case: int, step: str, branch: str | None = None) -> None:
        nonlocal t
        out.append({"run_id": "r", "case": f"c{case}", "step": step, "start": t, "end": t + 0.5, "attempt": 1,
                    "outcome": "ok", "model": None, "input_tokens": None, "output_tokens": None, "cost": None,
                    "branch": branch})
        t += 1.0

    for i in range(n):
        branch = "a" if rng.random() < 0.5 else "b"
        rec(i, "pick", branch)
        rec(i, branch)
        p = 0.9 if branch == "a" else 0.1
        for k in range(4):
            rec(i, "draft")
            back = k < 3 and rng.random() < p
            rec(i, "review", "loop" if back else None)
            if not back:
                break
    return out


def test_fit_recovers_the_loop_probability_per_branch_and_the_simulator_follows_it() -> None:
    prof = fit(_traces(3000, 0), workflow=WF)
    given = prof.loops_given["review"]
    assert set(given) == {"pick=a", "pick=b"}
    # chances per case: about 1 + .9 + .81 after a (~2.7 per case, 1500 cases): sd ~ 0.005; after b ~ 0.008
    assert abs(given["pick=a"] - 0.9) < 0.03 and abs(given["pick=b"] - 0.1) < 0.03
    assert 0.1 < prof.loops["review"] < 0.9  # the pooled figure mixes both
    route = prof.estimates["pick"]["route a"]  # the route and loop figures carry their sample sizes
    assert route.n == 3000 and route.low <= prof.routes["pick"]["a"] <= route.high
    loop = prof.estimates["review"]["loop"]
    assert loop.value == prof.loops["review"] and loop.n > 3000 and loop.unit == "chances to go back"
    back = Profile.from_doc(prof.to_doc(), base=Profile.from_workflow(WF))
    assert dict(back.loops_given["review"]) == dict(given)


def test_fit_writes_no_condition_when_only_one_branch_was_seen() -> None:
    recs = [r for r in _traces(400, 1) if r["case"] not in {x["case"] for x in _traces(400, 1)
                                                            if x["step"] == "b"}]
    assert not fit(recs, workflow=WF).loops_given
