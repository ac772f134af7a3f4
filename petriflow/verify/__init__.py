"""Verification: the state space, properties read off it, reductions, coverability, reports.

``check(net)`` is the one entry point most callers need; ``explore(net)``
gives the raw reachability graph.
"""

from petriflow.verify.report import PROPERTIES, Report, Witness, check
from petriflow.verify.statespace import StateSpace, explore

__all__ = ["PROPERTIES", "Report", "StateSpace", "Witness", "check", "explore"]
