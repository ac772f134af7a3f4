"""What a simulation reports: latency and cost per case with confidence intervals, and load figures.

Confidence intervals come from *batch means*: the measured cases (warm-up
discarded), in arrival order, are cut into ``batches`` consecutive groups;
each group gives one estimate of the mean and of each quantile, and the 95%
interval is the Student-t interval over those estimates. Consecutive cases
of a queue are correlated; batches of hundreds of cases are nearly
independent, which single-case intervals would not be.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = ["SimResult", "Summary", "summarize", "t_quantile"]


_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t_quantile(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (a table: no scipy import per run)."""
    if df <= len(_T975):
        return _T975[df - 1]
    return 1.959964 + 2.37 / df  # within 0.004 of the exact value beyond 30


@dataclass(frozen=True)
class Summary:
    """Mean and quantiles of one per-case quantity, each with its 95% interval ``ci95[name] = (lo, hi)``."""

    mean: float
    p50: float
    p95: float
    p99: float
    ci95: Mapping[str, tuple[float, float]] = field(default_factory=lambda: MappingProxyType({}))

    def to_json(self) -> dict[str, Any]:
        return {"mean": _num(self.mean), "p50": _num(self.p50), "p95": _num(self.p95), "p99": _num(self.p99),
                "ci95": {k: [_num(lo), _num(hi)] for k, (lo, hi) in self.ci95.items()}}


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def summarize(values: np.ndarray, *, batches: int = 20) -> Summary:
    """Point estimates over all ``values`` and batch-means intervals (NaN when too few values)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        nan = float("nan")
        return Summary(nan, nan, nan, nan, MappingProxyType({}))
    q = np.quantile(v, [0.5, 0.95, 0.99])
    point = {"mean": float(v.mean()), "p50": float(q[0]), "p95": float(q[1]), "p99": float(q[2])}
    b = min(batches, v.size // 10)
    ci: dict[str, tuple[float, float]] = {}
    if b >= 2:
        groups = np.array_split(v, b)
        est = {"mean": np.array([g.mean() for g in groups])}
        qs = np.array([np.quantile(g, [0.5, 0.95, 0.99]) for g in groups])
        est.update(p50=qs[:, 0], p95=qs[:, 1], p99=qs[:, 2])
        tq = t_quantile(b - 1)
        for k, e in est.items():
            half = tq * float(e.std(ddof=1)) / math.sqrt(b)
            ci[k] = (point[k] - half, point[k] + half)
    return Summary(**point, ci95=MappingProxyType(ci))


@dataclass(frozen=True, eq=False)
class SimResult:
    """The outcome of one simulation run; same seed and inputs give the same numbers.

    ``cases`` counts completed cases (all of them); the summaries use the
    ``measured`` ones that arrived after the warm-up. ``failed`` cases ran out
    of retries with no fallback and never reached the end. ``utilization``
    is the time-average share of each resource's capacity in use,
    ``queue_length`` the time-average number of requests waiting for it.
    ``critical_path[step]`` is the share of measured cases whose
    last-arriving chain of steps (the one that set the latency) ran ``step``.
    ``unfinished`` cases stopped in a marking that enables nothing and is not
    the end: the net can deadlock (``petriflow check`` shows how).
    ``failed_costs`` is what each measured failed case spent before it
    failed (its attempts are paid for): ``cost`` covers completed cases only.
    ``unpriced`` names the model steps that cost $0 for want of an
    annotation (step -> what is missing), so a low cost is not taken at face value.
    """

    cases: int
    measured: int
    failed: int
    latency: Summary
    cost: Summary
    throughput: float
    utilization: Mapping[str, float]
    queue_length: Mapping[str, float]
    critical_path: Mapping[str, float]
    firings: int
    sim_time: float
    wall_seconds: float
    latencies: np.ndarray
    costs: np.ndarray
    seed: int | None = None
    unfinished: int = 0
    failed_costs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    unpriced: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def to_json(self) -> dict[str, Any]:
        """The ``simulate --json`` document (keys are a contract; add, never rename)."""
        cost = self.cost.to_json()
        return {
            "cases": self.cases,
            "measured": self.measured,
            "failed": self.failed,
            "unfinished": self.unfinished,
            "latency": self.latency.to_json(),
            "cost": {"mean": cost["mean"], "p95": cost["p95"], "ci95": cost["ci95"]},
            "throughput": _num(self.throughput),
            "utilization": {k: round(v, 6) for k, v in self.utilization.items()},
            "queue_length": {k: round(v, 6) for k, v in self.queue_length.items()},
            "critical_path": {k: round(v, 6) for k, v in self.critical_path.items()},
            "firings": self.firings,
            "sim_time": _num(self.sim_time),
            "seed": self.seed,
            "unpriced": dict(self.unpriced),
        }

    def table(self) -> str:
        """A few aligned lines for a terminal."""
        lat, cost = self.latency, self.cost

        def ci(s: Summary, k: str, fmt: str) -> str:
            lo_hi = s.ci95.get(k)
            return f"  [{lo_hi[0]:{fmt}} .. {lo_hi[1]:{fmt}}]" if lo_hi else ""

        lines = [f"cases        {self.cases} completed ({self.measured} measured after warm-up), {self.failed} failed"
                 + (f", {self.unfinished} stuck in a deadlock" if self.unfinished else ""),
                 f"throughput   {self.throughput:.3f} cases/s over {self.sim_time:.1f} simulated s"
                 if math.isfinite(self.throughput) else "throughput   none: no case completed"]
        if self.measured:
            for k in ("mean", "p50", "p95", "p99"):
                lines.append(f"latency {k:<4} {getattr(lat, k):9.3f} s{ci(lat, k, '.3f')}")
            lines.append(f"cost mean    ${cost.mean:.6f}{ci(cost, 'mean', '.6f')}")
            lines.append(f"cost p95     ${cost.p95:.6f}")
        else:  # no figure to print: say so instead of nan
            lines.append("latency      none: no measured case finished, so there is no latency or cost to report")
        for r, u in self.utilization.items():
            lines.append(f"resource     {r}: utilisation {u:.1%}, mean queue {self.queue_length.get(r, 0.0):.2f}")
        if self.critical_path:
            cp = ", ".join(f"{s} {v:.0%}" for s, v in sorted(self.critical_path.items(), key=lambda kv: -kv[1]))
            lines.append(f"critical     {cp}")
        return "\n".join(lines)
