"""A shared resource that the control flow never lets bind is dropped, and the steps around it fold away.

Issue 10's chain of steps that each use one ``llm`` and retry kept every
place before: the resource touched every step, so nothing was private, and
the spent retry budgets made markings depend on history (295,243 markings
for 10 steps, 236,194 on the net the old rules left; no verdict for 400). The oracle of the random cases is the full
search of the unreduced net (``tests/verify/test_reduce.py``); here, the
shapes the rule is for and the ones it must leave alone. Sizes only, never
times.
"""

from __future__ import annotations

from petriflow.net._invariant import deltas, solve
from petriflow.net.lower import lower
from petriflow.net.petrinet import PetriNet, WorkflowNet
from petriflow.net.reduce import reduce_net
from petriflow.spec import WorkflowBuilder
from petriflow.spec.model import Workflow
from petriflow.verify.report import check

from .test_reduce import _same_verdicts, _witnesses_replay


def shared_chain(n: int, *, capacity: int = 1, attempts: int = 3, tail: str = "") -> Workflow:
    """``n`` steps one after another, each using ``llm`` and retrying; then, with ``tail``, a route (using
    ``llm``) into ``x`` (using it) or ``y``, joined by ``tail="any"`` (an XOR-join) or ``tail="and"`` (an AND-join:
    a deadlock)."""
    b = WorkflowBuilder(f"shared_chain_{n}").resource("llm", capacity=capacity)
    for i in range(n):
        b.step(f"s{i}", kind="chat", prompt="x", uses=["llm"], retry={"max_attempts": attempts},
               **({"after": [f"s{i - 1}"]} if i else {}))
    if tail:
        b.step("route", kind="classify", after=[f"s{n - 1}"], route={"x": 0.5, "y": 0.5}, uses=["llm"])
        b.step("x", kind="tool", uses=["llm"]).step("y", kind="tool")
        b.step("join", kind="python", **{"after" if tail == "and" else "after_any": ["x", "y"]})
    return b.build()


def fan_out(k: int, capacity: int) -> Workflow:
    """``k`` parallel steps using ``llm`` (with retries), joined."""
    b = WorkflowBuilder(f"fan_{k}").resource("llm", capacity=capacity).step("plan", kind="tool")
    for i in range(k):
        b.step(f"w{i}", kind="chat", prompt="x", after=["plan"], uses=["llm"], retry={"max_attempts": 2})
    return b.step("join", kind="python", after=[f"w{i}" for i in range(k)]).build()


def test_a_short_shared_chain_reduces_to_one_transition_with_the_full_searchs_verdicts() -> None:
    net = lower(shared_chain(4))
    red = reduce_net(net)
    assert red.applied["free_resource"] == 1 and "res.llm" not in red.net.places
    assert (len(red.net.places), len(red.net.transitions)) == (2, 1)
    assert red.exact_bound  # the resource's bound (its capacity) is known, so the net's largest count is too
    full, reduced = check(net, reduce=False), check(net, reduce=True)
    assert full.complete and full.states is not None and full.states > 100
    _same_verdicts(net, full, reduced)
    assert (reduced.deadlock, reduced.bounded, reduced.sound, reduced.live) == (False, True, True, True)
    assert reduced.bound == full.bound == 2 and reduced.safe is full.safe is False  # a retry budget holds 2


def test_a_resource_that_binds_is_kept_and_one_that_cannot_is_dropped() -> None:
    for k, capacity, kept in ((2, 1, True), (3, 2, True), (2, 2, False), (3, 3, False), (3, 4, False)):
        net = lower(fan_out(k, capacity))
        red = reduce_net(net)
        assert ("res.llm" in red.net.places) is kept, (k, capacity)
        full, reduced = check(net, reduce=False), check(net, reduce=True)
        assert full.complete
        _same_verdicts(net, full, reduced)


def test_a_400_step_shared_chain_gets_a_verdict_on_a_net_of_bounded_size() -> None:
    net = lower(shared_chain(400))
    assert (len(net.places), len(net.transitions)) == (1604, 1602)
    red = reduce_net(net)
    assert (len(red.net.places), len(red.net.transitions)) == (2, 1)
    report = check(net)
    assert (report.deadlock, report.bounded, report.sound, report.live) == (False, True, True, True)
    assert report.bound == 2  # the retry budgets, exactly
    assert report.complete and report.reduced_net == (2, 1)
    assert report.states_reduced is not None and report.states_reduced <= 2


def test_a_route_after_a_long_shared_chain_reduces_too() -> None:
    net = lower(shared_chain(200, tail="any"))
    report = check(net)
    assert (report.deadlock, report.bounded, report.sound, report.live) == (False, True, True, True)
    assert report.reduced_net is not None and report.reduced_net[0] * report.reduced_net[1] <= 6
    small = lower(shared_chain(3, tail="any"))
    _same_verdicts(small, check(small, reduce=False), check(small, reduce=True))


def test_a_deadlock_after_a_long_shared_chain_is_found_and_replays_on_the_original_steps() -> None:
    """An AND-join after a route: the invariant would put 2 in ``llm`` when the sink is marked, so the final
    marking is unreachable and dropping ``llm`` would make it reachable: the resource is kept, the verdict
    still comes (from the stubborn-set search)."""
    net = lower(shared_chain(200, tail="and"))
    assert isinstance(net, WorkflowNet)
    assert "res.llm" in reduce_net(net).net.places
    report = check(net)
    assert report.deadlock is True and report.sound is False
    _witnesses_replay(net, report)
    (w,) = [w for w in report.witnesses if w.property == "deadlock"]
    assert "s199.finish" in w.trace and any("join" in line for line in w.stuck)
    small = lower(shared_chain(3, tail="and"))
    _same_verdicts(small, check(small, reduce=False), check(small, reduce=True))


def test_the_invariant_of_a_mutex_is_found_and_a_wrong_one_never_accepted() -> None:
    """A one-shot critical section: ``idle = a + done_a`` (= ``1 - busy_a``) never binds ``enter``."""
    net = PetriNet.from_arcs(
        places={"idle": 1, "a": 1, "busy_a": 0, "done_a": 0},
        transitions=["enter", "leave"],
        arcs=[("idle", "enter", 1), ("a", "enter", 1), ("enter", "busy_a", 1), ("busy_a", "leave", 1),
              ("leave", "idle", 1), ("leave", "done_a", 1)])
    pre = {t: {net.places[j]: int(w) for j, w in enumerate(net.pre[i]) if w} for i, t in enumerate(net.transitions)}
    post = {t: {net.places[j]: int(w) for j, w in enumerate(net.post[i]) if w}
            for i, t in enumerate(net.transitions)}
    d = deltas(pre, post)
    y = solve(d, "idle", {"a": 1}, 1)  # idle = a + done_a: a one-shot critical section never binds
    assert y == {"a": 1, "done_a": 1}
    for change in d.values():
        assert sum(y.get(q, 0) * w for q, w in change.items() if q != "idle") == change.get("idle", 0)
    assert solve(d, "idle", {"a": 1, "busy_a": 5}, 1) is None  # seeds that contradict an equation
    assert solve(d, "idle", {"a": 0}, 1) is None  # busy_a would be -1
    red = reduce_net(net)
    assert "idle" not in red.net.places and red.exact_bound
    _same_verdicts(net, check(net, reduce=False), check(net, reduce=True))
