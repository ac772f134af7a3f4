"""The public surface is fixed: a change to it is a decision, not an accident."""

from __future__ import annotations

import subprocess
import sys

import petriflow


def test_public_api() -> None:
    exported = {name for name in dir(petriflow) if not name.startswith("_")}
    assert set(petriflow.__all__) - {"__version__"} <= exported
    for name in petriflow.__all__:
        assert getattr(petriflow, name) is not None


def test_errors_share_one_root() -> None:
    errors = [getattr(petriflow, n) for n in petriflow.__all__ if n.endswith("Error") or n in ("BudgetExceeded",
                                                                                            "PropertyViolation")]
    assert all(issubclass(e, petriflow.PetriflowError) for e in errors)
    assert petriflow.InputError.exit_code == 2 and petriflow.BudgetExceeded.exit_code == 3


def test_import_has_no_heavy_side_effects() -> None:
    code = ("import sys, petriflow; heavy = [m for m in ('matplotlib', 'simpy', 'openai', 'snakes', 'xllamacpp') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
