"""`fit_dist` on multi-modal data: lognormal mixtures by EM, scored by BIC, with the KS fallback.

The oracles are the generating distributions themselves (known weights and
medians), scipy's lognormal density for the mixture likelihood, and the
sample quantiles for what the simulator will draw.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from petriflow.profile import Profile
from petriflow.profile.distributions import (
    Exponential,
    Gamma,
    LogNormal,
    Mixture,
    parse_dist,
)
from petriflow.profile.fit import fit, fit_dist, lognormal_mixture
from petriflow.simulate import simulate
from petriflow.spec import loads


def mixture_sample(weights: list[float], medians: list[float], sigmas: list[float], n: int, seed: int) -> np.ndarray:
    truth = Mixture(tuple(LogNormal(math.log(m), s) for m, s in zip(medians, sigmas)), tuple(weights))
    return truth.sample(np.random.default_rng(seed), n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_a_two_component_lognormal_mixture(seed: int) -> None:
    """Weights within 0.03 and component medians within 5% of the truth, from 2000 draws."""
    x = mixture_sample([0.7, 0.3], [0.3, 2.0], [0.35, 0.15], 2000, seed)
    dist, q = fit_dist(x)
    assert q.family == "mixture2", q.criterion
    assert isinstance(dist, Mixture)
    assert dist.weights == pytest.approx((0.7, 0.3), abs=0.03)
    medians = [math.exp(c.mu) for c in dist.components]
    assert medians == pytest.approx([0.3, 2.0], rel=0.05)
    assert [c.sigma for c in dist.components] == pytest.approx([0.35, 0.15], rel=0.15)
    assert q.p_value >= 0.01 and q.ks < 0.03
    assert q.criterion["mixture2"] < min(q.criterion["lognormal"], q.criterion["gamma"], q.criterion["exponential"])


def test_recovers_three_components_and_small_samples() -> None:
    x = mixture_sample([0.3, 0.4, 0.3], [0.08, 0.4, 2.0], [0.4, 0.2, 0.04], 3000, 7)
    dist, q = fit_dist(x)
    assert q.family == "mixture3", q.criterion
    assert dist.weights == pytest.approx((0.3, 0.4, 0.3), abs=0.03)
    assert [math.exp(c.mu) for c in dist.components] == pytest.approx([0.08, 0.4, 2.0], rel=0.08)
    # a closed-loop-sized trace (60 answers: short ones and ones that run to max_tokens)
    x = mixture_sample([0.6, 0.4], [0.3, 2.0], [0.5, 0.05], 60, 3)
    dist, q = fit_dist(x)
    assert q.family.startswith("mixture"), q.criterion
    assert dist.weights[-1] == pytest.approx(np.mean(x > 1.0), abs=0.02)  # the max_tokens mode, by count


@pytest.mark.parametrize("truth", [Exponential(2.0), LogNormal(0.5, 0.4), Gamma(3.0, 0.5), Gamma(0.7, 2.0),
                                   LogNormal(-1.0, 1.2)])
@pytest.mark.parametrize("n", [40, 300, 3000])
def test_unimodal_data_keeps_a_single_family(truth, n: int) -> None:
    """BIC's penalty (3 parameters more than lognormal) keeps mixtures off data that has one mode."""
    family = type(truth).__name__.lower()
    for seed in range(4):
        x = truth.sample(np.random.default_rng(100 + seed), n)
        _, q = fit_dist(x)
        assert q.family in {"exponential", "lognormal", "gamma"}, (seed, q.criterion)
        if n == 3000:
            assert q.family == family, (seed, q.criterion)


def test_median_of_a_bimodal_fit_matches_the_data() -> None:
    """The closed loop's failure: a single skewed family put the median between the modes."""
    x = mixture_sample([0.65, 0.35], [0.3, 2.0], [0.5, 0.04], 400, 11)
    dist, q = fit_dist(x)
    assert q.family.startswith("mixture"), q.criterion
    draws = dist.sample(np.random.default_rng(0), 200_000)
    assert np.median(draws) == pytest.approx(np.median(x), rel=0.06)
    assert np.percentile(draws, 95) == pytest.approx(np.percentile(x, 95), rel=0.05)
    assert dist.mean == pytest.approx(x.mean(), rel=0.05)
    single = stats.lognorm(*stats.lognorm.fit(x, floc=0))
    assert abs(single.median() - np.median(x)) > 0.2 * np.median(x)  # what a lognormal would have said


def test_deterministic_and_order_free() -> None:
    x = mixture_sample([0.5, 0.5], [0.2, 1.5], [0.3, 0.2], 500, 4)
    d1, q1 = fit_dist(x)
    d2, q2 = fit_dist(x[::-1].copy())
    d3, _ = fit_dist(np.random.default_rng(9).permutation(x))
    assert d1.to_doc() == d2.to_doc() == d3.to_doc()
    assert q1 == q2


@pytest.mark.parametrize("n", [300, 12_000])  # 12,000: EM on a thinned copy, likelihood on all values
def test_mixture_log_likelihood_matches_scipy(n: int) -> None:
    """The EM's likelihood (computed on log x) is the likelihood of x under the returned mixture."""
    x = mixture_sample([0.4, 0.6], [0.5, 3.0], [0.3, 0.3], n, 5)
    mix, loglik = lognormal_mixture(x, 2)
    dens = sum(w * stats.lognorm(c.sigma, scale=math.exp(c.mu)).pdf(x) for w, c in zip(mix.weights, mix.components))
    assert loglik == pytest.approx(float(np.sum(np.log(dens))), rel=1e-9)
    assert sum(mix.weights) == pytest.approx(1.0)
    assert [c.mu for c in mix.components] == sorted(c.mu for c in mix.components)
    assert mix.weights == pytest.approx((0.4, 0.6), abs=0.05 if n < 1000 else 0.015)
    assert [math.exp(c.mu) for c in mix.components] == pytest.approx([0.5, 3.0], rel=0.08 if n < 1000 else 0.03)


def test_empirical_when_every_candidate_is_rejected() -> None:
    """Five equally likely values: no continuous candidate (3 mixture components at most) passes KS at 1%."""
    x = np.random.default_rng(0).integers(1, 6, 2000).astype(float)
    dist, q = fit_dist(x)
    assert q.family == "empirical"
    assert q.p_value < 0.01 and q.ks > 0.05  # the best candidate's test, reported
    assert set(q.criterion) == {"exponential", "lognormal", "gamma", "mixture2", "mixture3"}
    assert sorted(dist.samples) == sorted(x.tolist())


def test_a_fitted_mixture_round_trips_and_simulates(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    lat = mixture_sample([0.6, 0.4], [0.3, 2.0], [0.4, 0.05], 600, 2)
    recs = [{"run_id": "r", "case": i, "step": "answer", "start": 10.0 * i, "end": 10.0 * i + float(d),
             "attempt": 1, "outcome": "ok", "model": None, "input_tokens": int(rng.integers(20, 40)),
             "output_tokens": None, "cost": None, "branch": None} for i, d in enumerate(lat)]
    wf = loads("name: one\nsteps:\n  - {id: answer, kind: tool}\n")
    prof = fit(recs, workflow=wf)
    assert prof.quality["answer"]["latency"].family == "mixture2"
    out = tmp_path / "p.yaml"
    prof.dump(out)
    again = Profile.load(out, workflow=wf)
    assert parse_dist(again.step("answer").latency.to_doc()).mean == pytest.approx(prof.step("answer").latency.mean)
    r = simulate(wf, again, cases=4000, seed=0)
    assert r.latency.p50 == pytest.approx(np.median(lat), rel=0.08)
