"""`fit` recovers known parameters from traces generated from known distributions, and picks the family."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from petriflow.errors import ProfileError
from petriflow.profile import Profile
from petriflow.profile.distributions import Exponential, Gamma, LogNormal
from petriflow.profile.fit import fit, fit_dist
from petriflow.simulate import simulate
from petriflow.spec import load, loads
from petriflow.trace import TraceRecord, read_traces


def traces(n: int, seed: int = 0) -> list[dict]:
    """Synthetic executor traces: `pick` routes 70/30, `slow` is lognormal and fails 10% of attempts."""
    rng = np.random.default_rng(seed)
    out, t = [], 1.7e9
    for i in range(n):
        case = f"c{i}"
        branch = "fast" if rng.random() < 0.7 else "slow"
        d = rng.exponential(0.2)
        out.append({"run_id": "r", "case": case, "step": "pick", "start": t, "end": t + d, "attempt": 1,
                    "outcome": "ok", "model": "e5", "input_tokens": 12, "output_tokens": 0, "cost": None,
                    "branch": branch})
        t += d
        if branch == "slow":
            attempt = 1
            while True:
                d = rng.lognormal(0.5, 0.4)
                failed = rng.random() < 0.1
                out.append({"run_id": "r", "case": case, "step": "slow", "start": t, "end": t + d,
                            "attempt": attempt, "outcome": "error" if failed else "ok", "model": "big",
                            "input_tokens": 100, "output_tokens": int(rng.gamma(3.0, 50.0)) + 1,
                            "cost": 0.001, "branch": None})
                t += d
                attempt += 1
                if not failed:
                    break
        else:
            d = rng.gamma(3.0, 0.1)
            out.append({"run_id": "r", "case": case, "step": "fast", "start": t, "end": t + d, "attempt": 1,
                        "outcome": "ok", "model": "small", "input_tokens": 50, "output_tokens": 20, "cost": None,
                        "branch": None})
    return out


WF = """
name: fitted
steps:
  - id: pick
    kind: classify
    route: [{when: fast, to: fast, p: 0.5}, {when: slow, to: slow, p: 0.5}]
  - {id: fast, kind: tool}
  - {id: slow, kind: tool, retry: {max_attempts: 5, backoff: 0.01, jitter: false}}
  - {id: out, kind: python, after_any: [fast, slow]}
"""


@pytest.mark.parametrize(("truth", "family"), [
    (Exponential(2.0), "exponential"), (LogNormal(0.5, 0.4), "lognormal"), (Gamma(3.0, 0.5), "gamma")])
def test_fit_dist_picks_the_family_and_recovers_the_mean(truth, family: str) -> None:
    x = truth.sample(np.random.default_rng(1), 3000)
    dist, q = fit_dist(x)
    assert q.family == family, q.criterion
    assert dist.mean == pytest.approx(truth.mean, rel=0.05)
    assert q.ks < 0.03 and q.n == 3000


def test_fit_dist_parameters_within_tolerance() -> None:
    dist, _ = fit_dist(LogNormal(0.5, 0.4).sample(np.random.default_rng(2), 5000))
    assert isinstance(dist, LogNormal)
    assert dist.mu == pytest.approx(0.5, abs=0.03) and dist.sigma == pytest.approx(0.4, abs=0.02)
    dist, _ = fit_dist(Gamma(3.0, 0.5).sample(np.random.default_rng(3), 5000))
    assert isinstance(dist, Gamma)
    assert dist.shape == pytest.approx(3.0, rel=0.08) and dist.scale == pytest.approx(0.5, rel=0.08)


def test_fit_dist_falls_back_to_empirical_and_fixed() -> None:
    bimodal = np.concatenate([np.full(500, 0.1), np.full(500, 5.0)]) + np.random.default_rng(0).random(1000) * 0.01
    assert fit_dist(bimodal)[1].family == "empirical"
    assert fit_dist([3, 3, 3])[1].family == "fixed"
    assert fit_dist([1.0, 2.0, 3.0])[1].family == "empirical"  # too few to choose a family


def test_fit_recovers_routes_failures_latencies_and_tokens(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in traces(4000)) + "\n")
    wf = loads(WF)
    prof = fit(path, workflow=wf)
    assert prof.routes["pick"]["fast"] == pytest.approx(0.7, abs=0.02)
    assert prof.steps["slow"].failure_rate == pytest.approx(0.1, abs=0.02)
    assert prof.quality["slow"]["latency"].family == "lognormal"
    assert prof.quality["fast"]["latency"].family == "gamma"
    assert prof.quality["pick"]["latency"].family == "exponential"
    assert prof.steps["slow"].output_tokens.mean == pytest.approx(151, rel=0.05)
    assert prof.steps["slow"].model == "big"
    # the fitted profile round-trips through its file and simulates
    out = tmp_path / "p.yaml"
    prof.dump(out)
    again = Profile.load(out, workflow=wf)
    assert again.routes == prof.routes
    assert again.step("slow").latency.mean == pytest.approx(prof.step("slow").latency.mean)
    r = simulate(wf, again, cases=3000, seed=0)
    expected = 0.2 + 0.7 * 0.3 + 0.3 * (np.exp(0.5 + 0.08) / 0.9 + 0.01 * 0.1 / 0.9)
    assert r.latency.ci95["mean"][0] - 0.05 < expected < r.latency.ci95["mean"][1] + 0.05


def test_bad_trace_lines_name_file_and_line(tmp_path: Path) -> None:
    good = json.dumps(traces(1)[0])
    p = tmp_path / "bad.jsonl"
    p.write_text(good + "\n{not json\n")
    with pytest.raises(ProfileError, match=r"bad.jsonl:2"):
        read_traces(p)
    p.write_text(good.replace('"ok"', '"maybe"') + "\n")
    with pytest.raises(ProfileError, match="unknown outcome"):
        read_traces(p)
    p.write_text(json.dumps({k: v for k, v in traces(1)[0].items() if k != "start"}) + "\n")
    with pytest.raises(ProfileError, match="lacks `start`"):
        read_traces(p)
    with pytest.raises(ProfileError, match="the workflow does not have"):
        fit([{**traces(1)[0], "step": "ghost"}], workflow=loads(WF))


def test_fit_reads_executor_conventions_loops_fallback_and_integer_cases() -> None:
    """The executor marks loop-backs with branch `loop`, the last failed attempt before a fallback with
    outcome `fallback`, and numbers cases; the loop estimate discounts passes after the budget ran out."""
    wf = loads("""
name: draft_loop
steps:
  - {id: draft, kind: tool, retry: {max_attempts: 2, backoff: 0.1}, fallback: spare}
  - {id: spare, kind: tool}
  - {id: review, kind: tool, after: [draft], loop: {to: draft, max: 2, p: 0.5}}
""")
    rng = np.random.default_rng(5)
    recs, p_true, t = [], 0.4, 0.0
    for case in range(4000):
        passes = 1
        while passes <= 2 and rng.random() < p_true:
            passes += 1
        for k in range(passes):
            recs.append({"run_id": "r", "case": case, "step": "review", "start": t, "end": t + 1.0, "attempt": 1,
                         "outcome": "ok", "model": None, "input_tokens": 0, "output_tokens": 0, "cost": 0.0,
                         "branch": "loop" if k < passes - 1 else None})
        first_fails = rng.random() < 0.2
        outcome = ("fallback" if rng.random() < 0.2 else "ok") if first_fails else "ok"
        recs.append({"run_id": "r", "case": case, "step": "draft", "start": t, "end": t + 0.5, "attempt": 1,
                     "outcome": "error" if first_fails else "ok", "model": None, "input_tokens": 0,
                     "output_tokens": 0, "cost": 0.0, "branch": None})
        if first_fails:
            recs.append({**recs[-1], "attempt": 2, "outcome": outcome})
    prof = fit(recs, workflow=wf)
    assert prof.loops["review"] == pytest.approx(p_true, abs=0.02)
    assert "review" not in prof.routes  # `loop` is not a route branch
    fails = sum(r["outcome"] != "ok" for r in recs if r["step"] == "draft")
    assert prof.steps["draft"].failure_rate == pytest.approx(fails / sum(r["step"] == "draft" for r in recs))


def test_fit_reads_what_the_executors_trace_writer_writes(tmp_path: Path) -> None:
    """The contract with petriflow.execute: its TraceWriter's JSON lines are valid `fit` input."""
    trace = pytest.importorskip("petriflow.execute.trace")
    path = tmp_path / "run.jsonl"
    writer = trace.TraceWriter(path=path)
    rng = np.random.default_rng(0)
    t = 1.7e9
    for case in range(300):
        d = float(rng.lognormal(0.0, 0.3))
        branch = "fast" if rng.random() < 0.6 else "slow"
        writer.write(TraceRecord("run1", case, "pick", t, t + 0.01, 1, "ok", "e5", 5, 0, 0.0, branch))
        writer.write(TraceRecord("run1", case, branch, t, t + d, 1, "ok", "m", 40, 60, 1e-5, None))
        t += 1.0
    writer.close()
    prof = fit(path, workflow=loads(WF))
    assert prof.routes["pick"]["fast"] == pytest.approx(0.6, abs=0.07)
    assert prof.quality["fast"]["latency"].n + prof.quality["slow"]["latency"].n == 300


def test_fit_maps_endpoint_model_names_to_the_workflows_model_ids(tmp_path: Path) -> None:
    wf = load(Path(__file__).resolve().parents[2] / "models" / "qa_router.yaml")
    rng = np.random.default_rng(1)
    recs = []
    for case in range(200):
        d = float(rng.lognormal(0.7, 0.5))
        recs.append({"run_id": "r", "case": case, "step": "code", "start": 0.0, "end": d, "attempt": 1,
                     "outcome": "ok", "model": "SmolLM2-135M-Instruct", "input_tokens": 60,
                     "output_tokens": int(rng.exponential(150)) + 1, "cost": None, "branch": None})
    prof = fit(recs, workflow=wf)
    assert prof.steps["code"].model == "smollm2"
    out = tmp_path / "p.yaml"
    prof.dump(out)
    assert Profile.load(out, workflow=wf).step("code").latency.mean == pytest.approx(np.exp(0.7 + 0.125), rel=0.1)


@pytest.mark.parametrize(("key", "raw"), [("start", "NaN"), ("end", "Infinity"), ("cost", "-Infinity"),
                                          ("input_tokens", "NaN"), ("output_tokens", "1e999")])
def test_non_finite_times_tokens_and_costs_are_rejected_naming_the_line(tmp_path: Path, key: str, raw: str) -> None:
    """Python's json reads NaN, Infinity and 1e999 as floats; fitting them would give NaN profiles silently."""
    good = traces(2)
    bad = json.dumps({**good[1], key: 0}).replace(f'"{key}": 0', f'"{key}": {raw}')
    p = tmp_path / "nan.jsonl"
    p.write_text(json.dumps(good[0]) + "\n" + bad + "\n")
    with pytest.raises(ProfileError, match=rf"`{key}` is .*not a finite number") as e:
        read_traces(p)
    assert e.value.where.endswith("nan.jsonl:2")


def test_branch_labels_on_a_fallback_count_for_its_roots_route() -> None:
    """When `pick` gives up to `pick_backup`, the executor writes the branch the backup chose on the backup's
    record; the simulator follows `pick`'s route after the fallback, so those labels are `pick`'s evidence:
    60 a + 40 b from `pick`, 0 a + 100 b from the backup gives b = 140 / 200 (dropping them gave 0.4)."""
    wf = loads("""
name: fb_route
steps:
  - id: pick
    kind: classify
    retry: {max_attempts: 1}
    fallback: pick_backup
    route: [{when: a, to: a, p: 0.5}, {when: b, to: b, p: 0.5}]
  - {id: pick_backup, kind: tool}
  - {id: a, kind: tool}
  - {id: b, kind: tool}
""")
    assert wf.root_of("pick_backup") == "pick"
    recs, t = [], 1.7e9

    def rec(case: int, step: str, outcome: str, branch: str | None) -> dict:
        return {"run_id": "r", "case": case, "step": step, "start": t, "end": t + 0.1, "attempt": 1,
                "outcome": outcome, "model": None, "input_tokens": None, "output_tokens": None, "cost": None,
                "branch": branch}

    for i in range(100):
        recs.append(rec(i, "pick", "ok", "a" if i < 60 else "b"))
    for i in range(100, 200):
        recs.append(rec(i, "pick", "fallback", None))
        recs.append(rec(i, "pick_backup", "ok", "b"))
    prof = fit(recs, workflow=wf)
    assert dict(prof.routes["pick"]) == pytest.approx({"a": 0.3, "b": 0.7})
    assert "pick_backup" not in prof.routes
    without = fit(recs)  # without the workflow nothing says whose fallback it is: labels stay with their step
    assert dict(without.routes["pick"]) == pytest.approx({"a": 0.6, "b": 0.4})
