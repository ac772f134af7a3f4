"""Tell a firing sequence and a stuck marking in the words of the workflow.

For a workflow net every transition has an :class:`Origin`, so a witness
becomes "`classify` finishes and chooses `code`", and a stuck marking
becomes "`aggregate` waits for `general` and `search`, which can no longer
run". For a plain net (PNML) the same functions fall back to transition and
place labels.

:func:`transition_words` says what each transition *is*, so that no two
transitions of a net share their words: a step re-entered by a loop has one
start per way in ("`receive` starts again from `loop_end`'s loop"), and a
line "`receive` never starts again from `loop_end`'s loop" about a dead
transition cannot be read as "`receive` never starts" while ``receive.start``
fires. Which way in a start takes is read off the net (its input places), not
off the transition's id.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from petriflow.net.petrinet import Marking, Origin, PetriNet, WorkflowNet
from petriflow.net.wiring import EntryKind

__all__ = ["Words", "choices_made", "never_lines", "tell_sequence", "transition_words", "waiting", "why_stuck"]


@dataclass(frozen=True)
class Words:
    """What a transition is, as a subject and a predicate: "`receive`" + "starts again from `loop_end`'s loop"."""

    subject: str
    predicate: str

    @property
    def happens(self) -> str:
        """The transition firing, as a witness step: "`receive` starts"."""
        return f"{self.subject} {self.predicate}"

    @property
    def never(self) -> str:
        """The transition dead: "`receive` never starts"."""
        return f"{self.subject} never {self.predicate}"


def _base_words(o: Origin, entered_by: str | None) -> Words:
    """A transition's words from its origin, and the step whose loop it re-enters from (if any)."""
    subject = f"`{o.step}`" if o.step else "the workflow"
    again = f" again from `{entered_by}`'s loop" if entered_by else ""
    if o.construct == "route" and o.role == "finish":
        return Words(subject, f"finishes and chooses `{o.detail}`")
    if o.construct == "loop" and o.role == "back":
        return Words(subject, f"loops back to `{o.detail}`")
    if o.construct == "retry":
        verb = {"fail": "fails (or times out)", "retry": "is retried"}.get(o.role, o.role)
        return Words(subject, verb)
    if o.construct == "fallback":
        return Words(subject, f"gives up and falls back to `{o.detail}`")
    if o.construct == "map":
        return Words(subject, f"{o.role} {o.detail}".strip() + again)
    if o.construct == "begin":
        return Words("the workflow", "starts")
    if o.construct == "end":
        return Words("the workflow", "ends")
    verb = {"start": "starts", "finish": "finishes"}.get(o.role, o.role)
    return Words(subject, verb + (again if o.role == "start" else ""))


def _hands_to(net: WorkflowNet, t: int) -> list[str]:
    """The steps a transition hands a token to (its flow outputs), for telling apart words that would repeat."""
    out = []
    for p in np.flatnonzero(net.post[t] > net.pre[t]):
        o = net.origins[net.places[p]]
        if o.construct in ("dependency", "join", "loop", "fallback") and o.role != "budget":
            out.append(f"`{o.step}`" if o.step else "the end")
    return sorted(set(out))


def transition_words(net: WorkflowNet) -> dict[str, Words]:
    """Every transition's words, distinct across the net.

    A start or spawn whose way in is a loop (by the net's wiring; by its
    loop-entry input place for a net without wiring) re-enters its step from
    that loop. Transitions whose words would still coincide (the
    collects of a map step with several outcomes) are told apart by the
    steps they hand over to, and, failing that, by their id.
    """
    entered = _loop_entries(net)
    words = {t: _base_words(net.origins[t], entered.get(t)) for t in net.transitions}
    for clash in _clashes(words):
        for t in clash:
            to = _hands_to(net, net.transition_index(t))
            if to:
                w = words[t]
                words[t] = Words(w.subject, f"{w.predicate} and hands over to {', '.join(to)}")
    for clash in _clashes(words):
        for t in clash:
            words[t] = Words(words[t].subject, f"{words[t].predicate} (transition `{t}`)")
    return words


def _loop_entries(net: WorkflowNet) -> dict[str, str]:
    """Each start or spawn entered by a loop, and the looping step it comes back from.

    A lowered net says so in its wiring (the start's :class:`~petriflow.net.wiring.Way`),
    which is what the planner and the simulator read too; the display words of
    ``Origin`` decide only for a net without wiring (read from PNML), where the
    loop-entry place among the transition's inputs names the looping step.
    """
    if net.wiring is not None:
        return {s.transition: s.way.via for w in net.wiring.steps.values() for s in w.starts
                if s.way.kind is EntryKind.LOOP and s.way.via is not None}
    entry = {p for p in net.places if net.origins[p].construct == "loop" and net.origins[p].role == "entry"}
    out: dict[str, str] = {}
    for i, t in enumerate(net.transitions):
        loop_in = [net.origins[net.places[p]].detail for p in np.flatnonzero(net.pre[i]) if net.places[p] in entry]
        if loop_in and loop_in[0]:
            out[t] = loop_in[0]
    return out


def _clashes(words: dict[str, Words]) -> list[list[str]]:
    """Groups of transitions that share their words."""
    by: defaultdict[Words, list[str]] = defaultdict(list)
    for t, w in words.items():
        by[w].append(t)
    return [ts for ts in by.values() if len(ts) > 1]


def tell_sequence(net: PetriNet, sequence: list[str]) -> list[str]:
    """One line per fired transition: workflow words for a workflow net, labels otherwise."""
    if isinstance(net, WorkflowNet):
        words = transition_words(net)
        return [words[t].happens for t in sequence]
    return [net.transition_labels[net.transition_index(t)] for t in sequence]


def never_lines(net: PetriNet, transitions: list[str] | tuple[str, ...]) -> list[str]:
    """One line per dead transition saying what never happens: "`receive` never starts again from ..."."""
    if isinstance(net, WorkflowNet):
        words = transition_words(net)
        return [words[t].never for t in transitions]
    return [f"{net.transition_labels[net.transition_index(t)]} never fires" for t in transitions]


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
