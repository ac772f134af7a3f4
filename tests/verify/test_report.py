"""Reports: verdicts agree across search modes, and witnesses replay and speak in steps."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import _conformance as conformance
import numpy as np
import pytest

from petriflow.net.lower import lower
from petriflow.net.petrinet import WorkflowNet
from petriflow.net.pnml import write_pnml
from petriflow.spec import load, loads
from petriflow.verify.report import check

ROOT = Path(__file__).resolve().parents[2]


def unbounded_retry() -> WorkflowNet:
    """A retry with no budget whose failed attempt keeps running while a new one is queued."""
    net = lower(loads("""
name: retry_without_bound
steps:
  - {id: fetch, kind: tool, retry: {max_attempts: 3}}
  - {id: answer, kind: chat, after: [fetch]}
"""))
    pre, post = net.pre.copy(), net.post.copy()
    fail = net.transition_index("fetch.fail")
    pre[fail, net.place_index("fetch.retries")] = 0
    post[fail, net.place_index("fetch.running")] = 1
    return dataclasses.replace(net, pre=pre, post=post)


@pytest.mark.parametrize("model", ["qa_router", "qa_router_broken"])
def test_reduced_and_full_search_agree_and_witnesses_replay(model: str) -> None:
    net = lower(load(ROOT / "models" / f"{model}.yaml"))
    full = check(net)
    reduced = check(net, properties=("deadlock",))
    assert reduced.states is None and reduced.states_reduced is not None
    assert reduced.states_reduced <= full.states
    assert reduced.deadlock == full.deadlock == (model == "qa_router_broken")
    for report in (full, reduced):
        for w in report.witnesses:
            if w.trace:
                end = net.replay(w.trace)
                assert {p: int(end[net.place_index(p)]) for p in w.marking} == w.marking
                if w.property == "deadlock":
                    assert not net.enabled(end).any() and not net.is_final(end)


def test_broken_router_witness_is_told_in_steps() -> None:
    report = check(lower(load(ROOT / "models" / "qa_router_broken.yaml")))
    w = next(w for w in report.witnesses if w.property == "deadlock")
    assert w.told[0] == "the workflow starts"
    assert len(w.choices) == 1 and w.choices[0].startswith("`classify` chose `")
    chosen = w.choices[0].split("`")[3]
    waiting = sorted({"general", "code", "search"} - {chosen})
    assert w.stuck == (f"`aggregate` waits for `{waiting[0]}` and `{waiting[1]}`, which can no longer run",)
    assert report.sound is False and report.deadlock_trace == w.trace


def test_unbounded_retry_loop_has_a_pumping_witness_in_steps() -> None:
    net = unbounded_retry()
    report = check(net, max_states=5_000)
    assert report.bounded is False and report.sound is False and report.exit_code == 1
    w = next(w for w in report.witnesses if w.property == "bounded")
    assert "`fetch` fails (or times out)" in w.told
    # the pump strictly grows a place: replay it twice and compare
    start = net.replay(w.trace)
    pump = [t for t in w.trace if net.origins[t].role == "fail"]
    after = net.replay(pump, start)
    assert np.all(after >= start) and np.any(after > start)
    assert "fetch.backoff" in w.summary


def test_unbounded_net_through_pnml_and_cli(tmp_path: Path) -> None:
    path = write_pnml(unbounded_retry(), tmp_path / "retry.pnml")
    res = subprocess.run([sys.executable, "-m", "petriflow", "check", str(path), "--max-states", "5000", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["bounded"] is False and doc["states"] is None and doc["sound"] is False
    assert any(w["property"] == "bounded" and "`fetch` fails (or times out)" in w["told"] for w in doc["witnesses"])


def test_budget_without_a_verdict_says_what_is_known() -> None:
    net = lower(load(ROOT / "models" / "qa_router.yaml"))
    report = check(net, max_states=10, full=True, properties=("deadlock", "live"))
    assert report.exit_code == 3 and report.deadlock is None and report.live is None
    assert "10 states explored" in report.explain() and "no violation found" in report.explain()


@pytest.mark.slow
@pytest.mark.parametrize("model", ["Dekker-PT-020", "TokenRing-PT-015"])
def test_deadlock_verdict_where_reduction_cannot_shrink(model: str) -> None:
    """The two conformance nets the stubborn sets cannot reduce: the full engine gives their deadlock verdict."""
    from petriflow.net.pnml import read_pnml

    row = next(r for r in conformance.rows() if r["model"] == model)
    report = check(read_pnml(conformance.path(model)), properties=("deadlock",), full=True, max_states=None)
    assert report.complete
    assert report.deadlock == (row["deadlock"] == "true")
    assert report.states == int(row["reachable_states"])


def test_too_big_for_the_full_search_the_reduced_search_gives_the_deadlock_and_its_trace() -> None:
    from petriflow.net.pnml import read_pnml

    net = read_pnml(conformance.path("Philosophers-PT-000010"))  # 59,049 states
    report = check(net, max_states=1_000, properties=("deadlock", "bounded"))
    assert report.states is None and report.deadlock is True and report.states_reduced is not None
    assert report.deadlock_trace is not None
    end = net.replay(report.deadlock_trace)
    assert not net.enabled(end).any()
