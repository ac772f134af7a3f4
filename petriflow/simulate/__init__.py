"""Simulation: predict latency and cost of a workflow by playing its net's token game on measured profiles.

``simulate(workflow, profile, cases=..., load=Load.poisson(rate))`` runs the
same net that ``check`` verifies; ``fit(traces)`` builds a :class:`Profile`
from execution traces; ``sweep(...)`` simulates every combination of
alternatives and finds the cost/latency Pareto front.
"""

from petriflow.simulate.distributions import Dist, parse_dist
from petriflow.simulate.engine import simulate
from petriflow.simulate.fit import fit
from petriflow.simulate.load import Load
from petriflow.simulate.profile import (
    FitQuality,
    ModelProfile,
    Profile,
    ResourceProfile,
    StepProfile,
)
from petriflow.simulate.result import SimResult, Summary
from petriflow.simulate.sweep import SweepResult, Variation, parse_vary, sweep

__all__ = [
    "Dist", "FitQuality", "Load", "ModelProfile", "Profile", "ResourceProfile", "SimResult", "StepProfile",
    "Summary", "SweepResult", "Variation", "fit", "parse_dist", "parse_vary", "simulate", "sweep",
]
