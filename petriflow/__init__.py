"""petriflow: verify, simulate and run multi-model AI workflows as Petri nets.

``load() -> lower() -> check()``: a workflow file becomes a workflow net whose
report says whether it is sound, with witnesses in workflow terms;
``simulate`` predicts it on a ``Profile``, ``petriflow.execute`` runs it.
The public surface is this module's ``__all__``. Importing it starts nothing
and imports nothing but this file: each name is loaded from the module that
owns it on first use (PEP 562), so ``import petriflow.execute`` does not load
the simulator, and ``import petriflow.simulate`` does not load the executor.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from petriflow.errors import (
        BudgetExceeded,
        Escalated,
        ExecutionError,
        FatalCallError,
        InputError,
        ModelCallError,
        NetError,
        PetriflowError,
        PnmlError,
        ProfileError,
        PropertyViolation,
        RetryableCallError,
        ServerError,
        SpecError,
        StepFailed,
        UnsoundWorkflowError,
    )
    from petriflow.net import Origin, PetriNet, WorkflowNet
    from petriflow.net.lower import lower
    from petriflow.net.pnml import read_pnml, write_pnml
    from petriflow.profile import Profile, fit
    from petriflow.profile.bound import CostBound, cost_bound
    from petriflow.simulate import Load, SimResult, simulate, sweep
    from petriflow.spec import Workflow, WorkflowBuilder, load, loads
    from petriflow.verify.report import Report, Witness, check
    from petriflow.verify.statespace import StateSpace, explore

__version__ = "0.1.0"

_OWNER = {
    "BudgetExceeded": "petriflow.errors",
    "Escalated": "petriflow.errors",
    "CostBound": "petriflow.profile.bound",
    "ExecutionError": "petriflow.errors",
    "FatalCallError": "petriflow.errors",
    "InputError": "petriflow.errors",
    "Load": "petriflow.simulate",
    "ModelCallError": "petriflow.errors",
    "NetError": "petriflow.errors",
    "Origin": "petriflow.net",
    "PetriNet": "petriflow.net",
    "PetriflowError": "petriflow.errors",
    "PnmlError": "petriflow.errors",
    "Profile": "petriflow.profile",
    "ProfileError": "petriflow.errors",
    "PropertyViolation": "petriflow.errors",
    "Report": "petriflow.verify.report",
    "RetryableCallError": "petriflow.errors",
    "ServerError": "petriflow.errors",
    "SimResult": "petriflow.simulate",
    "SpecError": "petriflow.errors",
    "StateSpace": "petriflow.verify.statespace",
    "StepFailed": "petriflow.errors",
    "UnsoundWorkflowError": "petriflow.errors",
    "Witness": "petriflow.verify.report",
    "Workflow": "petriflow.spec",
    "WorkflowBuilder": "petriflow.spec",
    "WorkflowNet": "petriflow.net",
    "check": "petriflow.verify.report",
    "cost_bound": "petriflow.profile.bound",
    "explore": "petriflow.verify.statespace",
    "fit": "petriflow.profile",
    "load": "petriflow.spec",
    "loads": "petriflow.spec",
    "lower": "petriflow.net.lower",
    "read_pnml": "petriflow.net.pnml",
    "simulate": "petriflow.simulate",
    "sweep": "petriflow.simulate",
    "write_pnml": "petriflow.net.pnml",
}
"""Each public name and the module that owns it."""


def __getattr__(name: str) -> Any:
    owner = _OWNER.get(name)
    if owner is None:
        raise AttributeError(f"module 'petriflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(owner), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


class _Package(types.ModuleType):
    """This package's type: a public name is never rebound to the subpackage of the same name.

    Importing ``petriflow.simulate`` (as the CLI and every simulator module
    do) makes the import system set the subpackage as the attribute
    ``simulate`` of this package, and a module attribute is found before
    ``__getattr__`` is asked: ``petriflow.simulate(...)`` would then call a
    module. That binding is dropped, so the name keeps meaning the function,
    as an eager ``from petriflow.simulate import simulate`` left it.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWNER and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "BudgetExceeded",
    "CostBound",
    "Escalated",
    "ExecutionError",
    "FatalCallError",
    "InputError",
    "Load",
    "ModelCallError",
    "NetError",
    "Origin",
    "PetriNet",
    "PetriflowError",
    "PnmlError",
    "Profile",
    "ProfileError",
    "PropertyViolation",
    "Report",
    "RetryableCallError",
    "ServerError",
    "SimResult",
    "SpecError",
    "StateSpace",
    "StepFailed",
    "UnsoundWorkflowError",
    "Witness",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowNet",
    "__version__",
    "check",
    "cost_bound",
    "explore",
    "fit",
    "load",
    "loads",
    "lower",
    "read_pnml",
    "simulate",
    "sweep",
    "write_pnml",
]
