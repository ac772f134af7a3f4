"""petriflow: verify, simulate and run multi-model AI workflows as Petri nets.

``load() -> lower() -> check()``: a workflow file becomes a workflow net whose
report says whether it is sound, with witnesses in workflow terms. The
public surface is this module's ``__all__``; importing it starts nothing and
imports no optional dependency.
"""

from petriflow.errors import (
    BudgetExceeded,
    ExecutionError,
    InputError,
    ModelCallError,
    NetError,
    PetriflowError,
    PnmlError,
    ProfileError,
    PropertyViolation,
    ServerError,
    SpecError,
    UnsoundWorkflowError,
)
from petriflow.net import Origin, PetriNet, WorkflowNet
from petriflow.net.lower import lower
from petriflow.net.pnml import read_pnml, write_pnml
from petriflow.simulate import Load, Profile, SimResult, fit, simulate, sweep
from petriflow.spec import Workflow, WorkflowBuilder, load, loads
from petriflow.verify.report import Report, Witness, check
from petriflow.verify.statespace import StateSpace, explore

__version__ = "0.1.0"

__all__ = [
    "BudgetExceeded",
    "ExecutionError",
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
    "ServerError",
    "SimResult",
    "SpecError",
    "StateSpace",
    "UnsoundWorkflowError",
    "Witness",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowNet",
    "__version__",
    "check",
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
