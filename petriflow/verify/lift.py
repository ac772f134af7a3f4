"""Check the structurally reduced net, and tell its answer on the net the user wrote.

:func:`petriflow.net.reduce.reduce_net` keeps every verdict; what changes is
the vocabulary: a reduced transition stands for a firing sequence of the
original net, and some original transitions are gone. This module turns the
reduced net's :class:`~petriflow.verify.report.Report` into one about the
original: each witness's firing sequence is expanded and replayed on the
original net (the marking it shows is the one that replay reaches, and the
words are the original steps'), dead transitions are mapped back, and the
bound is kept only where the reduction kept it exactly.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from petriflow.net.reduce import Reduction
from petriflow.verify.explain import choices_made, never_lines, tell_sequence, why_stuck
from petriflow.verify.report import Report, Witness

__all__ = ["lift"]


def _lift_witness(red: Reduction, w: Witness, dead: list[str]) -> Witness:
    net = red.original
    if w.summary.startswith("dead transitions:"):
        return Witness(property=w.property, summary="dead transitions: no run ever gets to " + ", ".join(dead),
                       stuck=tuple(never_lines(net, dead)))
    if not w.trace and not w.marking:
        return w
    trace = red.expand(w.trace)
    m = net.replay(trace)  # raises NetError if the expansion were wrong: never shown as a verdict
    marking = {net.place_labels[i]: int(m[i]) for i in np.flatnonzero(m)}
    stuck = tuple(why_stuck(net, m)) if w.stuck and w.property != "bounded" else w.stuck
    return dataclasses.replace(w, trace=tuple(trace), told=tuple(tell_sequence(net, trace)),
                               choices=tuple(choices_made(net, trace)), marking=marking, stuck=stuck)


def lift(red: Reduction, inner: Report, seconds: float) -> Report:
    """The report of ``red.net`` told about ``red.original``."""
    dead = red.dead_in_original(inner.dead_transitions) if inner.dead_transitions is not None else None
    reasons = dict(inner.unknown_reasons)
    bound, safe = inner.bound, inner.safe
    if inner.bounded and bound is not None:
        if red.exact_bound:
            bound = max(bound, red.extra_bound)
            safe = bound <= 1
        else:
            bound = safe = None
            reasons["safe"] = "reduced_bound"
    states = inner.states if inner.states is not None else inner.states_reduced
    return dataclasses.replace(
        inner, net=red.original, states=None, edges=None, dead_markings=None,
        deadlock_trace=tuple(red.expand(inner.deadlock_trace)) if inner.deadlock_trace is not None else None,
        bound=bound, safe=safe, dead_transitions=tuple(dead) if dead is not None else None,
        witnesses=tuple(_lift_witness(red, w, dead or []) for w in inner.witnesses),
        states_reduced=states, unknown_reasons=reasons, seconds=seconds,
        reduced_net=(len(red.net.places), len(red.net.transitions)),
    )
