"""What a step sees, by brute force: every case the route choices allow, run by the workflow's enabling rules.

The independent oracle for :mod:`petriflow.spec.visibility` (it shares no
code with it): try every combination of route branches, let each step run
whose ``after`` inputs all ran, one of whose ``after_any`` inputs ran, and
whose router chose it; a step then sees the steps whose finish it waited
for, directly or not, in that case. What it sees for certain is the
intersection over every case in which it runs. Exponential in the routers
(the product of their branch counts): for small workflows, and for the
naive column of ``analysis/bench/bench_scale_checks.py``.
"""

from __future__ import annotations

import itertools

from petriflow.spec.model import Workflow

__all__ = ["runs", "seen_in_every_case"]


def runs(wf: Workflow) -> list[list[str]]:
    """Every case the route choices allow, as the main steps that run (fallbacks and failure handlers never)."""
    extra = set(wf.fallback_owner) | wf.failure_handlers
    routers = [s for s in wf.steps if s.route]
    routed: dict[str, list[str]] = {}
    for r in routers:
        for b in r.route:
            routed.setdefault(b.to, []).append(r.id)
    out = []
    for choice in itertools.product(*[[b.to for b in r.route] for r in routers]):
        chosen = dict(zip([r.id for r in routers], choice, strict=True))
        ran: list[str] = []
        grew = True
        while grew:  # until no step can start: a fixed point, whatever the file order
            grew = False
            for s in wf.steps:
                if s.id in ran or s.id in extra:
                    continue
                ok = all(a in ran for a in s.after) and (not s.after_any or any(a in ran for a in s.after_any))
                ok = ok and all(r in ran and chosen[r] == s.id for r in routed.get(s.id, ()))
                if ok:
                    ran.append(s.id)
                    grew = True
        out.append(ran)
    return out


def seen_in_every_case(wf: Workflow) -> dict[str, frozenset[str]]:
    """Per main step that runs in some case: the steps it waited for in every case in which it runs."""
    routed: dict[str, list[str]] = {}
    for r in wf.steps:
        for b in r.route:
            routed.setdefault(b.to, []).append(r.id)
    seen: dict[str, frozenset[str]] = {}
    for run in runs(wf):
        ran = set(run)
        past: dict[str, frozenset[str]] = {}
        for sid in run:  # in the order they could start: a step's inputs come before it
            s = wf.step(sid)
            direct = [u for u in (*s.after, *s.after_any, *routed.get(sid, ())) if u in ran]
            past[sid] = frozenset(direct).union(*(past[u] for u in direct))
            seen[sid] = seen[sid] & past[sid] if sid in seen else past[sid]
    return seen
