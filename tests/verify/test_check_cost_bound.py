"""``petriflow check`` reports the worst-case cost of one case and ``--budget`` refuses a workflow over it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from petriflow.profile.bound import cost_bound
from petriflow.spec import load
from tests.cli_in_process import ROOT, petriflow

QA = ROOT / "models" / "qa_router.yaml"


def test_json_reports_the_bound_and_its_path() -> None:
    res = petriflow("check", QA, "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    expected = cost_bound(load(QA))
    assert doc["cost_bound"] == {"usd": expected.usd, "path": list(expected.path)}
    assert doc["cost_bound"]["usd"] > 0


@pytest.mark.parametrize(("budget", "code"), [("1", 0), ("0.0001", 1)])
def test_budget_passes_or_refuses_naming_the_path(budget: str, code: int) -> None:
    res = petriflow("check", QA, "--budget", budget)
    assert res.code == code, res.err
    if code:
        assert "one case can cost up to $0.0005" in res.err and "classify -> retrieve -> search" in res.err
    else:
        assert not res.err.strip()


def test_an_unknown_bound_is_null_with_its_reason_and_fails_a_budget(tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: w\nmodels: {m: {name: m, price_input: 1}}\nsteps:\n  - {id: a, kind: chat, model: m}\n")
    doc = json.loads(petriflow("check", wf, "--json").out)
    assert doc["cost_bound"]["usd"] is None and "max_input_tokens" in doc["cost_bound"]["reason"]
    res = petriflow("check", wf, "--budget", "100")
    assert res.code == 1 and "worst-case cost is unknown" in res.err and "step 'a'" in res.err
