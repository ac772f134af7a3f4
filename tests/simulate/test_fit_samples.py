"""`fit` says how many observations each figure rests on, with a 95% interval, and warns when they are few."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from petriflow.cli.simulate import fit_cmd
from petriflow.profile.fit import fit
from petriflow.profile.intervals import few_samples, quantile_estimate, wilson


def test_wilson_matches_the_closed_form_for_five_of_nine() -> None:
    # centre (5 + z²/2) / (9 + z²) = 0.53894, half-width z / (9 + z²) * sqrt(9 * 5/9 * 4/9 + z²/4) = 0.27228
    lo, hi = wilson(5, 9)
    assert lo == pytest.approx(0.26666, abs=1e-4) and hi == pytest.approx(0.81122, abs=1e-4)
    assert wilson(0, 10)[0] == 0.0 and 0.27 < wilson(0, 10)[1] < 0.28  # 3.84 / 13.84 = 0.2775: not [0, 0]


@pytest.mark.parametrize("p, n", [(0.3, 40), (0.05, 60)])
def test_wilson_intervals_cover_the_rate_about_95_percent_of_the_time(p: float, n: int) -> None:
    rng = np.random.default_rng(0)
    reps = 2000
    hits = sum(lo <= p <= hi for lo, hi in (wilson(int(k), n) for k in rng.binomial(n, p, reps)))
    assert 0.92 <= hits / reps <= 0.99  # 2000 reps: a 95% rate has sd 0.005


def test_order_statistic_interval_covers_the_exponential_median_and_p95() -> None:
    rng = np.random.default_rng(1)
    reps, n = 1000, 50
    for q in (0.5, 0.95):
        truth = -np.log(1 - q)  # the q-quantile of Exp(1)
        covered = 0
        for _ in range(reps):
            e = quantile_estimate(rng.exponential(1.0, n).tolist(), q)
            covered += (e.low is None or e.low <= truth) and (e.high is None or truth <= e.high)
        assert 0.93 <= covered / reps <= 1.0, q  # distribution-free, at least 95% (up to noise)


def test_an_order_statistic_bound_is_unbounded_when_the_sample_is_too_small() -> None:
    e = quantile_estimate([1.0, 2.0, 3.0], 0.95)
    assert e.n == 3 and e.high is None and e.low is not None


def _two_cases() -> list[dict]:
    """Two cases of `s`: 5 failed attempts out of 9 (a rate of 0.5556), as in the issue."""
    out, t = [], 0.0
    for case, outcomes in (("c0", ["error"] * 3 + ["ok"]), ("c1", ["error", "error", "ok", "ok", "ok"])):
        for i, outcome in enumerate(outcomes, 1):
            out.append({"run_id": "r", "case": case, "step": "s", "start": t, "end": t + 1.0 + i, "attempt": i,
                        "outcome": outcome, "model": None, "input_tokens": None, "output_tokens": None,
                        "cost": None, "branch": None, "error": "retryable" if outcome != "ok" else None})
            t += 10
    return out


def test_fit_writes_sample_sizes_and_intervals_into_the_quality_section(tmp_path: Path) -> None:
    prof = fit(_two_cases())
    e = prof.estimates["s"]["failure_rate"]
    assert (e.n, round(e.value, 4)) == (9, 0.5556)
    assert (e.low, e.high) == pytest.approx(wilson(5, 9))
    assert prof.estimates["s"]["latency p50"].n == 4
    out = tmp_path / "p.json"
    prof.dump(out)
    doc = json.loads(out.read_text())["fit"]["s"]
    assert doc["failure_rate"]["n"] == 9 and doc["failure_rate"]["ci95"] == pytest.approx(list(wilson(5, 9)), abs=1e-6)
    assert few_samples(prof.estimates, 20) and not few_samples(prof.estimates, 4)


def test_fit_command_warns_naming_the_step_and_the_count(tmp_path: Path) -> None:
    traces = tmp_path / "t.jsonl"
    traces.write_text("\n".join(json.dumps(r) for r in _two_cases()))
    res = CliRunner().invoke(fit_cmd, [str(traces), "-o", str(tmp_path / "p.yaml")])
    assert res.exit_code == 0, res.output
    warn = [x for x in res.stderr.splitlines() if x.startswith("warning")]
    assert len(warn) == 1 and "step 's'" in warn[0] and "failure_rate from 9 attempts" in warn[0]
    assert "[0.2667, 0.8112]" in res.stdout  # the interval beside the figure
    quiet = CliRunner().invoke(fit_cmd, [str(traces), "-o", str(tmp_path / "p.yaml"), "--min-samples", "4"])
    assert "warning" not in quiet.stderr
