"""What a drawing of a deadlocking net shows: the path taken in bold, where it is stuck in red.

``petriflow draw`` and the web console's live net both draw a workflow that
fails ``check`` this way, so the overlay is computed once, here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from petriflow.net.petrinet import PetriNet

__all__ = ["Overlay", "deadlock_overlay"]

MAX_NODES = 400
"""Nets larger than this are drawn without a witness: the search would take longer than the drawing is worth."""


@dataclass(frozen=True)
class Overlay:
    """The keyword arguments :func:`petriflow.viz.draw` takes to show a deadlock."""

    highlight: tuple[str, ...]
    marking: np.ndarray
    title: str
    trail: tuple[str, ...]


def deadlock_overlay(net: PetriNet) -> Overlay | None:
    """The deadlock witness of ``net`` as a drawing overlay; None when it has none (or is too big to search)."""
    if len(net.places) + len(net.transitions) > MAX_NODES:
        return None
    from petriflow.verify.explain import choices_made, waiting
    from petriflow.verify.report import check

    report = check(net, properties=("deadlock",), max_states=200_000, full=True)
    if not report.deadlock or report.deadlock_trace is None:
        return None
    trail = tuple(report.deadlock_trace)
    marking = net.replay(list(trail))
    highlight: list[str] = []
    for t, missing in waiting(net, marking):
        highlight += [t, *missing]
    choices = "; ".join(choices_made(net, list(trail)))
    title = (f"{net.name}: DEADLOCK" + (f" after {choices}" if choices else "")
             + " (the path taken in bold, where it is stuck in red)")
    return Overlay(tuple(sorted(set(highlight))), marking, title, trail)
