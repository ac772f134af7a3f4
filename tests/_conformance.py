"""The MCC conformance nets shipped with the tests, and their oracle table ``expected.csv``.

They live in ``tests/data/conformance/`` (provenance in its README) so that a
clone of the repository runs the whole suite with nothing beside it. Every
test that reads them goes through here, so there is one place that knows
where they are; a missing file is an error at collection, never a skip, so
the suite cannot pass by quietly checking nothing.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

__all__ = ["DIR", "path", "rows"]

DIR = Path(__file__).resolve().parent / "data" / "conformance"


@functools.cache
def _table() -> tuple[dict[str, str], ...]:
    with (DIR / "expected.csv").open(newline="") as fh:
        return tuple(csv.DictReader(fh))


def rows() -> list[dict[str, str]]:
    """Every row of ``expected.csv`` in file order (fresh dicts: a test may not change another's)."""
    return [dict(r) for r in _table()]


def path(model: str) -> Path:
    """The PNML file of one model of the table."""
    return DIR / f"{model}.pnml"
