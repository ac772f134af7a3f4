"""Fit loop and route probabilities conditional on the route branch that led to the step.

Each case's records are put in order of start time; a route decision is an
``ok`` record of a routing step (or of a fallback standing in for one,
``Workflow.root_of``) with its branch label. A loop step's pass, or a
routing step's decision, is conditioned on the latest decision of another
router before it, written ``ROUTER=LABEL`` (:mod:`petriflow.profile.given`).
Only the router that most often comes last before the step is used, so
that, as in the simulator, at most one condition applies to a pass. A
condition is written only when at least two branches of that router were
seen: with one, it is the unconditional figure again.

A loop pass ``i`` of ``n`` in a case went back when ``i < n``, and counts as
a chance only while the budget lasted (``i <= bound``), as in the
unconditional estimate of :func:`petriflow.profile.fit._loop_counts`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from petriflow.spec.model import Workflow

__all__ = ["conditional_loops", "conditional_routes"]

Decision = tuple[str, str]  # (router, label)


def _by_case(records: Iterable[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    cases: dict[tuple[Any, Any], list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        cases[(r["run_id"], r["case"])].append(r)
    return [sorted(recs, key=lambda r: (r["start"], r["end"])) for recs in cases.values()]


def _decision(wf: Workflow, r: Mapping[str, Any]) -> Decision | None:
    if r["outcome"] != "ok" or r["branch"] is None or r["step"] not in wf.step_ids:
        return None
    owner = wf.root_of(r["step"])
    labels = {b.when for b in wf.step(owner).route}
    return (owner, str(r["branch"])) if r["branch"] in labels else None


def _walk(wf: Workflow, recs: list[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], list[Decision]]]:
    """Each record with the route decisions taken before it in its case, oldest first."""
    out: list[tuple[Mapping[str, Any], list[Decision]]] = []
    seen: list[Decision] = []
    for r in recs:
        out.append((r, list(seen)))
        d = _decision(wf, r)
        if d is not None:
            seen.append(d)
    return out


def _latest(before: list[Decision], own: str) -> Decision | None:
    return next((d for d in reversed(before) if d[0] != own), None)


def _leading(observed: list[tuple[Decision, Any]]) -> list[tuple[str, Any]]:
    """Keep the observations of the router seen most often; keyed ``ROUTER=LABEL``. Empty if < 2 labels."""
    routers = Counter(d[0] for d, _ in observed)
    if not routers:
        return []
    lead = min(routers, key=lambda r: (-routers[r], r))
    kept = [(f"{d[0]}={d[1]}", x) for d, x in observed if d[0] == lead]
    return kept if len({k for k, _ in kept}) >= 2 else []


def conditional_loops(records: Iterable[Mapping[str, Any]], wf: Workflow) -> dict[str, dict[str, float]]:
    """Loop step -> ``ROUTER=LABEL`` -> chance to go back, from passes after that branch."""
    cases = _by_case(records)
    out: dict[str, dict[str, float]] = {}
    for step in wf.steps:
        if step.loop is None:
            continue
        observed: list[tuple[Decision, bool]] = []
        for recs in cases:
            passes = [(r, before) for r, before in _walk(wf, recs) if r["step"] == step.id and r["outcome"] == "ok"]
            for i, (_, before) in enumerate(passes[:step.loop.max], 1):
                d = _latest(before, step.id)
                if d is not None:
                    observed.append((d, i < len(passes)))
        kept = _leading(observed)
        if kept:
            chances, backs = Counter(k for k, _ in kept), Counter(k for k, back in kept if back)
            out[step.id] = {k: backs[k] / chances[k] for k in sorted(chances)}
    return out


def conditional_routes(records: Iterable[Mapping[str, Any]],
                       wf: Workflow) -> dict[str, dict[str, dict[str, float]]]:
    """Routing step -> ``ROUTER=LABEL`` -> branch -> probability, from its decisions after that branch."""
    observed: dict[str, list[tuple[Decision, str]]] = defaultdict(list)
    for recs in _by_case(records):
        for r, before in _walk(wf, recs):
            d = _decision(wf, r)
            if d is not None:
                prior = _latest(before, d[0])
                if prior is not None:
                    observed[d[0]].append((prior, d[1]))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for sid, obs in observed.items():
        kept = _leading(obs)
        if kept:
            labels = [b.when for b in wf.step(sid).route]
            counts: dict[str, Counter[str]] = defaultdict(Counter)
            for key, label in kept:
                counts[key][label] += 1
            out[sid] = {k: {b: c[b] / sum(c.values()) for b in labels} for k, c in sorted(counts.items())}
    return out
