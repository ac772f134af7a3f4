"""A report's words are true: no "never" line names something that happens in a reachable run.

The "never" lines of a dead-transitions witness and the numbered steps of
a witness come from the same words (``explain.transition_words``); these
tests read only what the report prints and what the state space fires.
"""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from petriflow.errors import SpecError
from petriflow.net.lower import lower
from petriflow.net.petrinet import WorkflowNet
from petriflow.spec import WorkflowBuilder
from petriflow.spec.model import Workflow
from petriflow.verify.explain import tell_sequence
from petriflow.verify.report import Report, check
from petriflow.verify.statespace import explore


def loop_over_a_deadlocking_join() -> Workflow:
    """The issue's workflow: `loop_end` loops back to `receive`; the AND-join `join` after a route deadlocks."""
    return (WorkflowBuilder("loop_join")
            .step("receive", kind="tool")
            .step("route", kind="classify", after=["receive"], route={"a": 0.5, "b": 0.5})
            .step("a", kind="tool").step("b", kind="tool")
            .step("join", kind="python", after=["a", "b"])
            .step("loop_end", kind="python", after=["join"], loop={"to": "receive", "max": 2})
            .build())


def never_lines(report: Report) -> list[str]:
    """What the report says never happens, one line per dead transition."""
    return [line for w in report.witnesses for line in w.stuck if line.startswith("never") or " never " in line]


def positive(line: str) -> str:
    """The statement a "never" line denies: "`x` never starts" -> "`x` starts" (also the older "never: ...")."""
    return line.removeprefix("never: ") if line.startswith("never: ") else line.replace(" never ", " ", 1)


def fired_words(net: WorkflowNet) -> set[str]:
    """The witness words of every transition that fires in some reachable run."""
    _, trans, _ = explore(net, store_edges=True).edges()
    return {tell_sequence(net, [net.transitions[int(t)]])[0] for t in set(trans.tolist())}


def test_a_loop_re_entry_that_never_happens_is_not_the_step_that_starts() -> None:
    net = lower(loop_over_a_deadlocking_join())
    report = check(net)
    assert report.deadlock is True and report.dead_transitions is not None
    assert "receive.start_loop.loop_end" in report.dead_transitions and "receive.start" not in report.dead_transitions
    lines = never_lines(report)
    assert "`receive` never starts again from `loop_end`'s loop" in lines
    assert "`receive` starts" in next(w for w in report.witnesses if w.property == "deadlock").told
    assert not {positive(line) for line in lines} & fired_words(net)
    assert "`receive` never starts again from `loop_end`'s loop" in report.explain()


@st.composite
def workflows(draw: st.DrawFn) -> Workflow:
    """Small workflows with AND- and XOR-joins after a route (some deadlock), loops, maps, retries, fallbacks."""
    b = WorkflowBuilder("words")
    ids: list[str] = []
    for i in range(draw(st.integers(1, 4))):
        sid = f"s{i}"
        opts: dict[str, object] = {}
        if ids:
            opts["after"] = draw(st.lists(st.sampled_from(ids), unique=True, min_size=1, max_size=2))
        if draw(st.integers(0, 3)) == 0:
            opts["retry"] = {"max_attempts": 2}
            if draw(st.booleans()):
                opts["fallback"] = f"fb{i}"
        if opts.get("after") and "fallback" not in opts and draw(st.integers(0, 2)) == 0:
            if draw(st.booleans()):
                opts["loop"] = {"to": draw(st.sampled_from(opts["after"])), "max": 2}  # type: ignore[arg-type]
            else:
                opts["map"] = {"over": opts["after"][0], "max": draw(st.integers(1, 2))}  # type: ignore[index]
        b.step(sid, kind="tool", **opts)
        if "fallback" in opts:
            b.step(f"fb{i}", kind="tool")
        ids.append(sid)
    if draw(st.booleans()):
        b.step("router", kind="classify", after=[ids[-1]], route={"x": 0.5, "y": 0.5})
        b.step("x", kind="tool").step("y", kind="tool")
        join = {"after": ["x", "y"]} if draw(st.booleans()) else {"after_any": ["x", "y"]}
        end: dict[str, object] = {"after": ["join"]}
        if draw(st.booleans()):
            end["loop"] = {"to": draw(st.sampled_from([*ids, "router", "join"])), "max": draw(st.integers(1, 2))}
        b.step("join", kind="python", **join).step("end_step", kind="python", **end)
    try:
        return b.build()
    except SpecError:
        from hypothesis import reject

        reject()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(workflows())
def test_no_never_line_names_what_fires_in_a_reachable_run(wf: Workflow) -> None:
    net = lower(wf)
    report = check(net, max_states=50_000)
    assume(report.complete)
    fired = fired_words(net)
    lines = never_lines(report)
    assert len(lines) == len(report.dead_transitions or ())
    for line in lines:
        assert positive(line) not in fired, line
    every = tell_sequence(net, list(net.transitions))
    assert len(set(every)) == len(every), "two transitions share their words"


def test_words_stay_distinct_when_two_transitions_share_an_origin() -> None:
    """Told apart by where they hand over, else by id (no lowering today repeats an origin; a net may)."""
    import dataclasses

    net = lower(WorkflowBuilder("twins").step("a", kind="tool").step("b", kind="tool")
                .step("c", kind="tool", after=["a"]).step("d", kind="tool", after=["b"]).build())
    origins = dict(net.origins)
    origins["b.finish"] = origins["a.finish"]
    origins["b.start"] = origins["a.start"]
    twins = dataclasses.replace(net, origins=origins)
    told = dict(zip(twins.transitions, tell_sequence(twins, list(twins.transitions))))
    assert told["a.finish"] == "`a` finishes and hands over to `c`"
    assert told["b.finish"] == "`a` finishes and hands over to `d`"
    assert {told["a.start"], told["b.start"]} == {"`a` starts (transition `a.start`)", "`a` starts (transition `b.start`)"}


def test_a_loop_re_entry_is_read_from_the_wiring_not_from_the_entry_places_words() -> None:
    """With the loop-entry place's Origin blanked, the wiring's Way still says the start re-enters from the loop."""
    import dataclasses

    from petriflow.net.petrinet import Origin
    from petriflow.net.wiring import EntryKind

    net = lower(loop_over_a_deadlocking_join())
    wiring = net.require_wiring()
    entries = {s.way.place for w in wiring.steps.values() for s in w.starts
               if s.way.kind is EntryKind.LOOP and s.way.place is not None}
    assert entries, "the workflow has a loop re-entry"
    blanked = dataclasses.replace(net, origins={**net.origins, **{p: Origin(construct="other") for p in entries}})
    told = dict(zip(blanked.transitions, tell_sequence(blanked, list(blanked.transitions))))
    assert told["receive.start_loop.loop_end"] == "`receive` starts again from `loop_end`'s loop"
    unwired = dataclasses.replace(blanked, wiring=None)  # a net without wiring (PNML) has only the words to go by
    told = dict(zip(unwired.transitions, tell_sequence(unwired, list(unwired.transitions))))
    assert "again" not in told["receive.start_loop.loop_end"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(workflows())
def test_words_from_the_wiring_match_the_words_from_origins(wf: Workflow) -> None:
    """The lowering writes both; a PNML round trip (no wiring) must tell a lowered net's runs the same way."""
    import dataclasses

    net = lower(wf)
    unwired = dataclasses.replace(net, wiring=None)
    assert tell_sequence(net, list(net.transitions)) == tell_sequence(unwired, list(unwired.transitions))
