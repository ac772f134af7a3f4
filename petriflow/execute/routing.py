"""Which branch an output takes, and whether it asks for another loop pass: the executor's reading of ``when``.

A route's branches test the output in one of three ways
(:class:`~petriflow.spec.model.Branch`): a bare label the output names
(:func:`~petriflow.execute.tools.label_of`), an expression of
:mod:`petriflow.spec.conditions`, or ``else``. Exactly one test must hold;
the loader has refused routes where two can hold at once wherever that is
decidable, and here, at run time, two true tests (or none without an
``else``) fail the step with the branches named. The simulator draws the
branch from its ``p`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petriflow.errors import StepFailed
from petriflow.execute.tools import label_of, wants_loop
from petriflow.spec import conditions
from petriflow.spec.model import Step

__all__ = ["choose_branch", "loops_again"]


def _holds(step: Step, text: str, output: Any, case: Mapping[str, Any], loop_pass: int) -> bool:
    try:
        return conditions.evaluate(conditions.parse(text), output=output, case=case, loop_pass=loop_pass)
    except ValueError as exc:
        raise StepFailed(f"the condition `{text}` cannot be evaluated on output {str(output)[:80]!r}: {exc}",
                         where=f"step '{step.id}'",
                         hint="make the step's output carry the fields the condition reads (an output_schema "
                              "helps), or change the condition") from None


def choose_branch(step: Step, output: Any, *, case: Mapping[str, Any], loop_pass: int) -> str | None:
    """The label of the one branch whose test holds for ``output``; :class:`StepFailed` if two or none do.

    ``None`` when the route has only bare labels and the output names none of
    them: the caller reports that as it always has.
    """
    words = {b.match: b.when for b in step.route if b.match is not None}
    hits: list[str] = []
    if words:
        named = label_of(output, tuple(words), step.config)
        if named is not None:
            hits.append(words[named])
    hits += [b.when for b in step.route
             if b.condition is not None and _holds(step, b.condition, output, case, loop_pass)]
    if len(hits) > 1:
        raise StepFailed(f"branches {', '.join(repr(h) for h in hits)} all hold for output {str(output)[:80]!r}; "
                         "a route takes exactly one", where=f"step '{step.id}'",
                         hint="make the branch conditions exclusive, or the output unambiguous")
    if hits:
        return hits[0]
    default = next((b.when for b in step.route if b.default), None)
    if default is not None:
        return default
    if any(b.condition is not None for b in step.route):
        raise StepFailed(f"no branch of {[b.when for b in step.route]} holds for output {str(output)[:80]!r}",
                         where=f"step '{step.id}'", hint="add a default branch `{when: else, to: STEP, p: P}`")
    return None


def loops_again(step: Step, output: Any, *, case: Mapping[str, Any], loop_pass: int) -> bool:
    """Whether the output asks for another pass: its loop's expression holds, or it names the loop's label."""
    assert step.loop is not None
    cond = step.loop.condition
    if cond is not None:
        return _holds(step, cond, output, case, loop_pass)
    return wants_loop(output, step.loop.when, step.config)
