"""The figures a contract compares, measured the way the simulator measures them, with their intervals.

:func:`figures` computes, from per-case records, exactly what
:func:`petriflow.simulate.simulate` reports (see ``_result`` in
``petriflow/simulate/engine.py``): the first ``warmup`` share of cases by
arrival is left out of latency and cost; latency is case arrival to case end,
over completed cases; throughput is the completions from the first measured
arrival to the last event, over that span; cost is the mean over measured
completed cases; ``failed`` is the share of all cases that failed.

Two kinds of interval, because the two sides give different data:

* the executed run is one sample path of correlated cases (a queue's
  neighbours wait for each other), so its interval is a *moving-block
  bootstrap*: blocks of consecutive cases keep the correlation that an
  ordinary bootstrap would break. Throughput is one over the mean time
  between completions, and resamples those times in blocks the same way;
* the simulator is cheap, so it is run ``R`` times with independent seeds and
  the same number of cases; :func:`spread` gives the mean over the runs and
  the range a *single* run of that size falls in (a prediction interval),
  which is what one executed run has to be compared with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from petriflow.simulate.result import SimResult, t_quantile

__all__ = ["FIGURES", "CaseRecord", "block_bootstrap", "executed_intervals", "figures", "of_simulation", "spread"]

FIGURES = ("throughput", "p50", "p95", "cost", "failed")
"""What a contract compares: cases/s, latency quantiles (s), mean dollars per completed case, failed share."""


@dataclass(frozen=True)
class CaseRecord:
    """One executed case: its number in arrival order, arrival and end (s from the run's start), cost, success."""

    idx: int
    arrival: float
    end: float
    cost: float
    ok: bool


def _measured(records: Sequence[CaseRecord], warmup: float) -> list[CaseRecord]:
    cut = int(warmup * len(records))
    return sorted((r for r in records if r.ok and r.idx >= cut), key=lambda r: r.idx)


def _throughput(records: Sequence[CaseRecord], kept: Sequence[CaseRecord]) -> tuple[float, float, float]:
    """(throughput, since, end) as the simulator counts it: completions after the first measured arrival."""
    end = max(r.end for r in records)
    since = kept[0].arrival if kept else 0.0
    done = sum(1 for r in records if r.ok and r.end >= since)
    span = end - since
    return (done / span if span > 0 else math.nan), since, end


def figures(records: Sequence[CaseRecord], *, warmup: float) -> dict[str, float]:
    """The figures of :data:`FIGURES` from executed cases (all of them, warm-up included)."""
    kept = _measured(records, warmup)
    lat = np.array([r.end - r.arrival for r in kept])
    thr, _, _ = _throughput(records, kept)
    nan = math.nan
    return {"throughput": thr,
            "p50": float(np.quantile(lat, 0.5)) if lat.size else nan,
            "p95": float(np.quantile(lat, 0.95)) if lat.size else nan,
            "cost": float(np.mean([r.cost for r in kept])) if kept else nan,
            "failed": sum(not r.ok for r in records) / len(records)}


def of_simulation(res: SimResult) -> dict[str, float]:
    """The same figures from one simulation run."""
    total = res.cases + res.failed + res.unfinished
    return {"throughput": res.throughput, "p50": res.latency.p50, "p95": res.latency.p95,
            "cost": res.cost.mean, "failed": res.failed / total if total else math.nan}


def block_bootstrap(values: np.ndarray, stat: Callable[[np.ndarray], np.ndarray], *, level: float = 0.95,
                    reps: int = 2000, block: int | None = None, seed: int = 0) -> tuple[float, float]:
    """A percentile interval of ``stat`` by the moving-block bootstrap over ``values`` in their order.

    ``stat`` takes a ``(reps, n)`` array and returns one value per row.
    Blocks are ``ceil(sqrt(n))`` long unless given: long enough to carry the
    correlation of a closed population's neighbouring cases, short enough to
    leave many blocks to resample.
    """
    v = np.asarray(values, dtype=float)
    n = v.size
    if n < 2:
        return (math.nan, math.nan)
    size = block or max(1, math.ceil(math.sqrt(n)))
    size = min(size, n)
    k = math.ceil(n / size)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - size + 1, size=(reps, k))
    idx = (starts[:, :, None] + np.arange(size)).reshape(reps, k * size)[:, :n]
    est = stat(v[idx])
    lo, hi = np.quantile(est, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def executed_intervals(records: Sequence[CaseRecord], *, warmup: float, level: float = 0.95,
                       seed: int = 0) -> dict[str, tuple[float, float]]:
    """The executed figures' intervals: block bootstrap over cases, and over the times between completions
    (in completion order) for throughput."""
    kept = _measured(records, warmup)
    lat = np.array([r.end - r.arrival for r in kept])
    cost = np.array([r.cost for r in kept])
    failed = np.array([not r.ok for r in sorted(records, key=lambda r: r.idx)], dtype=float)

    def q(p: float) -> Callable[[np.ndarray], np.ndarray]:
        return lambda a: np.quantile(a, p, axis=1)

    def mean(a: np.ndarray) -> np.ndarray:
        return np.asarray(a.mean(axis=1))

    _, since, end = _throughput(records, kept)
    ends = np.sort([r.end for r in records if r.ok and r.end >= since])
    gaps = np.diff(ends, prepend=since)
    if gaps.size:
        gaps[-1] += end - ends[-1]  # the span runs to the last event: the gaps add up to it
    lo, hi = block_bootstrap(gaps, mean, level=level, seed=seed)
    return {"throughput": (1 / hi, 1 / lo) if lo > 0 else (1 / hi, math.inf),
            "p50": block_bootstrap(lat, q(0.5), level=level, seed=seed),
            "p95": block_bootstrap(lat, q(0.95), level=level, seed=seed),
            "cost": block_bootstrap(cost, mean, level=level, seed=seed),
            "failed": block_bootstrap(failed, mean, level=level, seed=seed)}


def spread(values: Sequence[float], *, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, lo, hi)`` over independent runs: their mean and where one more run falls with ``level``.

    The Student-t prediction interval ``mean ± t * sd * sqrt(1 + 1/R)``; only
    the 95% level is tabled (:func:`petriflow.simulate.result.t_quantile`).
    """
    if level != 0.95:
        raise ValueError("spread() knows the 95% level only")
    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if v.size < 2:
        return m, math.nan, math.nan
    half = t_quantile(v.size - 1) * float(v.std(ddof=1)) * math.sqrt(1 + 1 / v.size)
    return m, m - half, m + half
