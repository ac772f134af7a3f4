"""A report never says ``false`` when it does not know: null verdicts with a reason, for every way a check stops.

Each test stops a check one way (the state budget, the memory budget, the
reduced search's budgets, the coverability budget, a structural bound that
is not exact, a property not asked for) and reads the ``check --json``
document: every verdict key is true, false or null, a null has its reason
code beside it (``<key>_unknown``), and a known one agrees with the check
that ran without a budget.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petriflow.net.lower import lower
from petriflow.net.petrinet import PetriNet
from petriflow.net.pnml import write_pnml
from petriflow.spec import load
from petriflow.verify.report import REASONS, VERDICTS, check

from ._nets import nets, random_nets

ROOT = Path(__file__).resolve().parents[2]


def countdown(n: int, *, gadget: bool = False) -> PetriNet:
    """``n`` tokens move one by one from ``a`` to ``b``: n + 1 states in a line, the last one dead.

    ``gadget`` adds a place that could double its tokens but is never marked:
    the net stays bounded, but no longer by its structure alone, so only a
    coverability set can say so.
    """
    places = {"a": n, "b": 0}
    transitions, arcs = ["t"], [("a", "t", 1), ("t", "b", 1)]
    if gadget:
        places["g"] = 0
        transitions.append("grow")
        arcs += [("g", "grow", 1), ("grow", "g", 2)]
    return PetriNet.from_arcs(places=places, transitions=transitions, arcs=arcs, name=f"countdown({n})")


def burst(n: int) -> PetriNet:
    """One transition puts ``n`` tokens in ``a``; its place invariant bounds ``a`` by ``n`` before it has fired."""
    return PetriNet.from_arcs(places={"s": 1, "a": 0, "b": 0}, transitions=["fill", "t"],
                              arcs=[("s", "fill", 1), ("fill", "a", n), ("a", "t", 1), ("t", "b", 1)], name="burst")


def unknowns(doc: dict[str, Any]) -> dict[str, str]:
    """The null verdicts of a JSON document with their reasons; fails on a verdict without one or a stray one."""
    out = {}
    for key in VERDICTS:
        value, why = doc[key], doc[f"{key}_unknown"]
        assert value is None or isinstance(value, bool), (key, value)
        assert (value is None) == (why is not None), (key, value, why)
        if why is not None:
            assert why in REASONS, why
            out[key] = why
    return out


def test_state_budget_leaves_every_undecided_verdict_null() -> None:
    net = lower(load(ROOT / "models" / "qa_router.yaml"))
    report = check(net, max_states=5)
    doc = report.to_json()
    assert unknowns(doc) == {"deadlock": "max_states", "sound": "max_states", "live": "max_states"}
    assert doc["deadlock"] is None and doc["deadlock_known"] is False and report.exit_code == 3
    assert doc["bounded"] is True and doc["safe"] is False  # proved structurally; a resource holds 4 tokens
    assert "unknown: the search stopped at --max-states" in report.explain()


def test_memory_budget_of_the_full_search() -> None:
    report = check(countdown(3000), full=True, max_bytes=50_000)
    assert report.stop_reason == "max_bytes"
    assert unknowns(report.to_json()) == {"deadlock": "max_bytes", "live": "max_bytes", "sound": "not_a_workflow_net"}
    assert report.exit_code == 3


@pytest.mark.parametrize(("budget", "reason"), [({"max_states": 100}, "max_states"),
                                                ({"max_bytes": 50_000}, "max_bytes")])
def test_reduced_search_budgets(budget: dict[str, int], reason: str) -> None:
    """The deadlock sits at the end of a line of 3001 states, which the reduced search cannot shorten."""
    report = check(countdown(3000), properties=("deadlock",), **budget)  # type: ignore[arg-type]
    assert report.states_reduced is not None and report.states is None
    assert unknowns(report.to_json()) == {"deadlock": reason, "bounded": "not_checked", "safe": "not_checked",
                                          "sound": "not_a_workflow_net", "live": "not_checked"}
    assert report.exit_code == 3
    assert check(countdown(3000), properties=("deadlock",)).deadlock is True


def test_the_full_search_stops_and_the_reduced_one_also_runs_out() -> None:
    report = check(countdown(3000), max_states=100, properties=("deadlock", "bounded"))
    assert report.states_reduced == 100
    assert unknowns(report.to_json()) == {"deadlock": "max_states", "sound": "not_a_workflow_net",
                                          "live": "not_checked"}
    assert report.bounded is True and report.bound == 3000 and report.safe is False


def test_coverability_budget() -> None:
    net = countdown(3000, gadget=True)
    report = check(net, max_states=50, properties=("bounded",))
    doc = report.to_json()
    assert unknowns(doc) == {"deadlock": "not_checked", "bounded": "coverability_budget",
                             "sound": "not_a_workflow_net", "live": "not_checked"}
    assert doc["safe"] is False  # 3000 tokens in `a` already: not safe, bounded or not
    assert report.exit_code == 3
    truth = check(net)
    assert truth.bounded is True and truth.deadlock is True


def test_structural_bound_that_is_not_exact_leaves_safe_null() -> None:
    report = check(burst(5), max_states=1, properties=("bounded",))
    assert report.bounded is True and report.bound is None
    assert unknowns(report.to_json())["safe"] == "structural_bound"
    assert check(burst(5)).safe is False


def test_what_follows_from_a_deadlock_found_before_the_budget() -> None:
    """A deadlock reached in the explored part makes a workflow net unsound and not live, budget or not."""
    net = lower(load(ROOT / "models" / "qa_router_broken.yaml"))
    truth = check(net)
    report = check(net, max_states=truth.states - 1 if truth.states else 1)
    assert report.deadlock is True and report.sound is False and report.live is False
    assert report.exit_code == 1


def test_cli_json_with_the_memory_budget(tmp_path: Path) -> None:
    path = write_pnml(countdown(300_000), tmp_path / "countdown.pnml")
    res = subprocess.run([sys.executable, "-m", "petriflow", "check", str(path), "--json", "--max-memory", "1"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 3, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert unknowns(doc) == {"deadlock": "max_bytes", "sound": "not_a_workflow_net", "live": "max_bytes"}
    assert doc["stop_reason"] == "max_bytes"


bounded_nets = random_nets(places=(1, 4), transitions=(1, 4), tokens=2).filter(
    lambda net: nets.bfs(net, limit=400).complete)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(net=bounded_nets, budget=st.integers(1, 40), props=st.sampled_from([("deadlock",), ("deadlock", "bounded"),
                                                                            ("deadlock", "bounded", "live")]))
def test_a_budget_never_changes_a_verdict_it_gives(net: PetriNet, budget: int, props: tuple[str, ...]) -> None:
    """Under any state budget, a verdict is either the one of the unbudgeted check or null with a reason."""
    truth = check(net).to_json()
    doc = check(net, max_states=budget, properties=props).to_json()
    unknown = unknowns(doc)
    for key in VERDICTS:
        if key not in unknown:
            assert doc[key] == truth[key], (key, doc[key], truth[key])
