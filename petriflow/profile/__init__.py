"""Profiles: what a workflow's steps measure like, and how they are fitted from traces.

A :class:`Profile` holds, per step, latency, token and cost distributions, a
failure rate split by error kind; per route its branch probabilities; per
resource its capacity and rate limits. It is data that both stages read: the
simulator draws from it, and :func:`fit` builds it from the traces the
executor writes (:mod:`petriflow.trace`). It sits below ``simulate`` and
``execute`` so neither has to import the other.
"""

from petriflow.profile.distributions import Dist, parse_dist
from petriflow.profile.fit import fit, fit_dist
from petriflow.profile.model import FitQuality, ModelProfile, Profile, ResourceProfile, StepProfile

__all__ = ["Dist", "FitQuality", "ModelProfile", "Profile", "ResourceProfile", "StepProfile", "fit", "fit_dist",
           "parse_dist"]
