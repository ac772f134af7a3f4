"""Every run the executor makes is a firing sequence of the verified net (hypothesis, with faults).

Random structured workflows of Python steps (sequences, AND fork/joins,
routes with an XOR-join, bounded loops, maps, shared resources, retries and
fallbacks) are planned and run with injected faults (retryable errors,
timeouts, fatal errors). The transitions the executor records must fire one
after another from the net's initial marking; a run that succeeds must end in
the net's final marking (sink marked, resources back), and a run that fails
must have failed because a step ran out of attempts with no fallback.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from petriflow.execute import Executor, plan
from petriflow.net.lower import lower
from petriflow.spec import WorkflowBuilder
from petriflow.verify.report import check

FN = "petriflow.execute.builtins:scripted"
_ids = itertools.count()

faults = st.sampled_from([[], [], [], [], ["!retryable"], ["!timeout"], ["!fatal"], ["!retryable", "!timeout"]])


class _Gen:
    """Builds a workflow from a drawn block structure; every step plays a drawn fault script."""

    def __init__(self, draw: Any) -> None:
        self.draw = draw
        self.b = WorkflowBuilder(f"wf{next(_ids)}").resource("r", capacity=draw(st.integers(1, 2)))
        self.tag = f"k{next(_ids)}"
        self.n = 0

    def step(self, *, after: list[str] = (), after_any: list[str] = (), outputs: tuple[Any, ...] = ("v",),
             **extra: Any) -> str:
        self.n += 1
        sid = f"s{self.n}"
        script = [*self.draw(faults), *outputs]
        opts: dict[str, Any] = {"function": FN, "config": {"kwargs": {"key": f"{self.tag}.{sid}", "script": script}}}
        if after:
            opts["after"] = list(after)
        if after_any:
            opts["after_any"] = list(after_any)
        attempts = self.draw(st.integers(1, 3))
        if attempts > 1:
            opts["retry"] = {"max_attempts": attempts, "backoff": 0}
        if self.draw(st.booleans()):
            opts["uses"] = ["r"]
        if self.draw(st.integers(0, 3)) == 0:
            fb = f"{sid}_fb"
            opts["fallback"] = fb
            self.b.step(sid, kind="python", **opts, **extra)
            fb_value = outputs[-1]
            self.b.step(fb, kind="python", function=FN,
                        config={"kwargs": {"key": f"{self.tag}.{fb}", "script": [fb_value]}})
            return sid
        self.b.step(sid, kind="python", **opts, **extra)
        return sid

    def block(self, after: list[str], depth: int) -> list[str]:
        """Build one block waiting on ``after``; returns the steps a successor must wait for."""
        kind = self.draw(st.sampled_from(["step", "seq", "par", "choice", "loop", "map"] if depth < 2 else ["step"]))
        if kind == "step":
            return [self.step(after=after)]
        if kind == "map":  # a list of 1..3 items, one task per item (retries and fallbacks per item)
            n, bound = self.draw(st.integers(1, 3)), self.draw(st.integers(3, 4))
            src = self.step(after=after, outputs=([f"i{j}" for j in range(n)],))
            return [self.step(after=[src], map={"over": src, "max": bound})]
        if kind == "seq":
            return self.block(self.block(after, depth + 1), depth + 1)
        if kind == "par":
            return self.block(after, depth + 1) + self.block(after, depth + 1)
        if kind == "choice":
            label = self.draw(st.sampled_from(["x", "y"]))
            router_id = f"s{self.n + 1}"
            # the router is written after its branch heads exist (the loader does not mind the order)
            router = {"after": after, "value": label}
            self.n += 1
            heads, tails = [], []
            for _ in range(2):
                head = self.step()
                heads.append(head)
                tail = self.block([head], depth + 1)
                if len(tail) > 1:
                    tail = [self.step(after=tail)]
                tails.append(tail[0])
            self._router(router_id, router, heads)
            return [self.step(after_any=tails)]
        # loop: head, body, then a step that goes back to head while it says "retry"
        head = self.step(after=after)
        body = self.block([head], depth + 1)
        k = self.draw(st.integers(1, 3))
        script = ["retry"] * self.draw(st.integers(0, 4)) + ["done"]
        return [self.step(after=body, outputs=tuple(script), loop={"to": head, "max": k, "when": "retry"})]

    def _router(self, sid: str, opts: dict[str, Any], heads: list[str]) -> None:
        script = [*self.draw(faults), opts["value"]]
        kw: dict[str, Any] = {"function": FN, "config": {"kwargs": {"key": f"{self.tag}.{sid}", "script": script}},
                              "route": [{"to": heads[0], "p": 0.5, "when": "x"}, {"to": heads[1], "p": 0.5, "when": "y"}]}
        if opts["after"]:
            kw["after"] = list(opts["after"])
        attempts = self.draw(st.integers(1, 3))
        if attempts > 1:
            kw["retry"] = {"max_attempts": attempts, "backoff": 0}
        self.b.step(sid, kind="python", **kw)


@st.composite
def workflows(draw: Any) -> Any:
    g = _Gen(draw)
    tail = g.block([], 0)
    if len(tail) > 1:
        g.step(after=tail)
    return g.b.document()


async def _no_sleep(_: float) -> None:
    return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workflows())
def test_every_run_replays_on_the_verified_net(drawn: Any) -> None:
    from petriflow.spec import from_document

    wf = from_document(drawn)
    report = check(lower(wf), max_states=20_000)
    assume(report.sound is True)  # parallel loops with retries can outgrow the budget; those are skipped
    dag = plan(wf, report=report)
    result = asyncio.run(Executor(dag, sleep=_no_sleep).run("input"))
    net = dag.net
    event("ok" if result.ok else "failed")
    event("retried" if any(e.endswith(".retry") for e in result.events) else "no retry")
    event("fell back" if any(e.endswith(".give_up") for e in result.events) else "no fallback")
    event("looped" if any(e.endswith(".loop") for e in result.events) else "no loop")
    marking = net.replay(result.events)  # raises if any transition was not enabled
    if result.ok:
        assert net.is_final(marking), net.describe_marking(marking)
    else:
        assert "attempt" in (result.error or ""), result.error
