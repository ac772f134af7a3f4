"""Fit a :class:`Profile` from execution traces: the loop from running back to simulating.

A trace is JSON lines, one record per step execution (attempt), as the
executor writes them::

    {"run_id": "r1", "case": "c17", "step": "code", "start": 1732572000.12, "end": 1732572002.31,
     "attempt": 1, "outcome": "ok", "model": "smollm2", "input_tokens": 61, "output_tokens": 144,
     "cost": 0.0000493, "branch": null, "error": null}

What is fitted, per step:

* latency, from ``end - start`` of attempts with outcome ``ok`` (failed
  attempts end early and timeouts are cut off, so they say little about
  how long a success takes). Candidates, each by maximum likelihood with
  location fixed at 0: exponential, lognormal and gamma (``scipy.stats``),
  and mixtures of 2 and 3 lognormals (EM on ``log x``): an LLM step's
  latency is often multi-modal (answers that stop early, answers that run
  to ``max_tokens``), and one skewed family then puts the median between
  the modes. The candidates are ranked by BIC (``k ln n - 2 ln L``, ``k``
  counting every mixture weight, mean and spread: BIC, not AIC, because AIC
  keeps adding mixture components), and the best one that a
  Kolmogorov-Smirnov test does not reject at level 0.01 wins. When every
  candidate is rejected, or with fewer than ``min_samples`` values, the
  measurements themselves (``empirical``); all equal values give ``fixed``.
  The BIC of every candidate goes into :class:`FitQuality`'s ``criterion``;
* input and output tokens, the same way;
* the failure rate of each error kind (``retryable``, ``fatal``,
  ``timeout``: :data:`petriflow.rules.ERROR_KINDS`): failed attempts
  (outcome ``error``, ``timeout``, or ``fallback``, the executor's mark for
  the last failed attempt before a step hands over to its fallback) of that
  kind over all attempts. The kind is the record's ``error``; a record
  without one (a trace from before kinds were written) counts as
  ``timeout`` when its outcome is ``timeout`` and as ``retryable``
  otherwise, which is what the simulator took every failure for;
* the server's ``Retry-After``: when some retryable failure recorded one
  (the trace's ``retry_after``), the step's ``retry_after`` is the
  measured waits of all its retryable failures (0 for those without one,
  ``empirical``), which the simulator draws per retryable failure;
* branch probabilities: frequencies of ``branch`` over the step's ``ok``
  records; with a workflow, a loop's probability from the passes per case
  (maximum likelihood, passes after the budget is spent left out), and the
  label ``loop`` (what the executor writes when a loop goes back) left out
  of the branches. A fallback has no route of its own: the branch labels
  on its records (with a workflow) count for the route of the step it
  finally stands in for (``Workflow.root_of``), which the simulator follows
  after a fallback too; with a workflow, also per route branch that came
  before (loops and routes conditional on it, :mod:`petriflow.profile.fit_given`);
* per model: when a step ran on several models, each with enough records
  gets its own entry under ``models`` (what ``sweep`` switches between).
  With a workflow, the model names in the trace (the executor writes the
  endpoint's model name) are mapped to the workflow's model ids; models the
  workflow does not declare are left out, since nothing prices them.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from petriflow.errors import ProfileError
from petriflow.profile.distributions import (
    Dist,
    Empirical,
    Exponential,
    Fixed,
    Gamma,
    LogNormal,
    Mixture,
)
from petriflow.profile.fit_given import conditional_loops, conditional_routes
from petriflow.profile.intervals import Estimate, quantile_estimate, rate_estimate
from petriflow.profile.model import FitQuality, Profile, StepProfile
from petriflow.rules import ERROR_KINDS
from petriflow.spec.model import Workflow
from petriflow.trace import TraceRecord, check_record, read_traces

__all__ = ["fit", "fit_dist", "lognormal_mixture"]

KS_LEVEL = 0.01
"""A candidate family whose KS p-value is below this is rejected (the p-values are optimistic,
since the parameters were fitted to the same data, so a rejection is a strong one)."""
MIXTURE_COMPONENTS = (2, 3)
MAX_EM_POINTS = 5000
"""EM on more values than this runs on a thinned copy (see :func:`lognormal_mixture`)."""
MIN_LOG_SPREAD = 0.01
"""The smallest sigma (on ``log x``) of a mixture component: without it a component shrinks onto a
repeated value and its likelihood grows without bound."""


def fit_dist(values: Iterable[float], *, min_samples: int = 20) -> tuple[Dist, FitQuality]:
    """The best-fitting family for ``values`` by BIC that a KS test accepts (see the module docstring).

    Deterministic: the same values (in any order) give the same distribution.
    """
    from scipy import stats

    x = np.sort(np.asarray(list(values), dtype=float))
    n = int(x.size)
    if n == 0:
        raise ProfileError("nothing to fit")
    if np.all(x == x[0]):
        return Fixed(float(x[0])), FitQuality("fixed", n, 0.0, 1.0)
    if n < min_samples:
        return Empirical(tuple(x.tolist())), FitQuality("empirical", n, 0.0, 1.0)
    # name -> (distribution, its CDF, log-likelihood, number of free parameters)
    candidates: dict[str, tuple[Dist, Any, float, int]] = {}
    scale = float(x.mean())
    expon = stats.expon(scale=scale)
    candidates["exponential"] = (Exponential(scale), expon.cdf, float(np.sum(expon.logpdf(x))), 1)
    if x.min() > 0:
        s, _, sc = stats.lognorm.fit(x, floc=0)
        frozen = stats.lognorm(s, scale=sc)
        candidates["lognormal"] = (LogNormal(math.log(sc), s), frozen.cdf, float(np.sum(frozen.logpdf(x))), 2)
        a, _, sc = stats.gamma.fit(x, floc=0)
        frozen = stats.gamma(a, scale=sc)
        candidates["gamma"] = (Gamma(a, sc), frozen.cdf, float(np.sum(frozen.logpdf(x))), 2)
        for k in MIXTURE_COMPONENTS:
            if n >= 10 * k:
                mix = lognormal_mixture(x, k)
                if mix is not None:
                    candidates[f"mixture{k}"] = (mix[0], _mixture_cdf(mix[0]), mix[1], 3 * k - 1)
    bic = {name: k * math.log(n) - 2 * loglik for name, (_, _, loglik, k) in candidates.items()}
    scores = MappingProxyType({name: round(v, 3) for name, v in bic.items()})
    first: FitQuality | None = None
    for name in sorted(bic, key=lambda name: (bic[name], name)):
        dist, cdf, _, _ = candidates[name]
        ks = stats.kstest(x, cdf)
        quality = FitQuality(name, n, float(ks.statistic), float(ks.pvalue), scores)
        if ks.pvalue >= KS_LEVEL:
            return dist, quality
        first = first or quality
    assert first is not None
    return Empirical(tuple(x.tolist())), FitQuality("empirical", n, first.ks, first.p_value, scores)


def lognormal_mixture(x: np.ndarray, k: int, *, max_iter: int = 300,
                      tol: float = 1e-6) -> tuple[Mixture, float] | None:
    """The maximum-likelihood mixture of ``k`` lognormals for positive ``x``, by EM on ``log x``.

    EM is started from three deterministic guesses (``log x`` cut into ``k`` equal-count groups,
    1-D k-means from there, and ``log x`` cut at its ``k - 1`` widest gaps, which finds a small
    far-away mode such as the answers that run to ``max_tokens``) and the best end point is kept,
    so the result depends on the data only. Beyond :data:`MAX_EM_POINTS` values EM runs on evenly
    spaced order statistics (a deterministic thinning that keeps the shape); the likelihood is
    always that of all of ``x``. Returns the mixture (components in increasing median) and its
    log-likelihood on the scale of ``x``, or ``None`` when a component empties (fewer than two
    points' worth of weight).
    """
    full = np.sort(np.log(np.asarray(x, dtype=float)))
    jacobian = float(np.sum(full))  # log-density of x = log-density of log x - log x
    y = full
    if full.size > MAX_EM_POINTS:
        y = full[np.linspace(0, full.size - 1, MAX_EM_POINTS).round().astype(int)]
    n = y.size
    groups = np.array_split(np.arange(n), k)
    starts = [np.array([y[g].mean() for g in groups])]
    centers = starts[0].copy()
    for _ in range(100):  # Lloyd's iterations in one dimension
        label = np.argmin(np.abs(y[:, None] - centers[None, :]), axis=1)
        new = np.array([y[label == j].mean() if np.any(label == j) else centers[j] for j in range(k)])
        if np.allclose(new, centers):
            break
        centers = new
    if not np.allclose(centers, starts[0]):
        starts.append(centers)
    cuts = _widest_gaps(y, k)
    if cuts is not None:
        starts.append(np.array([part.mean() for part in np.split(y, cuts)]))
    best: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None
    for mu0 in starts:
        label = np.argmin(np.abs(y[:, None] - mu0[None, :]), axis=1)
        sd0 = np.array([y[label == j].std() if np.sum(label == j) > 1 else y.std() for j in range(k)])
        result = _em(y, np.full(k, 1.0 / k), mu0.astype(float), np.maximum(sd0, MIN_LOG_SPREAD), max_iter, tol)
        if result is not None and (best is None or result[3] > best[3]):
            best = result
    if best is None:
        return None
    w, mu, sd, loglik = best
    if y is not full:
        loglik = float(np.sum(_gauss_mix_loglik(full, w, mu, sd)[0]))
    order = np.argsort(mu, kind="stable")
    comps = tuple(LogNormal(float(mu[j]), float(sd[j])) for j in order)
    return Mixture(comps, tuple(float(w[j]) for j in order)), loglik - jacobian


def _widest_gaps(y: np.ndarray, k: int) -> list[int] | None:
    """Indices that cut sorted ``y`` at its ``k - 1`` widest gaps, each part keeping 3 or more points."""
    n = y.size
    gaps = np.diff(y)
    cuts: list[int] = []
    for i in np.argsort(-gaps, kind="stable"):
        cut = int(i) + 1
        bounds = sorted([0, n, *cuts, cut])
        if int(np.diff(bounds).min()) >= 3:
            cuts.append(cut)
            if len(cuts) == k - 1:
                return sorted(cuts)
    return None


def _em(y: np.ndarray, w: np.ndarray, mu: np.ndarray, sd: np.ndarray, max_iter: int,
        tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """EM for a Gaussian mixture on ``y``: (weights, means, sigmas, log-likelihood), or None if a part empties.

    Stops when an iteration gains less than ``tol`` per point of log-likelihood (a BIC difference
    that small never changes the ranking).
    """
    n = y.size
    old = -math.inf
    for _ in range(max_iter):
        row, logp = _gauss_mix_loglik(y, w, mu, sd)
        loglik = float(np.sum(row))
        if loglik - old < tol * n:
            break
        old = loglik
        resp = np.exp(logp - row[:, None])
        nk = resp.sum(axis=0)
        if np.any(nk < 2.0):
            return None
        w = nk / n
        mu = (resp * y[:, None]).sum(axis=0) / nk
        sd = np.maximum(np.sqrt((resp * (y[:, None] - mu[None, :]) ** 2).sum(axis=0) / nk), MIN_LOG_SPREAD)
    else:
        loglik = float(np.sum(_gauss_mix_loglik(y, w, mu, sd)[0]))
    return w, mu, sd, loglik  # the likelihood of exactly these parameters


def _gauss_mix_loglik(y: np.ndarray, w: np.ndarray, mu: np.ndarray,
                      sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per point: the log-density of the mixture, and the log of each weighted component's density."""
    logp = (np.log(w)[None, :] - np.log(sd)[None, :] - 0.5 * math.log(2 * math.pi)
            - 0.5 * ((y[:, None] - mu[None, :]) / sd[None, :]) ** 2)
    top = logp.max(axis=1)
    return top + np.log(np.exp(logp - top[:, None]).sum(axis=1)), logp


def _mixture_cdf(dist: Mixture) -> Any:
    """The CDF of a mixture of lognormals, for the KS test."""
    from scipy import stats

    w = np.asarray(dist.weights, dtype=float)
    mu = np.array([c.mu for c in dist.components])  # type: ignore[attr-defined]
    sd = np.array([c.sigma for c in dist.components])  # type: ignore[attr-defined]

    def cdf(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=float)
        with np.errstate(divide="ignore"):
            z = (np.log(np.maximum(v, 0.0))[..., None] - mu) / sd
        out: np.ndarray = np.sum(w * stats.norm.cdf(z), axis=-1)
        return out

    return cdf


def _fit_step(recs: list[dict[str, Any]], min_samples: int) -> tuple[StepProfile, dict[str, FitQuality]]:
    ok = [r for r in recs if r["outcome"] == "ok"]
    attempts = recs
    quality: dict[str, FitQuality] = {}
    latency: Dist = Fixed(0.0)
    if ok:
        latency, quality["latency"] = fit_dist([r["end"] - r["start"] for r in ok], min_samples=min_samples)
    tokens: dict[str, Dist | None] = {}
    for k in ("input", "output"):
        vals = [r[f"{k}_tokens"] for r in ok if r[f"{k}_tokens"] is not None]
        tokens[k] = None
        if vals:
            tokens[k], quality[f"{k}_tokens"] = fit_dist(vals, min_samples=min_samples)
    kinds = Counter(_error_kind(r) for r in attempts if r["outcome"] != "ok")
    share = {kind: kinds[kind] / len(attempts) if attempts else 0.0 for kind in ERROR_KINDS}
    models = Counter(r["model"] for r in ok if r["model"])
    waits = [float(r.get("retry_after") or 0.0) for r in attempts
             if r["outcome"] != "ok" and _error_kind(r) == "retryable"]
    return StepProfile(
        retry_after=Empirical(tuple(waits)) if any(waits) else None,
        latency=latency, input_tokens=tokens["input"], output_tokens=tokens["output"],
        retryable_rate=share["retryable"], fatal_rate=share["fatal"], timeout_rate=share["timeout"],
        model=models.most_common(1)[0][0] if models else None,
    ), quality


def _error_kind(rec: Mapping[str, Any]) -> str:
    """The kind of a failed attempt's record; older traces carry none (see the module docstring)."""
    kind = rec.get("error")
    if kind in ERROR_KINDS:
        return str(kind)
    if kind is not None:
        raise ProfileError(f"unknown error kind {kind!r}", where=f"step '{rec['step']}'",
                           hint=f"one of {', '.join(ERROR_KINDS)}")
    return "timeout" if rec["outcome"] == "timeout" else "retryable"


def fit(traces: Iterable[Mapping[str, Any] | TraceRecord] | str | Path, *, workflow: Workflow | None = None,
        min_samples: int = 20) -> Profile:
    """A profile fitted from trace records (or a JSONL file); ``quality`` holds each fit's KS statistic.

    With ``workflow``, its annotations fill what the traces do not cover and
    loop and map statistics are read in its terms.
    """
    if isinstance(traces, (str, Path)):
        checked = read_traces(traces)
    else:
        checked = [check_record(r if isinstance(r, TraceRecord) else dict(r), where=f"record {i + 1}")
                   for i, r in enumerate(traces)]
    records = [r.to_json() for r in checked]
    if workflow is not None:  # the executor writes the endpoint's model name; profiles speak model ids
        ids = {m.name: m.id for m in workflow.models.values()} | {m: m for m in workflow.models}
        records = [{**r, "model": ids.get(r["model"], r["model"])} for r in records]
    by_step: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_step[r["step"]].append(r)
    steps: dict[str, StepProfile] = {}
    quality: dict[str, Mapping[str, FitQuality]] = {}
    routes: dict[str, dict[str, float]] = {}
    loops: dict[str, float] = {}
    items: dict[str, Dist] = {}
    estimates: dict[str, dict[str, Estimate]] = {}
    branch_counts: dict[str, Counter[str]] = defaultdict(Counter)  # route owner -> label -> ok records
    for sid, recs in by_step.items():
        sp, q = _fit_step(recs, min_samples)
        per_model = Counter(r["model"] for r in recs if r["model"] and r["outcome"] == "ok")
        if len(per_model) > 1:
            alts = {m: _fit_step([r for r in recs if r["model"] == m], min_samples)[0]
                    for m, k in per_model.items() if k >= min_samples}
            sp = StepProfile(**{**vars(sp), "by_model": MappingProxyType(alts)})
        steps[sid] = sp
        quality[sid] = MappingProxyType(q)
        estimates[sid] = _step_estimates(recs)
        branches = Counter(r["branch"] for r in recs if r["outcome"] == "ok" and r["branch"] is not None)
        step = _step_or_none(workflow, sid)
        if step is not None and step.map is not None:
            per_case = Counter((r["run_id"], r["case"]) for r in recs if r["attempt"] == 1)
            if per_case:
                items[sid] = Empirical(tuple(float(k) for k in per_case.values()))
        if step is not None and step.loop is not None:
            backs, chances = _loop_counts(recs, step.loop.max)
            loops[sid] = backs / chances if chances else 0.0
            estimates[sid]["loop"] = rate_estimate(backs, chances, "chances to go back")
            for label in {"loop", step.loop.when} - {b.when for b in step.route}:
                branches.pop(label, None)  # the executor writes `loop` when it goes back
        owner = sid
        if workflow is not None and step is not None and not step.route:
            owner = workflow.root_of(sid)  # a fallback's labels decide its root's route
            root = workflow.step(owner)
            if root.loop is not None:
                for label in {"loop", root.loop.when} - {b.when for b in root.route}:
                    branches.pop(label, None)
        if branches and (step is None or workflow.step(owner).route):  # type: ignore[union-attr]
            branch_counts[owner].update(branches)
    for sid, branches in branch_counts.items():
        total = sum(branches.values())
        routes[sid] = {b: k / total for b, k in sorted(branches.items())}
        estimates.setdefault(sid, {}).update({f"route {b}": rate_estimate(k, total, "decisions")
                                             for b, k in sorted(branches.items())})
    frozen = MappingProxyType({sid: MappingProxyType(es) for sid, es in estimates.items()})
    if items:
        steps.update({sid: StepProfile(**{**vars(steps[sid]), "items": d}) for sid, d in items.items()})
    doc_routes = {sid: MappingProxyType(p) for sid, p in routes.items()}
    if workflow is not None:
        base = Profile.from_workflow(workflow)
        for sid, route in doc_routes.items():
            labels = {b.when for b in workflow.step(sid).route}
            missing = labels - set(route)
            if set(route) - labels:
                raise ProfileError(f"traces of '{sid}' name branches {sorted(set(route) - labels)} the workflow lacks",
                                   where=f"step '{sid}'", hint="fit traces of this workflow, or update it")
            if missing:  # never observed: probability 0, said explicitly
                doc_routes[sid] = MappingProxyType({**route, **{m: 0.0 for m in missing}})
        merged_steps = dict(base.steps)
        known = set(workflow.models)
        for sid, sp in steps.items():
            old = merged_steps.get(sid)
            if old is not None and (sp.model is None or (known and sp.model not in known)):
                sp = StepProfile(**{**vars(sp), "model": old.model})  # a model the workflow does not price
            if known:
                sp = StepProfile(**{**vars(sp), "by_model": MappingProxyType(
                    {m: alt for m, alt in sp.by_model.items() if m in known})})
            merged_steps[sid] = sp
        loops_given = {sid: MappingProxyType(g) for sid, g in conditional_loops(records, workflow).items()}
        routes_given = {sid: MappingProxyType({k: MappingProxyType(p) for k, p in g.items()})
                        for sid, g in conditional_routes(records, workflow).items()}
        return Profile(steps=MappingProxyType(merged_steps), routes=MappingProxyType({**base.routes, **doc_routes}),
                       loops=MappingProxyType({**base.loops, **loops}), models=base.models,
                       resources=base.resources, quality=MappingProxyType(quality),
                       loops_given=MappingProxyType(loops_given), routes_given=MappingProxyType(routes_given),
                       estimates=frozen)
    return Profile(steps=MappingProxyType(steps), routes=MappingProxyType(doc_routes), loops=MappingProxyType(loops),
                   quality=MappingProxyType(quality), estimates=frozen)


def _step_estimates(recs: list[dict[str, Any]]) -> dict[str, Estimate]:
    """The failure rate over all attempts and the latency median and p95 of ``ok`` ones, with their samples."""
    failed = sum(1 for r in recs if r["outcome"] != "ok")
    out = {"failure_rate": rate_estimate(failed, len(recs), "attempts")}
    ok = [r["end"] - r["start"] for r in recs if r["outcome"] == "ok"]
    if ok:
        out["latency p50"] = quantile_estimate(ok, 0.5, "ok attempts")
        out["latency p95"] = quantile_estimate(ok, 0.95, "ok attempts")
    return out


def _loop_counts(recs: list[dict[str, Any]], bound: int) -> tuple[int, int]:
    """A loop's go-backs and chances to go back, whose ratio is the maximum likelihood of its probability.

    A case that passed ``n`` times went back ``n - 1`` times out of ``min(n, bound)`` chances: once the
    budget of ``bound`` is spent the step cannot go back, so those passes are no evidence either way.
    """
    passes = Counter((r["run_id"], r["case"]) for r in recs if r["outcome"] == "ok")
    return sum(n - 1 for n in passes.values()), sum(min(n, bound) for n in passes.values())


def _step_or_none(wf: Workflow | None, sid: str) -> Any:
    if wf is None:
        return None
    try:
        return wf.step(sid)
    except KeyError:
        raise ProfileError(f"traces name step '{sid}', which the workflow does not have", where=f"step '{sid}'",
                           hint="fit traces of this workflow") from None
