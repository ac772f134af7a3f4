"""``check(net) -> Report``: every property's verdict with its witness, in workflow terms.

The :class:`Report` keeps the ``check --json`` contract of the foundation
issue (keys and meanings stable; new keys only added) and renders the
verdict table and numbered witnesses that ``petriflow check`` prints.

A verdict is True, False, or None when it is not known; a None always comes
with a reason from :data:`REASONS` (``report.unknown_reasons``, and
``<verdict>_unknown`` in the JSON), so that a pipeline gating on
``deadlock == false`` never passes a net that was not verified.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from petriflow.errors import NetError
from petriflow.net.petrinet import PetriNet, WorkflowNet
from petriflow.verify import properties as props
from petriflow.verify.explain import choices_made, never_lines, tell_sequence, why_stuck
from petriflow.verify.statespace import StateSpace, explore, explore_small

if TYPE_CHECKING:
    from petriflow.net.reduce import Reduction

__all__ = ["PROPERTIES", "Report", "Witness", "check"]

PROPERTIES = ("deadlock", "bounded", "sound", "live")
DEFAULT_MAX_STATES = 5_000_000
REDUCE_FROM = 64
"""Workflow nets with at least this many transitions (or a budget of this many tokens) are reduced structurally before they are explored
(``check(reduce=None)``); smaller ones answer in milliseconds as they are, and keep their exact state count."""

VERDICTS = ("deadlock", "bounded", "safe", "sound", "live")
"""The JSON keys that carry a verdict: each is true, false or null (not known), never a guess."""

REASONS = {
    "not_checked": "not asked for (--property)",
    "not_a_workflow_net": "soundness is defined for workflow nets only (one source, one sink)",
    "max_states": "the search stopped at --max-states before it could decide",
    "max_bytes": "the search stopped at the memory budget (--max-memory; default half the RAM) before it could decide",
    "coverability_budget": "the state space was too big, and the coverability set ran out of nodes (--max-states)",
    "structural_bound": "bounded by the net's structure (place invariants), which does not give the exact bound",
    "reduced_bound": "bounded, checked on the structurally reduced net, which does not give the exact bound",
}
"""Why a verdict is null: the codes of ``<verdict>_unknown`` (stable; new codes may be added)."""


@dataclass(frozen=True)
class Witness:
    """Why a property fails: a firing sequence, where it ends, and the same told as steps."""

    property: str
    summary: str
    trace: tuple[str, ...] = ()
    told: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    marking: dict[str, int] = field(default_factory=dict)
    stuck: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"property": self.property, "summary": self.summary, "trace": list(self.trace),
                "told": list(self.told), "choices": list(self.choices), "marking": self.marking,
                "stuck": list(self.stuck)}


@dataclass(frozen=True)
class Report:
    """Verdicts (None: not checked or not known), the witnesses, and the search's size."""

    net: PetriNet
    checked: tuple[str, ...]
    complete: bool
    stop_reason: str | None
    states: int | None
    edges: int | None
    dead_markings: int | None
    deadlock: bool | None
    deadlock_trace: tuple[str, ...] | None
    bounded: bool | None
    bound: int | None
    safe: bool | None
    sound: bool | None
    dead_transitions: tuple[str, ...] | None
    live: bool | None
    seconds: float
    states_explored: int
    witnesses: tuple[Witness, ...] = ()
    states_reduced: int | None = None
    unknown_reasons: Mapping[str, str] = field(default_factory=dict)
    reduced_net: tuple[int, int] | None = None
    """(places, transitions) of the structurally reduced net that was explored, when one was."""

    def verdicts(self) -> dict[str, bool | None]:
        """The five verdicts by JSON key; ``deadlock`` is True when a deadlock is reachable."""
        return {"deadlock": self.deadlock, "bounded": self.bounded, "safe": self.safe, "sound": self.sound,
                "live": self.live}

    def why_unknown(self, key: str) -> str | None:
        """The :data:`REASONS` code of a null verdict (None when the verdict is known)."""
        if self.verdicts()[key] is not None:
            return None
        return self.unknown_reasons.get(key, "not_checked")

    @property
    def is_workflow(self) -> bool:
        return isinstance(self.net, WorkflowNet)

    def failed(self) -> list[str]:
        """The checked properties that do not hold."""
        verdicts = {"deadlock": None if self.deadlock is None else not self.deadlock, "bounded": self.bounded,
                    "sound": self.sound, "live": self.live}
        return [p for p in self.checked if verdicts.get(p) is False]

    def unknown(self) -> list[str]:
        """The checked properties a budget left undecided."""
        verdicts = {"deadlock": self.deadlock, "bounded": self.bounded, "sound": self.sound, "live": self.live}
        return [p for p in self.checked if verdicts.get(p) is None]

    @property
    def exit_code(self) -> int:
        """0 every check holds, 1 a property fails, 3 a budget left one undecided."""
        if self.failed():
            return 1
        return 3 if self.unknown() else 0

    def to_json(self) -> dict[str, Any]:
        """The ``check --json`` document."""
        return {
            "net": {"name": self.net.name, "places": len(self.net.places),
                    "transitions": len(self.net.transitions), "arcs": self.net.arc_count},
            "states": self.states, "edges": self.edges, "dead_markings": self.dead_markings,
            "deadlock": self.deadlock, "deadlock_unknown": self.why_unknown("deadlock"),
            "deadlock_known": self.deadlock is not None,
            "deadlock_trace": list(self.deadlock_trace) if self.deadlock_trace is not None else None,
            "bounded": self.bounded, "bounded_unknown": self.why_unknown("bounded"), "bound": self.bound,
            "safe": self.safe, "safe_unknown": self.why_unknown("safe"),
            "sound": self.sound, "sound_unknown": self.why_unknown("sound"),
            "dead_transitions": list(self.dead_transitions) if self.dead_transitions is not None else None,
            "live": self.live, "live_unknown": self.why_unknown("live"), "seconds": round(self.seconds, 6),
            "complete": self.complete, "stop_reason": self.stop_reason,
            "states_explored": self.states_explored, "states_reduced": self.states_reduced,
            "checked": list(self.checked),
            "reduced_net": (None if self.reduced_net is None
                            else {"places": self.reduced_net[0], "transitions": self.reduced_net[1]}),
            "witnesses": [w.to_json() for w in self.witnesses],
        }

    def explain(self) -> str:
        """The verdict table and every witness as numbered steps, for a person."""
        def verdict(key: str, good: str, bad: str, *, holds: bool | None) -> str:
            if holds is None:
                return f"unknown: {REASONS[self.why_unknown(key) or 'not_checked']}"
            return good if holds else bad

        rows = []
        if "deadlock" in self.checked:
            free = None if self.deadlock is None else not self.deadlock
            rows.append(("deadlock-free", verdict("deadlock", "yes", "NO", holds=free)))
        if "bounded" in self.checked:
            extra = ""
            if self.bounded:
                how = "on the reduced net" if self.reduced_net is not None else "structurally"
                extra = (f" (bound not computed: proved {how})" if self.bound is None
                         else f" ({'safe' if self.safe else f'{self.bound}-bounded'})")
            rows.append(("bounded", verdict("bounded", "yes", "NO", holds=self.bounded) + extra))
        if "sound" in self.checked and self.is_workflow:
            rows.append(("sound", verdict("sound", "yes", "NO", holds=self.sound)))
        if "live" in self.checked:
            rows.append(("live", verdict("live", "yes", "NO", holds=self.live)))
        if self.reduced_net is not None and self.complete and self.states_reduced is not None:
            size = (f"reduced to {self.reduced_net[0]} places, {self.reduced_net[1]} transitions: "
                    f"{self.states_reduced:,} states")
        elif self.states is not None:
            size = f"{self.states:,} states" + (f", {self.edges:,} edges" if self.edges is not None else "")
        elif self.states_reduced is not None and self.complete:
            size = f"{self.states_reduced:,} states in the reduced (stubborn-set) search"
        else:
            size = f"{self.states_explored:,} states explored, search stopped ({self.stop_reason})"
        lines = [f"{self.net.name}: {len(self.net.places)} places, {len(self.net.transitions)} transitions; "
                 f"{size}; {self.seconds:.2f}s"]
        width = max(len(r[0]) for r in rows) if rows else 0
        lines += [f"  {name.ljust(width)}  {value}" for name, value in rows]
        if not self.complete and not self.failed():
            lines.append(f"  so far: {self.states_explored:,} states explored, no violation found")
        for w in self.witnesses:
            lines.append("")
            lines.append(f"{w.property}: {w.summary}")
            for i, (t, told) in enumerate(zip(w.trace, w.told), 1):
                lines.append(f"  {i:>3}. {told}" + (f"  [{t}]" if told != t else ""))
            if w.choices:
                lines.append("  choices: " + "; ".join(w.choices))
            for s in w.stuck:
                lines.append(f"  -> {s}")
            if w.marking:
                lines.append("  marking: " + ", ".join(f"{p}={n}" for p, n in w.marking.items()))
        return "\n".join(lines)


def _marking_dict(net: PetriNet, m: np.ndarray) -> dict[str, int]:
    return {net.place_labels[i]: int(m[i]) for i in np.flatnonzero(m)}


def _witness(net: PetriNet, space: StateSpace, prop: str, summary: str, state: int, *, stuck: bool) -> Witness:
    trace = space.path_to(state)
    m = space.marking(state)
    return Witness(
        property=prop, summary=summary, trace=tuple(trace), told=tuple(tell_sequence(net, trace)),
        choices=tuple(choices_made(net, trace)), marking=_marking_dict(net, m),
        stuck=tuple(why_stuck(net, m)) if stuck else (),
    )


def check(
    net: PetriNet,
    *,
    properties: tuple[str, ...] = PROPERTIES,
    max_states: int | None = DEFAULT_MAX_STATES,
    max_bytes: int | None = None,
    full: bool = False,
    progress: bool = False,
    reduce: bool | None = None,
) -> Report:
    """Explore ``net`` and decide ``properties`` (a subset of :data:`PROPERTIES`).

    A workflow net of :data:`REDUCE_FROM` transitions or more (or any net,
    with ``reduce=True``) is first reduced by the rules of
    :mod:`petriflow.net.reduce`, which keep every verdict; its witnesses are
    expanded back to firing sequences of ``net``. A deadlock check alone runs
    on a stubborn-set reduced state space unless ``full`` asks for every
    marking (``full`` also turns the structural reduction off by default). A budget that stops the search leaves
    undecided verdicts as None, each with its reason in
    ``Report.unknown_reasons``; what was found before it (a reachable
    deadlock, an unbounded place) still counts, with what follows from it
    (a deadlocking or unbounded workflow net is not sound).
    """
    t0 = time.perf_counter()
    is_wf = isinstance(net, WorkflowNet)
    checked = tuple(p for p in PROPERTIES if p in properties and (p != "sound" or is_wf))
    need_edges = any(p in checked for p in ("sound", "live"))
    probe: StateSpace | None = None
    if reduce is None and net.is_sparse and not full:  # too big to hold densely: only its reduced net is built so
        reduce = True
    if reduce is None:  # reduce a workflow net unless it is small enough to answer exactly, as it is, at once
        reduce = False
        if is_wf and not full:
            big = len(net.transitions) >= REDUCE_FROM or int(net.initial.max(initial=0)) >= REDUCE_FROM
            if not big and checked != ("deadlock",):
                probe = explore_small(net, max_states=max_states, store_edges=need_edges)
            reduce = big or (checked != ("deadlock",) and probe is None)
    if net.is_sparse and not reduce:
        raise NetError(f"net '{net.name}' ({len(net.transitions)} transitions, {len(net.places)} places) is too big "
                       "to explore without reducing it first", where=net.name,
                       hint="check it without --full (and without reduce=False): the structural reductions run first")
    if reduce:
        from petriflow.net.reduce import reduce_net

        red = reduce_net(net)  # a sparse net comes back dense, or as a NetError saying it stays too big
        if red.changed or net.is_sparse:
            inner = check(red.net, properties=properties, max_states=max_states, max_bytes=max_bytes, full=full,
                          progress=progress, reduce=False)
            return _lift(red, inner, time.perf_counter() - t0)
    if checked == ("deadlock",) and not full:
        return _reduced_deadlock(net, max_states=max_states, max_bytes=max_bytes, t0=t0)
    space = probe or explore(net, max_states=max_states, max_bytes=max_bytes, store_edges=need_edges,
                             progress=progress)
    complete = space.complete
    stop = space.stop_reason or "max_states"
    reasons: dict[str, str] = {}
    witnesses: list[Witness] = []

    dl_states = props.deadlock_states(space)
    deadlock: bool | None = bool(dl_states.size) if (complete or dl_states.size) else None
    dl_trace = None
    states_reduced = None
    if deadlock is None:
        reasons["deadlock"] = stop if "deadlock" in checked else "not_checked"
        if "deadlock" in checked and not full:  # the full space was too big: the reduced search may still decide
            reduced = _reduced_deadlock(net, max_states=max_states, max_bytes=max_bytes, t0=t0)
            states_reduced = reduced.states_reduced
            if reduced.deadlock is not None:
                witnesses.extend(reduced.witnesses)
                deadlock, dl_trace = reduced.deadlock, reduced.deadlock_trace
            else:
                reasons["deadlock"] = reduced.unknown_reasons["deadlock"]
    if dl_states.size:
        dl_trace = tuple(props.shortest_path_to_any(space, dl_states) or ())
        first = int(dl_states.min())
        if "deadlock" in checked:
            what = "a reachable marking where nothing can happen" + (" and the workflow has not finished" if is_wf else "")
            witnesses.append(_witness(net, space, "deadlock", what, first, stuck=True))

    bounded = True if complete else None
    bound = space.max_tokens_per_place() if complete else None
    safe = (bound <= 1) if bound is not None else None
    if not complete and any(p in checked for p in ("bounded", "sound")):
        seen = space.max_tokens_per_place()
        bounded, bound, pumping, why = _boundedness(net, seen=seen, max_nodes=max_states, progress=progress)
        if pumping is not None:
            witnesses.append(pumping)
        safe = False if bounded is False or seen > 1 else (bound <= 1 if bound is not None else None)
        if bounded is None:
            reasons["bounded"] = why or stop
        if safe is None:
            reasons["safe"] = why or stop
    elif not complete:
        reasons["bounded"] = reasons["safe"] = "not_checked"

    dead_ts: tuple[str, ...] | None = None
    live: bool | None = None
    sound: bool | None = None
    if complete and need_edges:
        dead_ts = tuple(props.dead_transitions(space))
        if "live" in checked:
            live = not props.non_live_transitions(space, short_circuit=is_wf)
        if isinstance(net, WorkflowNet) and "sound" in checked:
            sound = _soundness(net, space, dead_ts, witnesses)
    if "live" in checked and deadlock and len(net.transitions):
        live = False  # a reachable non-final dead marking: nothing can fire again from there
    if is_wf and "sound" in checked and (bounded is False or deadlock):
        sound = False  # a deadlock, or tokens that pile up without end: the sink is not always reached cleanly
    for key, value in (("sound", sound), ("live", live)):
        if value is None:
            reasons[key] = stop if key in checked else ("not_a_workflow_net" if key == "sound" and not is_wf
                                                        else "not_checked")

    return Report(
        net=net, checked=checked, complete=complete, stop_reason=space.stop_reason,
        states=space.n_states if complete else None, edges=space.n_edges if complete and need_edges else None,
        dead_markings=int(space.dead_states().size) if complete else None,
        deadlock=deadlock, deadlock_trace=dl_trace, bounded=bounded, bound=bound, safe=safe,
        sound=sound, dead_transitions=dead_ts, live=live, seconds=time.perf_counter() - t0,
        states_explored=space.n_states, witnesses=tuple(witnesses), states_reduced=states_reduced,
        unknown_reasons=reasons,
    )


def _boundedness(net: PetriNet, *, seen: int, max_nodes: int | None,
                 progress: bool) -> tuple[bool | None, int | None, Witness | None, str | None]:
    """Boundedness when the state space was too big to finish: structure first, then coverability.

    A structurally bounded net (a linear program) is bounded; its place
    invariants give an upper bound, which is exact when the explored part
    already reached it (``seen``). Otherwise a minimal coverability set
    decides, with a pumping witness told as steps when the net is unbounded.
    Returns (bounded, bound, witness, why the bound is unknown: a
    :data:`REASONS` code or None).
    """
    from petriflow.errors import BudgetExceeded
    from petriflow.verify.coverability import coverability
    from petriflow.verify.structural import (
        bounds_from_invariants,
        is_structurally_bounded,
    )

    if is_structurally_bounded(net):
        upper = bounds_from_invariants(net, max_rows=500)
        exact = upper is not None and int(upper.max()) == seen
        return True, (seen if exact else None), None, (None if exact else "structural_bound")
    try:
        cov = coverability(net, max_nodes=max_nodes or 1_000_000, stop_at_unbounded=True, progress=progress)
    except BudgetExceeded:
        return None, None, None, "coverability_budget"
    if cov.bounded:
        return True, cov.k_bound(), None, None
    w = cov.witness
    if w is None:
        return False, None, None, None
    trace = [*w.prefix, *w.pump]
    told = tell_sequence(net, trace)
    first = len(w.prefix) + 1
    grows = ", ".join(w.places)
    summary = (f"unbounded: steps {first}..{len(trace)} can repeat without end, each time adding tokens to {grows}"
               if len(w.pump) > 1 else f"unbounded: step {first} can repeat without end, each time adding tokens to {grows}")
    witness = Witness(property="bounded", summary=summary, trace=tuple(trace), told=tuple(told),
                      choices=tuple(choices_made(net, trace)), marking=_marking_dict(net, w.end),
                      stuck=(f"repeat: {' -> '.join(told[len(w.prefix):])}",))
    return False, None, witness, None


def _reduced_deadlock(net: PetriNet, *, max_states: int | None, max_bytes: int | None, t0: float) -> Report:
    """The deadlock verdict from the stubborn-set search: ``states`` stays None, ``states_reduced`` counts."""
    from petriflow.verify.reduced import find_deadlock

    res = find_deadlock(net, max_states=max_states, max_bytes=max_bytes,
                        final_check=net.is_final if net.final is not None else None)
    witnesses: tuple[Witness, ...] = ()
    if res.deadlock and res.trace is not None and res.marking is not None:
        what = "a reachable marking where nothing can happen" + (
            " and the workflow has not finished" if isinstance(net, WorkflowNet) else "")
        witnesses = (Witness(property="deadlock", summary=what + " (found by the reduced search; not always the shortest)",
                             trace=tuple(res.trace), told=tuple(tell_sequence(net, res.trace)),
                             choices=tuple(choices_made(net, res.trace)), marking=_marking_dict(net, res.marking),
                             stuck=tuple(why_stuck(net, res.marking))),)
    reasons = {k: "not_checked" for k in VERDICTS if k != "deadlock"}
    if not isinstance(net, WorkflowNet):
        reasons["sound"] = "not_a_workflow_net"
    if not res.complete:
        reasons["deadlock"] = res.stop_reason or "max_states"
    return Report(
        net=net, checked=("deadlock",), complete=res.complete, stop_reason=res.stop_reason, states=None, edges=None,
        dead_markings=None, deadlock=res.deadlock if res.complete else None,
        deadlock_trace=tuple(res.trace) if res.trace is not None else None, bounded=None, bound=None, safe=None,
        sound=None, dead_transitions=None, live=None, seconds=time.perf_counter() - t0,
        states_explored=res.states_visited, witnesses=witnesses, states_reduced=res.states_visited,
        unknown_reasons=reasons,
    )


def _soundness(net: WorkflowNet, space: StateSpace, dead_ts: tuple[str, ...], witnesses: list[Witness]) -> bool:
    """Option to complete, proper completion, no dead transitions; a witness for each failure."""
    sound = True
    stuck = props.cannot_complete(space)
    if stuck.size:
        sound = False
        dead = np.intersect1d(stuck, space.dead_states())
        if dead.size and any(w.property == "deadlock" for w in witnesses):  # its witness already shows it
            witnesses.append(Witness(property="sound", summary="option to complete fails: a reachable deadlock "
                                     "(the witness above) leaves the workflow unable to finish"))
        elif dead.size:
            witnesses.append(_witness(net, space, "sound", "option to complete fails: the workflow gets stuck here",
                                      int(dead.min()), stuck=True))
        else:  # a livelock: the case runs on forever without reaching the sink
            witnesses.append(_witness(net, space, "sound", "option to complete fails: from here the workflow "
                                      "can never finish", int(stuck.max()), stuck=False))
    improper = props.improper_completions(space, net.sink)
    if improper.size:
        sound = False
        witnesses.append(_witness(net, space, "sound", "improper completion: the workflow finished with work left over",
                                  int(improper.min()), stuck=False))
    if dead_ts:
        sound = False
        witnesses.append(Witness(property="sound", summary="dead transitions: no run ever gets to "
                                 + ", ".join(dead_ts), stuck=tuple(never_lines(net, dead_ts))))
    return sound


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


def _lift(red: Reduction, inner: Report, seconds: float) -> Report:
    """The report of the reduced net ``red.net`` told about ``red.original``.

    Each witness's firing sequence is expanded and replayed on the original net (its marking and words are
    that replay's), dead transitions are mapped back, and the bound is kept only where the reduction kept it.
    """
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
