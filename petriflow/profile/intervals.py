"""How sure a fitted figure is: the sample it came from and a 95% interval.

A failure rate of 0.5556 from nine attempts and one from nine thousand
read the same in a profile; the simulator will draw from either with the
same confidence. ``fit`` therefore writes, next to each rate and latency
quantile, how many observations it rests on and an interval:

* rates (failure rate, branch and loop probabilities): the Wilson score
  interval, which, unlike the normal approximation, stays inside [0, 1]
  and keeps close to its level for small ``n`` and rates near 0 or 1;
* latency quantiles: the distribution-free order-statistic interval, the
  ranks ``l < u`` with ``P(X(l) <= q-th quantile <= X(u)) >= 95%`` from the
  Binomial(n, q) count of values below the quantile. With too few values a
  side has no order statistic: that bound is ``None`` (unbounded).

:func:`few_samples` lists the estimates resting on fewer than a minimum,
which the ``fit`` command warns about.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Z95", "Estimate", "few_samples", "quantile_estimate", "rate_estimate", "wilson"]

Z95 = 1.959963984540054
"""The two-sided 95% normal quantile."""


@dataclass(frozen=True)
class Estimate:
    """A fitted figure, the number of observations ``n`` it rests on (attempts, decisions, values; ``unit``
    names them) and its 95% interval (``None``: that side is unbounded with this few values)."""

    value: float
    n: int
    low: float | None
    high: float | None
    method: str
    unit: str

    def to_doc(self) -> dict[str, object]:
        """What the profile's ``fit:`` section keeps (for people; never read back)."""
        return {"value": _round(self.value), "n": self.n, "ci95": [_round(self.low), _round(self.high)],
                "method": self.method, "unit": self.unit}


def _round(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 6)


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``k`` successes in ``n`` trials (``(0, 1)`` when ``n`` is 0)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


def rate_estimate(k: int, n: int, unit: str) -> Estimate:
    """``k / n`` with its Wilson interval."""
    lo, hi = wilson(k, n)
    return Estimate(k / n if n else 0.0, n, lo, hi, "wilson", unit)


def quantile_estimate(values: Sequence[float], q: float, unit: str = "values") -> Estimate:
    """The ``q``-quantile of ``values`` with its order-statistic 95% interval (see the module docstring)."""
    import numpy as np
    from scipy import stats

    x = sorted(values)
    n = len(x)
    point = float(np.quantile(x, q)) if n else math.nan
    # ranks (1-based) l and u: P(l <= B <= u - 1) >= 0.95 for B ~ Binomial(n, q), B the values below the quantile
    lo_rank = int(stats.binom.ppf(0.025, n, q))
    hi_rank = int(stats.binom.ppf(0.975, n, q)) + 1
    low = x[lo_rank - 1] if lo_rank >= 1 else None
    high = x[hi_rank - 1] if hi_rank <= n else None
    return Estimate(point, n, low, high, "order statistics", unit)


def few_samples(estimates: Mapping[str, Mapping[str, Estimate]], minimum: int) -> dict[str, list[tuple[str, Estimate]]]:
    """Per step, its estimates that rest on fewer than ``minimum`` observations."""
    out: dict[str, list[tuple[str, Estimate]]] = {}
    for sid, es in estimates.items():
        thin = [(what, e) for what, e in es.items() if e.n < minimum]
        if thin:
            out[sid] = thin
    return out
