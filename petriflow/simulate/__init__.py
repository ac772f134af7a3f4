"""Simulation: predict latency and cost of a workflow by playing its net's token game on measured profiles.

``simulate(workflow, profile, cases=..., load=Load.poisson(rate))`` runs the
same net that ``check`` verifies, on a :class:`~petriflow.profile.Profile`
(see :mod:`petriflow.profile`, which also fits profiles from traces);
``sweep(...)`` simulates every combination of alternatives and finds the
cost/latency Pareto front.
"""

from petriflow.simulate.engine import simulate
from petriflow.simulate.load import Load
from petriflow.simulate.result import SimResult, Summary
from petriflow.simulate.sweep import SweepResult, Variation, parse_vary, sweep

__all__ = ["Load", "SimResult", "Summary", "SweepResult", "Variation", "parse_vary", "simulate", "sweep"]
