"""``petriflow generate`` on the REAL local model: schema-valid JSON end to end, the verdict printed.

Asserted for shape, never for quality: SmolLM2-135M answers under the
catalog's draft schema (petriflow.generate.draft), so its answer must parse and fit that schema
(unless it ran out of tokens or context, which the gate then calls a ``parse`` refusal),
and every round carries a verdict naming a known check.
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

from petriflow.generate import CHECKS, load_catalog
from petriflow.generate.draft import draft_schema

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "models" / "customer_support" / "catalog.yaml"

pytestmark = [pytest.mark.local_models, pytest.mark.timeout(900)]


def test_generate_returns_schema_valid_json_on_the_local_model(local_models: Any, tmp_path: Path) -> None:
    log = tmp_path / "rounds.jsonl"
    p = subprocess.run([sys.executable, "-m", "petriflow", "generate", "Where is my order 1001?", "--catalog",
                        str(CATALOG), "--rounds", "1", "--max-tokens", "600", "--log", str(log), "--json"],
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                       timeout=850, check=False)
    assert p.returncode in (0, 1), p.stderr
    doc = json.loads(p.stdout)
    (rnd,) = doc["rounds"]
    assert rnd["check"] in (None, *CHECKS) and rnd["ok"] == (p.returncode == 0) and rnd["output_tokens"] > 0
    assert json.loads(log.read_text())["round"] == 1
    if rnd["check"] != "parse":  # a complete answer: constrained decoding kept it inside the draft schema
        jsonschema.validate(doc["answer"], draft_schema(load_catalog(CATALOG)))
        if doc["ok"]:  # what passed is the expanded workflow, not the draft
            assert isinstance(doc["workflow"]["steps"], list) and all("kind" in s for s in doc["workflow"]["steps"])
    else:
        assert rnd["finish_reason"] == "length"  # only a cut-off answer (tokens or context spent) is not JSON
