"""The public surface is fixed: a change to it is a decision, not an accident.

The surface is written out here, name by name with the module that owns
each, so adding, removing or moving a public name fails this test until the
list is changed with it (as httpx's ``test_exported_members.py`` does).
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import petriflow

PUBLIC = {
    "BudgetExceeded": "petriflow.errors",
    "Escalated": "petriflow.errors",
    "ExecutionError": "petriflow.errors",
    "FatalCallError": "petriflow.errors",
    "InputError": "petriflow.errors",
    "ModelCallError": "petriflow.errors",
    "NetError": "petriflow.errors",
    "PetriflowError": "petriflow.errors",
    "PnmlError": "petriflow.errors",
    "ProfileError": "petriflow.errors",
    "PropertyViolation": "petriflow.errors",
    "RetryableCallError": "petriflow.errors",
    "ServerError": "petriflow.errors",
    "SpecError": "petriflow.errors",
    "StepFailed": "petriflow.errors",
    "UnsoundWorkflowError": "petriflow.errors",
    "Workflow": "petriflow.spec",
    "WorkflowBuilder": "petriflow.spec",
    "load": "petriflow.spec",
    "loads": "petriflow.spec",
    "Origin": "petriflow.net",
    "PetriNet": "petriflow.net",
    "WorkflowNet": "petriflow.net",
    "lower": "petriflow.net.lower",
    "read_pnml": "petriflow.net.pnml",
    "write_pnml": "petriflow.net.pnml",
    "Report": "petriflow.verify.report",
    "Witness": "petriflow.verify.report",
    "check": "petriflow.verify.report",
    "StateSpace": "petriflow.verify.statespace",
    "explore": "petriflow.verify.statespace",
    "Profile": "petriflow.profile",
    "fit": "petriflow.profile",
    "CostBound": "petriflow.profile.bound",
    "cost_bound": "petriflow.profile.bound",
    "Load": "petriflow.simulate",
    "SimResult": "petriflow.simulate",
    "simulate": "petriflow.simulate",
    "sweep": "petriflow.simulate",
}
"""Every public name and the module it comes from (besides ``__version__``)."""

ERRORS = {n for n, owner in PUBLIC.items() if owner == "petriflow.errors"}


def test_all_is_exactly_the_listed_surface() -> None:
    assert set(petriflow.__all__) == set(PUBLIC) | {"__version__"}
    assert len(petriflow.__all__) == len(set(petriflow.__all__))


def test_dir_is_the_surface() -> None:
    """``dir()`` lists the lazy names before their first use (completion and ``help()`` see them), and only them."""
    assert dir(petriflow) == sorted(set(PUBLIC) | {"__version__"})


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_name_resolves_to_the_object_its_module_owns(name: str) -> None:
    value = getattr(petriflow, name)
    assert value is getattr(importlib.import_module(PUBLIC[name]), name)
    assert getattr(petriflow, name) is value  # the second lookup gives the same object


def test_a_subpackage_import_does_not_shadow_the_function_of_its_name() -> None:
    """``petriflow.simulate`` is the function even when the subpackage ``petriflow.simulate`` was imported first."""
    code = ("import petriflow.simulate.sweep, petriflow; from petriflow.simulate import simulate; "
            "print(petriflow.simulate is simulate)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "True"


def test_the_spec_package_exports_every_value_of_the_workflow_model() -> None:
    """A value a workflow holds (a step, a branch, a declared tool) can be named from ``petriflow.spec``."""
    import petriflow.spec
    import petriflow.spec.model

    values = set(petriflow.spec.model.__all__) - {"Priced", "price_of"}
    assert values <= set(petriflow.spec.__all__)
    assert all(getattr(petriflow.spec, n) is getattr(petriflow.spec.model, n) for n in values)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Simulator'"):
        _ = petriflow.Simulator  # type: ignore[attr-defined]
    assert not hasattr(petriflow, "_OWNER_OF_NOTHING")
    with pytest.raises(ImportError):
        exec("from petriflow import Simulator", {})


def test_version_is_the_package_version() -> None:
    from importlib.metadata import version

    assert petriflow.__version__ == version("petriflow")


def test_every_exception_is_exported_and_shares_one_root() -> None:
    import petriflow.errors

    defined = {n for n, v in vars(petriflow.errors).items()
               if isinstance(v, type) and issubclass(v, BaseException) and v.__module__ == "petriflow.errors"}
    assert defined == ERRORS
    assert all(issubclass(getattr(petriflow, n), petriflow.PetriflowError) for n in ERRORS)
    assert petriflow.InputError.exit_code == 2 and petriflow.BudgetExceeded.exit_code == 3


def test_import_has_no_heavy_side_effects() -> None:
    code = ("import sys, petriflow; heavy = [m for m in ('matplotlib', 'simpy', 'openai', 'snakes', 'xllamacpp', "
            "'numpy', 'ray') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
