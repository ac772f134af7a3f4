"""The QA router end to end on the REAL local models, through the README's main command.

Answers are asserted for shape and invariants, never for facts: the route the
classifier's trace record names is the answerer that ran and the one the
output reports; the answer text is not empty; every model call recorded its
usage; the final output is valid against the aggregate step's schema.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from petriflow.spec import load
from petriflow.trace import read_traces as read_trace

ROOT = Path(__file__).resolve().parents[2]
QA = ROOT / "models" / "qa_router.yaml"
QUESTIONS = ["how do I reverse a list in python?", "hi, how are you today?", "who won the 2018 world cup?"]

pytestmark = [pytest.mark.local_models, pytest.mark.timeout(600)]


def test_the_main_command_runs_the_qa_router_on_the_local_models(local_models: Any, tmp_path: Path) -> None:
    inputs = tmp_path / "q.jsonl"
    inputs.write_text("\n".join(json.dumps(q) for q in QUESTIONS) + "\n")
    trace = tmp_path / "trace.jsonl"
    env = {**os.environ}
    proc = subprocess.run(
        [sys.executable, "-m", "petriflow", "run", str(QA), "--inputs", str(inputs), "--trace", str(trace),
         "--db", str(tmp_path / "runs.sqlite"), "--json", "--concurrency", "3"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=540, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    schema = dict(load(QA).step("aggregate").output_schema or {})
    answerer = {"general": "general", "code": "code", "search": "search"}
    records = read_trace(trace)
    for case in doc["cases"]:
        assert case["ok"], case["error"]
        out = case["output"]
        jsonschema.validate(out, schema)
        assert out["answer"].strip() and out["route"] in answerer.values()
        mine = [r for r in records if r.case == case["case"]]
        chosen = [r.branch for r in mine if r.step == "classify" and r.outcome == "ok"]
        assert len(chosen) == 1 and chosen[0] in answerer
        assert out["route"] == answerer[chosen[0]]  # the route taken is the route the classifier chose
        ran = {r.step for r in mine if r.outcome == "ok"}
        assert answerer[chosen[0]] in ran and not ({"general", "code", "search"} - {out["route"]}) & ran
        if chosen[0] == "search":
            assert "retrieve" in ran
        for r in mine:
            if r.step in ("general", "code", "search", "classify") and r.outcome == "ok":
                assert r.model and r.input_tokens > 0 and r.cost > 0
                assert r.output_tokens > 0 or r.step == "classify"
        assert case["cost"] == pytest.approx(sum(r.cost for r in mine))
