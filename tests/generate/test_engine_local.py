"""``petriflow support`` on the REAL local models (e5 for triage, SmolLM2 writing the workflow), end to end.

Asserted for shape, never for quality: the command exits 0, the triage's
labels are the catalog's, every round carries a verdict naming a known check,
the workflow that ran is the generated one exactly when the last round
passed (else the verified fallback), and the trace holds the triage, every
round and the run's steps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from petriflow.generate import CHECKS, load_catalog
from petriflow.trace import read_traces

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "models" / "customer_support"

pytestmark = [pytest.mark.local_models, pytest.mark.timeout(900)]


def test_the_engine_runs_end_to_end_on_the_local_models(local_models: Any, tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(HERE / "build_db.py"), str(tmp_path / "support.sqlite")], check=True,
                   capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PETRIFLOW_SUPPORT_DB": str(tmp_path / "support.sqlite")}
    p = subprocess.run([sys.executable, "-m", "petriflow", "support", "Where is my order 1001?", "--customer", "1",
                        "--ticket", "501", "--catalog", str(HERE / "catalog.yaml"), "--rounds", "1",
                        "--max-tokens", "500", "--db", str(tmp_path / "runs.sqlite"), "--trace",
                        str(tmp_path / "t.jsonl"), "--out", str(tmp_path / "out"), "--run-id", "local-1", "--json"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=850, check=False)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    catalog = load_catalog(HERE / "catalog.yaml")
    assert {k: v["label"] in catalog.labels[k] for k, v in out["triage"].items()} == {"sentiment": True,
                                                                                       "intent": True}
    (rnd,) = out["rounds"]
    assert rnd["check"] in (None, *CHECKS) and rnd["output_tokens"] > 0
    assert out["chosen"] == ("generated" if rnd["ok"] else "fallback") and out["case"]["ok"]
    trace = read_traces(tmp_path / "t.jsonl")
    engine = [r.step for r in trace if r.run_id == "local-1-engine"]
    assert engine == ["sentiment", "intent", "generate", "gate", "choose"]
    assert any(r.run_id == "local-1" for r in trace)
