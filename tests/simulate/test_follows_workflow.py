"""Simulation that follows the workflow: it refuses a net that can deadlock, says when nothing finished,
and names the model steps whose cost nobody annotated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from petriflow.errors import UnsoundWorkflowError
from petriflow.profile import Profile
from petriflow.simulate import Load, simulate
from petriflow.simulate.guard import unpriced_steps
from petriflow.spec import load, loads

ROOT = Path(__file__).resolve().parents[2]
BROKEN = ROOT / "models" / "qa_router_broken.yaml"


def petriflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "petriflow", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_simulate_refuses_a_workflow_that_can_deadlock_with_the_witness_of_check() -> None:
    from petriflow.net.lower import lower
    from petriflow.verify.report import check

    wf = load(BROKEN)
    with pytest.raises(UnsoundWorkflowError) as err:
        simulate(wf, cases=10)
    told = check(lower(wf), properties=("deadlock",)).witnesses[0].told
    assert all(step in str(err.value) for step in told)  # the checker's own steps, not a re-derivation
    assert err.value.exit_code == 1


def test_allow_unsound_simulates_it_and_the_table_says_no_case_finished_instead_of_nan() -> None:
    res = simulate(load(BROKEN), cases=20, allow_unsound=True)
    assert (res.cases, res.unfinished) == (0, 20)
    table = res.table()
    assert "nan" not in table
    assert "no measured case finished" in table


def test_cli_simulate_exits_1_with_the_witness_and_goes_on_when_asked() -> None:
    refused = petriflow("simulate", str(BROKEN), "--cases", "20")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "can deadlock" in refused.stderr and "aggregate" in refused.stderr and "1." in refused.stderr
    assert "--allow-unsound" in refused.stderr
    went = petriflow("simulate", str(BROKEN), "--cases", "20", "--allow-unsound")
    assert went.returncode == 0, went.stderr
    assert "nan" not in went.stdout
    assert "no measured case finished" in went.stderr
    doc = json.loads(petriflow("simulate", str(BROKEN), "--cases", "20", "--allow-unsound", "--json").stdout)
    assert doc["latency"]["mean"] is None and doc["unfinished"] == 20


_UNPRICED = """
name: unpriced
models:
  m: {name: m, price_input: 1.0, price_output: 2.0}
  free: {name: free}
steps:
  - {id: pick, kind: classify, model: m, latency: 0.1,
     route: [{when: a, to: a, p: 0.5}, {when: b, to: b, p: 0.5}]}
  - {id: a, kind: chat, model: m, latency: 1, tokens: {input: 100, output: 50}}
  - {id: b, kind: chat, model: free, latency: 1, tokens: {input: 100, output: 50}}
  - {id: glue, kind: python, after_any: [a, b]}
"""


def test_model_steps_that_cost_nothing_for_want_of_an_annotation_are_named() -> None:
    wf = loads(_UNPRICED)
    assert unpriced_steps(wf, Profile.from_workflow(wf)) == {"pick": "no tokens annotation",
                                                             "b": "model 'free' has no prices"}
    res = simulate(wf, cases=50)
    assert dict(res.unpriced) == {"pick": "no tokens annotation", "b": "model 'free' has no prices"}
    assert res.to_json()["unpriced"] == dict(res.unpriced)


def test_cli_simulate_warns_naming_the_unpriced_steps(tmp_path: Path) -> None:
    path = tmp_path / "unpriced.yaml"
    path.write_text(_UNPRICED)
    res = petriflow("simulate", str(path), "--cases", "50")
    assert res.returncode == 0, res.stderr
    line = next(x for x in res.stderr.splitlines() if "cost $0" in x)
    assert "pick (no tokens annotation)" in line and "b (model 'free' has no prices)" in line
    assert " a (" not in line and "glue" not in line


def test_a_fully_priced_workflow_warns_about_nothing() -> None:
    wf = load(ROOT / "models" / "qa_router.yaml")
    assert unpriced_steps(wf, Profile.load(ROOT / "models" / "qa_router.profile.yaml", workflow=wf)) == {}


def test_a_poisson_load_of_a_deadlocking_net_is_refused_before_any_table_is_built() -> None:
    with pytest.raises(UnsoundWorkflowError):
        simulate(load(BROKEN), cases=5, load=Load.poisson(1.0))
