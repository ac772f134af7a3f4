"""The gap between predicted and measured: its interval is Welch's, checked against scipy's own."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from petriflow.ui.compare import gap

samples = st.lists(st.floats(0.0, 100.0, allow_nan=False), min_size=3, max_size=60)


@settings(max_examples=60, deadline=None)
@given(samples, samples)
@example([0.0, 0.0, 0.0], [0.0, 0.0, 8.372679174792216e-151])  # tiny variances: the old df divided by zero
def test_the_interval_is_welchs(predicted: list[float], measured: list[float]) -> None:
    from scipy import stats

    p, m = np.array(predicted), np.array(measured)
    g = gap(p, m)
    assert g.diff == pytest.approx(m.mean() - p.mean(), abs=1e-9)
    assert g.low <= g.diff <= g.high
    if np.var(p) + np.var(m) < 1e-6:
        return
    want = stats.ttest_ind(m, p, equal_var=False).confidence_interval(0.95)
    assert (g.low, g.high) == (pytest.approx(want.low, rel=1e-6, abs=1e-9), pytest.approx(want.high, rel=1e-6, abs=1e-9))


def test_one_measured_case_has_no_interval() -> None:
    g = gap(np.array([1.0, 2.0, 3.0]), np.array([5.0]))
    assert g.diff == pytest.approx(3.0) and g.low == -np.inf and g.high == np.inf
