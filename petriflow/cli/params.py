"""Click parameter types that hold flags to :mod:`petriflow.limits`.

``click.FloatRange(min=0)`` lets ``nan`` through (every comparison with NaN
is false), and ``--budget nan`` would switch the budget off without a word.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from petriflow.errors import InputError
from petriflow.limits import MAX_NUMBER, failing, number

__all__ = ["Amount"]

if TYPE_CHECKING:
    _ParamType = click.ParamType[float]  # generic from click 8.2; pyproject allows 8.1
else:
    _ParamType = click.ParamType


class Amount(_ParamType):
    """A finite number in ``[lo, hi]``: dollars, seconds, shares. A bad value is click's usage error (exit 2)."""

    name = "number"

    def __init__(self, *, lo: float = 0.0, hi: float = MAX_NUMBER) -> None:
        self.lo, self.hi = lo, hi

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            x = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        try:
            return number(x, what="the value", lo=self.lo, hi=self.hi, fail=failing(InputError, "flag"))
        except InputError as err:
            self.fail(err.message, param, ctx)
