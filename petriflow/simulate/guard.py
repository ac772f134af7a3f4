"""What ``simulate`` checks before it runs: a net that can deadlock, and model steps nobody priced.

A simulation of a net that can deadlock predicts nothing about the
workflow a person meant: the cases that strand are left out of every
figure, so the latency and cost it prints describe only the lucky cases
(or none at all). ``simulate`` therefore asks the checker first, as
``plan()`` does before a run, and refuses with the checker's own witness
told in steps (:meth:`petriflow.verify.report.Report.explain`), unless the
caller says to go on.

A model step whose cost resolves to $0 (no ``tokens`` annotation, no
per-call price) usually means a missing annotation, not a free call; the
cost figures would be silently low. :func:`unpriced_steps` names them so
the result can say so.
"""

from __future__ import annotations

from petriflow.errors import UnsoundWorkflowError
from petriflow.net.petrinet import WorkflowNet
from petriflow.profile.model import ModelProfile, Profile
from petriflow.spec.model import Workflow

__all__ = ["MODEL_KINDS", "refuse_deadlock", "unpriced_steps"]

MODEL_KINDS = ("chat", "classify", "embed")
"""Step kinds that call a model and so are paid for by tokens or per call."""


def refuse_deadlock(net: WorkflowNet) -> None:
    """Raise :class:`~petriflow.errors.UnsoundWorkflowError` (exit 1) when ``net`` can deadlock.

    Only the deadlock verdict is asked for (the stubborn-set reduced search
    of :func:`petriflow.verify.report.check`), which is what strands
    simulated cases; a budget that leaves it undecided lets the run go on.
    """
    from petriflow.verify.report import check

    report = check(net, properties=("deadlock",))
    if report.deadlock:
        raise UnsoundWorkflowError(
            f"workflow '{net.name}' can deadlock; its stranded cases would be left out of every figure, "
            f"so refusing to simulate it\n{report.explain()}",
            where=net.name,
            hint="fix the workflow so that `petriflow check` says deadlock-free, "
                 "or pass --allow-unsound (allow_unsound=True) to simulate it anyway",
        )


def unpriced_steps(wf: Workflow, profile: Profile) -> dict[str, str]:
    """Model steps whose expected cost per call is $0, each with the reason (what annotation is missing)."""
    out: dict[str, str] = {}
    for s in wf.steps:
        if s.kind not in MODEL_KINDS or profile.cost_per_call(s.id) > 0:
            continue
        sp = profile.step(s.id)
        prices = profile.models.get(sp.model or "")
        if sp.input_tokens is None and sp.output_tokens is None:
            why = "no tokens annotation"
        elif sp.model is None:
            why = "no model"
        elif prices is None or prices == ModelProfile():
            why = f"model '{sp.model}' has no prices"
        else:
            why = "its tokens times its prices come to $0"
        out[s.id] = why
    return out
