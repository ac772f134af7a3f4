"""Loop and route probabilities conditional on the route branch that led to the step.

A review step loops back more often after the ``code`` branch than after
``general``; drawn from one pooled probability, the simulator mixes the
two and gets both branches' latency wrong. So a loop or a route may carry,
next to its unconditional figure, one per *condition*: the label of a
route branch taken earlier on the case's path, written ``ROUTER=LABEL``::

    loops:
      review: {p: 0.3, given: {classify=code: 0.6, classify=general: 0.1}}
    routes:
      check: {ok: 0.8, redo: 0.2, given: {classify=code: {ok: 0.5, redo: 0.5}}}

The simulator uses the first condition (in the file's order) whose branch
is the latest one its router took on the token's path, else the
unconditional figure; a profile without ``given`` draws as before. Keying
by route labels (not by step ids) means any construct that is reached
through a labelled route branch can be conditioned the same way.
``given`` is therefore reserved: no route branch may be labelled so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petriflow.errors import ProfileError
from petriflow.spec.model import Workflow

__all__ = ["GIVEN", "check_given", "parse_key", "split_key"]

GIVEN = "given"


def split_key(key: str) -> tuple[str, str]:
    """``"router=label"`` as ``(router, label)``."""
    router, _, label = key.partition("=")
    return router, label


def parse_key(key: Any, where: str) -> str:
    """A condition key ``ROUTER=LABEL``, checked for shape (the names are checked against a workflow later)."""
    text = str(key)
    router, sep, label = text.partition("=")
    if not sep or not router or not label:
        raise ProfileError(f"a condition is ROUTER=LABEL (a route branch taken earlier), got {text!r}", where=where,
                           hint="e.g. given: {classify=code: 0.6}")
    return text


def check_given(wf: Workflow, keys: Mapping[str, Any], where: str) -> None:
    """Every condition names a routing step of ``wf`` and one of its branch labels."""
    for key in keys:
        router, label = split_key(key)
        if router not in wf.step_ids or not wf.step(router).route:
            raise ProfileError(f"condition '{key}' names '{router}', which is not a routing step", where=where,
                               hint="conditions are ROUTER=LABEL of a step with `route:`")
        labels = [b.when for b in wf.step(router).route]
        if label not in labels:
            raise ProfileError(f"condition '{key}': '{router}' has no branch '{label}'", where=where,
                               hint=f"branches of '{router}': {', '.join(labels)}")
