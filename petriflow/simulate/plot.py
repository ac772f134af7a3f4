"""Pictures of simulation results: latency and cost distributions, and a sweep's Pareto front.

matplotlib is imported here, when a picture is asked for, never on ``import petriflow``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from petriflow.errors import InputError
from petriflow.simulate.result import SimResult
from petriflow.simulate.sweep import SweepResult

__all__ = ["SUFFIXES", "check_plot_path", "plot_pareto", "plot_result"]

SUFFIXES = (".png", ".svg", ".pdf")
"""What the pictures can be written as, by file suffix (matplotlib's Agg formats we promise)."""


def check_plot_path(path: str | Path) -> Path:
    """The picture's path, checked before any simulating: a run of minutes must not end in a bad suffix.

    Raises :class:`~petriflow.errors.InputError` when the suffix is not one
    of :data:`SUFFIXES` or the directory does not exist.
    """
    out = Path(path)
    if out.suffix.lower() not in SUFFIXES:
        raise InputError(f"cannot draw to '{out}': unknown suffix '{out.suffix}'", where="--plot",
                         hint=f"use one of {', '.join(SUFFIXES)}")
    if not out.parent.is_dir():
        raise InputError(f"cannot draw to '{out}': no directory '{out.parent}'", where="--plot",
                         hint="create the directory first, or write the picture elsewhere")
    return out


def _save(fig: Any, plt: Any, out: Path, **options: Any) -> Path:
    """Write the figure; a file system refusal (a directory in the way, no permission) is the user's input."""
    try:
        fig.savefig(out, dpi=120, **options)
    except OSError as e:
        raise InputError(f"cannot write the picture: {e.strerror or e}", where=str(out),
                         hint="pick a writable file path") from None
    finally:
        plt.close(fig)
    return out


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bins(values: np.ndarray, n: int = 60) -> dict[str, Any]:
    """Histogram bins for ``values``: ``n`` of them, or one when the values differ only by rounding.

    Fixed latencies give per-case sums that differ in the last bits
    (``(t0 + 0.3) - t0``); numpy cannot cut such a range into 60 bins
    ("Too many bins for data range") and a picture of it would say nothing.
    """
    lo, hi = float(values.min()), float(values.max())
    if hi - lo > 1e-9 * max(abs(lo), abs(hi), 1e-12):
        return {"bins": n}
    pad = max(abs(hi) * 1e-3, 1e-9)
    return {"bins": 1, "range": (lo - pad, hi + pad)}


def _dollars(x: float) -> str:
    if x == 0:
        return "$0"
    if abs(x) >= 0.01:
        return f"${x:.3f}"
    return f"${x * 1e6:.1f}µ" if abs(x) < 1e-3 else f"${x * 1e3:.2f}m"


def _short(label: str) -> str:
    """``code.model=gpt4o`` reads as ``code=gpt4o`` in a crowded picture."""
    return label.replace(".model=", "=")


def plot_result(result: SimResult, path: str | Path, *, title: str = "") -> Path:
    """Two panels: the per-case latency histogram with p50/p95/p99, and the per-case cost histogram."""
    out = check_plot_path(path)
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    lat, cost = result.latencies, result.costs
    if lat.size:
        hi = float(np.quantile(lat, 0.995))
        a.hist(np.clip(lat, None, hi), **_bins(np.clip(lat, None, hi)), color="#4c72b0", alpha=0.85)
        for name, color in (("p50", "#2ca02c"), ("p95", "#ff7f0e"), ("p99", "#d62728")):
            v = getattr(result.latency, name)
            a.axvline(v, color=color, lw=2, ls="--", label=f"{name} = {v:.2f} s")
        a.legend(frameon=False)
    a.set_xlabel("latency per case (s); the slowest 0.5% are drawn in the last bin")
    a.set_ylabel("cases")
    a.set_title("latency", loc="left")
    if cost.size:
        b.hist(cost * 1e6, **_bins(cost * 1e6), color="#8172b3", alpha=0.85)
        for name, v, color in (("mean", result.cost.mean, "#2ca02c"), ("p95", result.cost.p95, "#ff7f0e")):
            b.axvline(v * 1e6, color=color, lw=2, ls="--", label=f"{name} = {_dollars(v)}")
        b.legend(frameon=False)
    b.set_xlabel("cost per case (µ$, millionths of a dollar)")
    b.set_title("cost", loc="left")
    fig.suptitle(title or f"{result.measured} simulated cases (seed {result.seed})", fontsize=12)
    return _save(fig, plt, out)


def _key(result: SweepResult, front: list[int]) -> tuple[list[str], str]:
    """Short labels of the front's points (settings shared by all of them said once) and the shared part."""
    settings = [dict(result.points[i].config.settings) for i in front]
    shared = {k: v for k, v in settings[0].items() if all(s.get(k) == v for s in settings)} if settings else {}
    labels = [", ".join(f"{k}={v}" for k, v in s.items() if k not in shared) or "(only point)" for s in settings]
    return [_short(x) for x in labels], _short(", ".join(f"{k}={v}" for k, v in shared.items()))


def plot_pareto(result: SweepResult, path: str | Path, *, title: str = "") -> Path:
    """Cost per case against p95 latency for every configuration; the front, the SLO and the cheapest.

    Front points are numbered on the plot and spelled out in a key under it
    (settings shared by the whole front once), so long configuration labels
    never cover the points.
    """
    out = check_plot_path(path)
    plt = _pyplot()
    pts = result.points
    cost = np.array([p.cost_mean for p in pts]) * 1e6
    p95 = np.array([p.p95 for p in pts])
    good = np.array([p.meets_slo and p.within_budget for p in pts])
    front = sorted(result.pareto, key=lambda i: cost[i])
    labels, shared = _key(result, front)
    fig, ax = plt.subplots(figsize=(10, 6.2))
    ax.scatter(cost[~good], p95[~good], s=36, color="#bbbbbb", edgecolor="#777777", label="misses SLO or budget", zorder=2)
    ax.scatter(cost[good], p95[good], s=40, color="#55a868", edgecolor="#2d6a3e",
               label="meets SLO" + (" and budget" if result.budget is not None else ""), zorder=3)
    ax.plot(cost[front], p95[front], color="#4c72b0", lw=1.8, marker="o", mfc="none", ms=11, label="Pareto front", zorder=4)
    groups: list[list[int]] = []  # front points that would print their numbers on top of each other
    x = np.log(cost) if cost.min() > 0 else cost
    near_x, near_y = 0.015 * (np.ptp(x) or 1.0), 0.015 * (np.ptp(p95) or 1.0)
    for k, i in enumerate(front, 1):
        j = front[groups[-1][0] - 1] if groups else None
        if j is not None and abs(x[i] - x[j]) < near_x and abs(p95[i] - p95[j]) < near_y:
            groups[-1].append(k)
        else:
            groups.append([k])
    for g in groups:
        i = front[g[0] - 1]
        ax.annotate(",".join(map(str, g)), (cost[i], p95[i]), textcoords="offset points", xytext=(7, 7),
                    fontsize=9, fontweight="bold", color="#33486e")
    if result.slo_p95 is not None:
        ax.axhline(result.slo_p95, color="#d62728", ls="--", lw=1.5, label=f"SLO p95 = {result.slo_p95:g} s")
    if result.budget is not None:
        ax.axvline(result.budget * 1e6, color="#8c564b", ls=":", lw=1.5, label=f"budget = {_dollars(result.budget)}")
    if result.cheapest is not None:
        c = result.cheapest
        ax.scatter([cost[c]], [p95[c]], s=300, marker="*", color="#ffbf00", edgecolor="black", zorder=5,
                   label="cheapest meeting SLO" + (" and budget" if result.budget is not None else ""))
    ax.margins(x=0.08, y=0.08)
    if cost.min() > 0 and cost.max() / cost.min() > 30:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("mean cost per case (µ$, millionths of a dollar)")
    ax.set_ylabel("p95 latency (s)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", frameon=True, fontsize=9, framealpha=0.9)
    ax.set_title(title or f"{len(pts)} configurations: cost vs p95 latency", loc="left")
    lines = [f"Pareto front (numbered by cost){'; all with ' + shared if shared else ''}:"]
    for k, (i, label) in enumerate(zip(front, labels), 1):
        star = "  ★ cheapest meeting the SLO" if i == result.cheapest else ""
        lines.append(f"{k:>2}. {label}  —  {_dollars(pts[i].cost_mean)}/case, p95 {pts[i].p95:.2f} s{star}")
    if result.cheapest is None:
        lines.append("no configuration meets the SLO" + (" and the budget" if result.budget is not None else ""))
    elif result.cheapest not in front:
        c = result.cheapest
        lines.append(f" ★ cheapest meeting the SLO: {_short(pts[c].config.label)}  —  "
                     f"{_dollars(pts[c].cost_mean)}/case, p95 {pts[c].p95:.2f} s")
    ax.text(0.0, -0.12, "\n".join(lines), transform=ax.transAxes, va="top", ha="left", fontsize=8.5,
            family="monospace", color="#222222")
    return _save(fig, plt, out, bbox_inches="tight")
