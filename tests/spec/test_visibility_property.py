"""The visibility check (:mod:`petriflow.spec.visibility`, bitsets in one topological pass) against brute force.

Over random workflows, what each step sees equals what it waited for in
every case the route choices allow (:mod:`tests.spec._visibility_oracle`,
which enumerates the cases and shares no code with the check), and every
reference the check reports is one the oracle says may be missing, with a
path of real inputs on which the named step does not run.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petriflow.spec.model import Workflow
from petriflow.spec.visibility import problems, visible_table
from tests.simulate.test_cost_bound import loop_free
from tests.simulate.test_random_workflows import workflows
from tests.spec._visibility_oracle import seen_in_every_case

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _agrees(wf: Workflow) -> None:
    table = visible_table(wf)
    oracle = seen_in_every_case(wf)
    for sid, seen in oracle.items():
        assert table[sid] == seen, sid
    for fb, owner in wf.fallback_owner.items():  # a fallback stands in for its step: it sees what that step sees
        assert table[fb] == table[owner], fb


@SETTINGS
@given(loop_free())
def test_routes_met_at_xor_joins_and_and_fan_outs(wf: Workflow) -> None:
    _agrees(wf)


@SETTINGS
@given(workflows())
def test_layered_workflows_with_loops_maps_fallbacks_and_a_route(wf: Workflow) -> None:
    _agrees(wf)


@SETTINGS
@given(st.data())
def test_every_reported_reference_may_be_missing_and_its_path_avoids_it(data: st.DataObject) -> None:
    wf = data.draw(loop_free())
    ids = list(wf.step_ids)
    names = {sid: data.draw(st.lists(st.sampled_from([u for u in ids if u != sid] or [sid]), max_size=3))
             for sid in ids}
    wf = replace(wf, steps=tuple(replace(s, prompt=" ".join(f"{{{n}}}" for n in names[s.id]) or s.prompt)
                                 for s in wf.steps))
    oracle = seen_in_every_case(wf)
    found = {(r.step, r.missing): r for r in problems(wf)}
    for sid, seen in oracle.items():
        for n in names[sid]:
            assert ((sid, n) in found) == (n not in seen), (sid, n)
    for ref in found.values():
        if ref.missing == ref.step:
            continue  # a step naming itself (the only id drawn): its own output, never before it
        assert ref.path[-1] == ref.step and ref.missing not in ref.path
        for u, v in zip(ref.path, ref.path[1:]):  # each step is one the next waits on (or the router choosing it)
            s = wf.step(wf.root_of(v))
            assert u in (*s.after, *s.after_any, *wf.routers_of(s.id)), (u, v)
