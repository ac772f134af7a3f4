"""Distributions and profiles: parsing, means against sample means, overrides, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petriflow.errors import ProfileError
from petriflow.profile import Profile
from petriflow.profile.distributions import (
    Empirical,
    Fixed,
    LogNormal,
    Mixture,
    parse_dist,
)
from petriflow.simulate import Load, simulate
from petriflow.spec import load, loads

ROOT = Path(__file__).resolve().parents[2]

DOCS = [
    2.0,
    {"dist": "fixed", "value": 0.5},
    {"dist": "exponential", "mean": 2.0},
    {"dist": "exponential", "rate": 4.0},
    {"dist": "lognormal", "mu": 0.1, "sigma": 0.5},
    {"dist": "lognormal", "mean": 3.0, "sigma": 0.8},
    {"dist": "gamma", "shape": 2.0, "scale": 0.5},
    {"dist": "gamma", "shape": 3.0, "mean": 6.0},
    {"dist": "empirical", "samples": [1, 2, 2, 7]},
    {"dist": "mixture", "components": [0.1, {"dist": "exponential", "mean": 5}], "weights": [0.8, 0.2]},
]


@pytest.mark.parametrize("doc", DOCS)
def test_sample_mean_matches_the_stated_mean_and_doc_round_trips(doc: object) -> None:
    d = parse_dist(doc)
    x = d.sample(np.random.default_rng(0), 200_000)
    assert (x >= 0).all()
    assert x.mean() == pytest.approx(d.mean, rel=0.02)
    again = parse_dist(d.to_doc())
    assert again.mean == pytest.approx(d.mean)


@settings(max_examples=50, deadline=None)
@given(st.floats(0.01, 100), st.sampled_from(DOCS[2:]))
def test_scaling_scales_the_mean(factor: float, doc: object) -> None:
    d = parse_dist(doc)
    assert d.scaled(factor).mean == pytest.approx(factor * d.mean, rel=1e-9)
    assert parse_dist(d.scaled(factor).to_doc()).mean == pytest.approx(factor * d.mean, rel=1e-9)


@pytest.mark.parametrize(("doc", "match"), [
    ({"dist": "weibull", "k": 1}, "unknown distribution family"),
    ({"dist": "exponential"}, "needs `mean`"),
    ({"dist": "exponential", "mean": -1}, "must be > 0"),
    ({"dist": "lognormal", "mu": 0, "sigma": 1, "shape": 2}, "does not take `shape`"),
    ({"dist": "empirical", "samples": []}, "non-empty"),
    ({"dist": "mixture", "components": [1, 2], "weights": [1]}, "one number >= 0 per component"),
    (-3, "finite number >= 0"),
    ("fast", "expected a number"),
    (True, "expected a number"),
])
def test_bad_distributions_say_where_and_what(doc: object, match: str) -> None:
    with pytest.raises(ProfileError, match=match) as e:
        parse_dist(doc, where="steps.x.latency")
    assert e.value.where == "steps.x.latency"


def test_from_workflow_takes_annotations_and_a_file_overrides_them(tmp_path: Path) -> None:
    wf = load(ROOT / "models" / "qa_router.yaml")
    base = Profile.from_workflow(wf)
    assert isinstance(base.steps["classify"].latency, LogNormal)
    assert base.routes["classify"] == {"general": 0.5, "code": 0.3, "search": 0.2}
    assert base.models["smollm2"].price_output == 0.30 and base.resources["llm"].capacity == 4
    assert base.steps["aggregate"].latency == Fixed(0.001)
    f = tmp_path / "p.yaml"
    f.write_text("steps: {code: {failure_rate: 0.1}}\nroutes: {classify: {general: 0.2, code: 0.7, search: 0.1}}\n"
                 "resources: {llm: {capacity: 9}}\n")
    prof = Profile.load(f, workflow=wf)
    assert prof.steps["code"].failure_rate == 0.1
    assert prof.steps["code"].latency == base.steps["code"].latency  # untouched keys keep the annotation
    assert prof.routes["classify"]["code"] == 0.7 and prof.resources["llm"].capacity == 9
    assert prof.resources["llm"].requests_per_minute == 600
    # a profile written out reads back the same
    out = tmp_path / "again.json"
    prof.dump(out)
    back = Profile.load(out, workflow=wf)
    assert back.to_doc() == prof.to_doc()


@pytest.mark.parametrize(("text", "match"), [
    ("steps: {ghost: {latency: 1}}", "unknown step 'ghost'"),
    ("routes: {classify: {general: 0.5, code: 0.5}}", "do not match"),
    ("routes: {classify: {general: 0.5, code: 0.3, search: 0.3}}", "sum to 1.1"),
    ("routes: {code: {a: 1.0}}", "not a routing step"),
    ("resources: {llm: {capacity: 0}}", "capacity must be an integer >= 1"),
    ("resources: {gpu: {capacity: 1}}", "unknown resource 'gpu'"),
    ("steps: {code: {latency: {dist: normal}}}", "unknown distribution family"),
    ("steps: {code: {colour: red}}", "unknown key `colour`"),
    ("steps: {code: {model: llama}}", "has no prices"),
    ("stpes: {}", "unknown profile key `stpes`"),
    ("steps: [1, 2", "invalid YAML"),
])
def test_bad_profiles_name_the_file_and_the_key(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text + "\n")
    with pytest.raises(ProfileError, match=match) as e:
        Profile.load(f, workflow=load(ROOT / "models" / "qa_router.yaml"))
    assert "bad.yaml" in str(e.value)


def test_by_model_alternative_applies_when_the_model_is_chosen() -> None:
    wf = load(ROOT / "models" / "qa_router.yaml")
    prof = Profile.load(ROOT / "models" / "qa_router.profile.yaml", workflow=wf)
    assert prof.step("code").model == "smollm2" and prof.step("code").failure_rate == 0.03
    gpt = prof.with_model("code", "gpt4o").step("code")
    assert gpt.failure_rate == 0.005 and gpt.output_tokens.mean == 260
    assert prof.with_model("code", "gpt4o").cost_per_call("code") == pytest.approx((60 * 2.5 + 260 * 10.0) / 1e6)


def test_littles_law_queue_length_of_mm1() -> None:
    """Mean number waiting in M/M/1 is rho^2 / (1 - rho); the engine measures it as a time average."""
    wf = loads("name: q\nresources: {s: {capacity: 1}}\n"
               "steps: [{id: x, kind: tool, uses: [s], latency: {dist: exponential, mean: 1}}]\n")
    r = simulate(wf, cases=40_000, load=Load.poisson(0.5), seed=3)
    assert r.queue_length["s"] == pytest.approx(0.5**2 / 0.5, rel=0.1)


def test_token_rate_limit_caps_token_throughput() -> None:
    wf = loads("""
name: tpm
models: {m: {name: m}}
resources: {api: {capacity: 50, tokens_per_minute: 6000}}
steps:
  - {id: call, kind: chat, model: m, uses: [api], latency: 0.1, tokens: {input: 20, output: 80}}
""")
    r = simulate(wf, cases=2000, load=Load.poisson(5.0), seed=1)
    assert r.throughput == pytest.approx(6000 / 60 / 100, rel=0.03)  # 100 tokens per call: 1 call/s


def test_map_items_follow_the_profile() -> None:
    wf = loads("""
name: mapped
steps:
  - {id: split, kind: python}
  - {id: each, kind: tool, after: [split], map: {over: split, max: 4}, latency: 1, cost: 1.0}
""")
    prof = Profile.from_doc({"steps": {"each": {"items": {"dist": "empirical", "samples": [1, 2, 9]}}}},
                            base=Profile.from_workflow(wf))
    r = simulate(wf, prof, cases=6000, seed=2)
    assert r.cost.ci95["mean"][0] <= (1 + 2 + 4) / 3 <= r.cost.ci95["mean"][1]  # 9 is capped at max 4
    assert isinstance(Empirical((1.0,)), Empirical) and isinstance(Mixture((Fixed(1),), (1.0,)), Mixture)
