"""Tell a firing sequence and a stuck marking in the words of the workflow.

For a workflow net every transition has an :class:`Origin`, so a witness
becomes "`classify` finishes and chooses `code`", and a stuck marking
becomes "`aggregate` waits for `general` and `search`, which can no longer
run". For a plain net (PNML) the same functions fall back to transition and
place labels.
"""

from __future__ import annotations

import numpy as np

from petriflow.net.petrinet import Marking, PetriNet, WorkflowNet

__all__ = ["choices_made", "tell_sequence", "waiting", "why_stuck"]


def tell_sequence(net: PetriNet, sequence: list[str]) -> list[str]:
    """One line per fired transition: workflow words for a workflow net, labels otherwise."""
    if isinstance(net, WorkflowNet):
        return net.tell(sequence)
    return [net.transition_labels[net.transition_index(t)] for t in sequence]


def choices_made(net: PetriNet, sequence: list[str]) -> list[str]:
    """The route and loop decisions along a sequence: "`classify` chose `code`"."""
    if not isinstance(net, WorkflowNet):
        return []
    out = []
    for t in sequence:
        o = net.origins[t]
        if o.construct == "route" and o.role == "finish":
            out.append(f"`{o.step}` chose `{o.detail}`")
        elif o.construct == "loop" and o.role == "back":
            out.append(f"`{o.step}` looped back to `{o.detail}`")
        elif o.construct == "fallback" and o.role == "give_up":
            out.append(f"`{o.step}` gave up and fell back to `{o.detail}`")
    return out


def _who(net: WorkflowNet, place: str) -> str:
    """The step a missing input token would have come from."""
    o = net.origins[place]
    if o.construct in ("dependency", "fallback") and o.detail:
        return o.detail
    if o.construct == "join":
        return "any of its inputs"
    if o.construct == "loop":
        return f"{o.detail} (looping back)"
    if o.construct == "resource":
        return f"resource {o.detail}"
    return net.place_labels[net.place_index(place)]


def waiting(net: PetriNet, marking: Marking) -> list[tuple[str, list[str]]]:
    """Transitions that hold some of their flow inputs but lack others, with the places they lack.

    Budget places (loop and retry counters) never hold a step back on their
    own and are left out; a resource counts as missing but not as a reason to
    call a transition waiting.
    """
    ignore = set(net.budgets) if isinstance(net, WorkflowNet) else set()
    shared = set(net.resources) if isinstance(net, WorkflowNet) else set()
    keep = np.array([p not in ignore for p in net.places])
    flow = np.array([p not in ignore and p not in shared for p in net.places])
    has = (marking > 0) & flow
    out = []
    for t in range(len(net.transitions)):
        need = (net.pre[t] > 0) & keep
        if not (need & has).any() or np.all(net.pre[t][need] <= marking[need]):
            continue
        missing = [net.places[p] for p in np.flatnonzero(need & (marking < net.pre[t]))]
        out.append((net.transitions[t], missing))
    return out


def why_stuck(net: PetriNet, marking: Marking) -> list[str]:
    """Sentences about what waits for what in a dead marking: one per waiting step."""
    lines: list[str] = []
    seen_steps: set[str] = set()
    for t, missing in waiting(net, marking):
        if isinstance(net, WorkflowNet):
            step = net.origins[t].step or t
            if step in seen_steps:
                continue
            seen_steps.add(step)
            names = " and ".join(f"`{_who(net, p)}`" for p in missing)
            lines.append(f"`{step}` waits for {names}, which can no longer run")
        else:
            names = ", ".join(net.place_labels[net.place_index(p)] for p in missing)
            lines.append(f"{net.transition_labels[net.transition_index(t)]} waits for a token in {names}")
    if not lines:
        lines.append(f"nothing can move in {net.describe_marking(marking)}")
    return lines
