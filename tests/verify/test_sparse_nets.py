"""A net too big for dense matrices: lowered with sparse arcs, reduced, checked, its witnesses replayed on it.

Oracles: the dense lowering of the same workflow (the same net, and the same
verdicts whichever form ``check`` starts from, over random workflows), the
full search of the dense net where it finishes, and the firing rule of the
sparse original (every witness replays on it to the marking it shows).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from petriflow.errors import NetError
from petriflow.limits import MAX_MATRIX_CELLS, MAX_STEPS
from petriflow.net.lower import lower
from petriflow.net.petrinet import PetriNet
from petriflow.net.sparse import SparseArcs
from petriflow.spec.model import Workflow
from petriflow.verify.report import Report, check

from .test_words import workflows

ROOT = Path(__file__).resolve().parents[2]


def _chain(n: int, **step: object) -> list[dict[str, object]]:
    return [{"id": f"s{i}", "kind": "tool", **step, **({"after": [f"s{i - 1}"]} if i else {})} for i in range(n)]


def _two_chains(n: int, **step: object) -> list[dict[str, object]]:
    """Two chains side by side (even and odd steps): a resource of capacity 1 they both use binds."""
    return [{"id": f"s{i}", "kind": "tool", **step, **({"after": [f"s{i - 2}"]} if i > 1 else {})} for i in range(n)]


def _cli(doc: dict[str, object], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(doc))
    return subprocess.run([sys.executable, "-m", "petriflow", "check", "--json", str(path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def _replays(net: PetriNet, report: Report) -> None:
    for w in report.witnesses:
        if w.trace:
            m = net.replay(w.trace)  # a NetError if a step of it is not enabled on the original
            assert {net.place_labels[i]: int(m[i]) for i in np.flatnonzero(m)} == w.marking


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workflows())
def test_the_sparse_and_the_dense_path_give_the_same_verdicts(wf: Workflow) -> None:
    dense, sparse = lower(wf), lower(wf, sparse=True)
    assert sparse.is_sparse and not dense.is_sparse and sparse == dense
    for t in range(len(dense.transitions)):
        assert np.array_equal(sparse.pre[t], dense.pre[t]) and np.array_equal(sparse.post[t], dense.post[t])
    assert np.array_equal(sparse.enabled(sparse.initial), dense.enabled(dense.initial))
    from_dense, from_sparse = check(dense, reduce=True), check(sparse)
    for key in ("deadlock", "bounded", "sound", "live", "bound", "safe", "complete"):
        assert getattr(from_sparse, key) == getattr(from_dense, key), key
    assert from_sparse.dead_transitions == from_dense.dead_transitions
    assert [w.trace for w in from_sparse.witnesses] == [w.trace for w in from_dense.witnesses]
    _replays(sparse, from_sparse)
    full = check(dense, reduce=False, max_states=200_000)
    if full.complete:  # the unreduced search is the oracle wherever it finishes
        assert (from_sparse.deadlock, from_sparse.sound, from_sparse.live) == (full.deadlock, full.sound, full.live)


def test_a_chain_of_3000_steps_is_sound_through_the_cli(tmp_path: Path) -> None:
    assert MAX_STEPS >= 3000
    res = _cli({"name": "chain", "steps": _chain(3000)}, tmp_path)
    assert res.returncode == 0, res.stderr[-500:]
    doc = json.loads(res.stdout)
    assert doc["sound"] is True and doc["deadlock"] is False and doc["live"] is True
    assert doc["net"]["places"] * doc["net"]["transitions"] > MAX_MATRIX_CELLS  # it really is past dense
    assert doc["reduced_net"] == {"places": 2, "transitions": 1}


def test_a_long_chain_ending_in_a_join_on_an_unchosen_branch_fails_with_a_witness_on_the_original() -> None:
    from petriflow.spec import WorkflowBuilder

    b = WorkflowBuilder("late")
    for i in range(2990):
        b.step(f"s{i}", kind="tool", **({"after": [f"s{i - 1}"]} if i else {}))
    b.step("route", kind="classify", after=["s2989"], route={"x": 0.5, "y": 0.5})
    b.step("x", kind="tool").step("y", kind="tool").step("join", kind="python", after=["x", "y"])
    net = lower(b.build())
    assert net.is_sparse
    report = check(net)
    assert report.deadlock is True and report.sound is False and report.reduced_net is not None
    (w,) = [w for w in report.witnesses if w.property == "deadlock"]
    assert w.trace[0] == "begin" and "s2989.finish" in w.trace and len(w.trace) > 2 * 2990
    m = net.replay(w.trace)  # fires on the sparse original, step by step
    assert not net.enabled(m).any() and not net.is_final(m)
    assert any("`join` waits for" in line for line in w.stuck)
    _replays(net, report)


def test_a_big_workflow_that_does_not_reduce_is_refused_in_one_line(tmp_path: Path) -> None:
    """Two chains side by side hold one resource of capacity 1 and retry: nothing agglomerates; 12,000 x 12,000."""
    doc = {"name": "busy", "resources": {"api": {"capacity": 1}},
           "steps": _two_chains(3000, uses={"api": 1}, retry={"max_attempts": 2})}
    res = _cli(doc, tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr and res.stdout == ""
    (line,) = res.stderr.strip().splitlines()
    assert "after its reductions" in line and "split the workflow" in line and "MemoryError" not in line


def test_a_sparse_net_refuses_to_become_dense_and_to_be_explored_unreduced() -> None:
    from petriflow.spec import loads

    net = lower(loads(yaml.safe_dump({"name": "c", "steps": _chain(3)})), sparse=True)
    assert isinstance(net.pre, SparseArcs)
    with pytest.raises(NetError, match="too big to hold as dense"):
        np.asarray(net.pre)
    for unreduced in ({"reduce": False}, {"full": True}):  # --full asks for no reductions: refused, not ignored
        with pytest.raises(NetError, match="without reducing it first"):
            check(net, **unreduced)  # type: ignore[arg-type]
