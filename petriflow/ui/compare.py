"""Predicted against measured: the simulator's latency and cost per case beside the runs' own.

The prediction is :func:`petriflow.simulate` on the workflow's profile (one
refitted here if there is one, else ``NAME.profile.yaml`` beside the
workflow, else its annotations); the measurement is each finished case of
the shown runs, its latency from its first attempt's start to its last
one's end and its cost the sum of its attempts'. The gap is the difference
of the means with a 95% Welch interval, so a gap whose interval straddles 0
is not evidence that the model is off. "Refit" fits a profile from exactly
those runs' trace records (:func:`petriflow.profile.fit`) and predicts again.
"""

from __future__ import annotations

import io
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from petriflow.execute.store import RunRow, SqliteStore
from petriflow.execute.trace import record_of
from petriflow.profile.model import Profile
from petriflow.spec.model import Workflow
from petriflow.trace import TraceRecord

__all__ = ["PLOT_LOCK", "Comparison", "Gap", "compare", "measured_cases", "plot_png", "refit"]

PLOT_LOCK = threading.Lock()  # matplotlib's pyplot state is not thread-safe


@dataclass(frozen=True)
class Gap:
    """measured mean − predicted mean, and its 95% interval (Welch's t, Welch–Satterthwaite degrees of freedom)."""

    predicted: float
    measured: float
    diff: float
    low: float
    high: float
    predicted_p95: float
    measured_p95: float


def gap(predicted: np.ndarray, measured: np.ndarray) -> Gap:
    """The gap of the means; with fewer than two values on a side its interval is unbounded."""
    from scipy import stats

    mp, mm = float(np.mean(predicted)), float(np.mean(measured))
    d, half = mm - mp, math.inf
    if predicted.size > 1 and measured.size > 1:
        a, b = float(np.var(predicted, ddof=1)) / predicted.size, float(np.var(measured, ddof=1)) / measured.size
        if a + b == 0:
            half = 0.0
        else:
            ra, rb = a / (a + b), b / (a + b)  # Welch-Satterthwaite in shares, so tiny variances cannot underflow
            df = 1.0 / (ra * ra / (predicted.size - 1) + rb * rb / (measured.size - 1))
            half = float(stats.t.ppf(0.975, df)) * math.sqrt(a + b)
    return Gap(mp, mm, d, d - half, d + half, float(np.percentile(predicted, 95)), float(np.percentile(measured, 95)))


@dataclass(frozen=True)
class Comparison:
    workflow: str
    profile: str  # where the prediction's profile came from
    runs: int
    latency: Gap
    cost: Gap
    predicted_latency: np.ndarray
    measured_latency: np.ndarray
    predicted_cost: np.ndarray
    measured_cost: np.ndarray


def records(store: SqliteStore, rows: list[RunRow]) -> list[TraceRecord]:
    return [record_of(line) for row in rows for line in store.trace_lines(row.run_id)]


def measured_cases(store: SqliteStore, rows: list[RunRow]) -> tuple[np.ndarray, np.ndarray]:
    """Latency (s) and cost ($) of every finished case of ``rows``, from its trace records."""
    spans: dict[tuple[str, int | str], list[float]] = {}
    for row in rows:
        finished = {c.case for c in store.cases(row.run_id) if c.status != "pending"}
        for line in store.trace_lines(row.run_id):
            r = record_of(line)
            if r.case in finished:
                s = spans.setdefault((r.run_id, r.case), [math.inf, -math.inf, 0.0])
                s[0], s[1], s[2] = min(s[0], r.start), max(s[1], r.end), s[2] + r.cost
    lat = np.array([e - s for s, e, _ in spans.values()], dtype=float)
    cost = np.array([c for _, _, c in spans.values()], dtype=float)
    return lat, cost


def profile_for(wf: Workflow, path: str, fitted: str | None) -> tuple[Profile, str]:
    if fitted is not None and Path(fitted).is_file():
        return Profile.load(fitted, workflow=wf), f"refitted from the runs: {fitted}"
    beside = Path(path).with_suffix(".profile.yaml")
    if beside.is_file():
        return Profile.load(beside, workflow=wf), str(beside)
    return Profile.from_workflow(wf), "the workflow's annotations"


def compare(store: SqliteStore, wf: Workflow, path: str, rows: list[RunRow], *, fitted: str | None = None,
            cases: int = 1000, seed: int = 1) -> Comparison | None:
    """The comparison for the runs ``rows`` of workflow ``wf`` at ``path``; None when no case has finished."""
    from petriflow.simulate import simulate

    lat, cost = measured_cases(store, rows)
    if lat.size == 0:
        return None
    profile, where = profile_for(wf, path, fitted)
    result = simulate(wf, profile, cases=cases, seed=seed)
    plat, pcost = np.asarray(result.latencies, dtype=float), np.asarray(result.costs, dtype=float)
    return Comparison(path, where, len(rows), gap(plat, lat), gap(pcost, cost), plat, lat, pcost, cost)


def refit(store: SqliteStore, wf: Workflow, rows: list[RunRow], out: Path) -> Path:
    """Fit a profile from the runs' trace records and write it to ``out``."""
    from petriflow.profile.fit import fit

    fit(records(store, rows), workflow=wf).dump(out)
    return out


def plot_png(c: Comparison) -> bytes:
    """Two panels, latency and cost per case: the predicted and the measured CDFs, with the gap in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with PLOT_LOCK:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
        for ax, (name, unit, p, m, g) in zip(axes, (
                ("latency per case", "s", c.predicted_latency, c.measured_latency, c.latency),
                ("cost per case", "$", c.predicted_cost, c.measured_cost, c.cost)), strict=True):
            for values, label, colour in ((p, f"predicted ({p.size} simulated)", "#1f77b4"),
                                          (m, f"measured ({m.size} cases)", "#d62728")):
                x = np.sort(values)
                ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", label=label, color=colour, lw=2)
            ax.set_title(f"{name}: gap {g.diff:+.3g} {unit} [{g.low:+.3g}, {g.high:+.3g}]", fontsize=11)
            ax.set_xlabel(unit)
            ax.set_ylabel("share of cases at or below")
            ax.grid(alpha=0.3)
            ax.legend(loc="lower right", fontsize=9)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
    return buf.getvalue()


