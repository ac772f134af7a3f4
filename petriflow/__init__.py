"""petriflow: verify, simulate and run multi-model AI workflows as Petri nets.

The public surface is this module's ``__all__``; nothing here imports an
optional dependency or starts anything.
"""

from petriflow.errors import (
    BudgetExceeded,
    InputError,
    NetError,
    PetriflowError,
    PnmlError,
    PropertyViolation,
    SpecError,
)
from petriflow.net import Origin, PetriNet, WorkflowNet

__version__ = "0.1.0"

__all__ = [
    "BudgetExceeded",
    "InputError",
    "NetError",
    "Origin",
    "PetriNet",
    "PetriflowError",
    "PnmlError",
    "PropertyViolation",
    "SpecError",
    "WorkflowNet",
    "__version__",
]
