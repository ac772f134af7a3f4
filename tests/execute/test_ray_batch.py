"""Real Ray (issue 14): ``run --inputs --backend ray`` gives the local batch's result; a killed worker loses nothing.

Ray's servers listen on every interface, so the run happens inside
``../shared/tools/in-netns.sh`` (a loopback-only network namespace), as in
``tests/simulate/test_ray_backend.py``, whose rule for skipping it follows.
The fault servers must be reachable from the Ray workers, so they start in
the namespace too: :mod:`tests.execute.ray_batch_probe` runs the same batch
locally and on two Ray workers against its own fault server each, kills
Ray worker 0 once half the steps are committed, and writes what it saw; the
store is PostgreSQL (its Unix socket is reachable from the namespace).
This test makes the assertions:

* the Ray batch's cases, outputs and costs equal the local batch's;
* the killed worker's cases were taken over and finished exactly once;
* no saved step was called again after the kill (counted at the server);
* the trace file holds exactly the records the store committed;
* the workflow's `llm` resource (3 units, below the 8 cases the two workers
  start at once) never had more calls in flight at the server than its
  capacity, the killed worker's units included: the limit holds across
  workers, and a dead worker's units are given back only after its calls end.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.simulate.test_ray_backend import _loopback_only

from .ray_batch_probe import CAPACITY, CASES

ROOT = Path(__file__).resolve().parents[2]


def _prompt(case: int, step: str, steps: dict[tuple[int, str], str]) -> str:
    return f"A case-{case}" if step == "a" else f"B {steps[(case, 'a')]}"


@pytest.mark.timeout(600)
def test_a_ray_batch_equals_the_local_one_and_a_killed_worker_calls_no_saved_step_again(
        pg_server: Any, tmp_path: Path) -> None:
    prefix = _loopback_only()
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install 'petriflow[ray]')")
    out = tmp_path / "facts.json"
    proc = subprocess.run([*prefix, sys.executable, "-m", "tests.execute.ray_batch_probe", pg_server.database(),
                           pg_server.database(), str(out)], cwd=ROOT, capture_output=True, text=True, timeout=540,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    facts = json.loads(out.read_text())
    local, ray = facts["local"], facts["ray"]
    assert local["rc"] == 0 and ray["rc"] == 0, ray["stderr"]
    assert facts["killed_while_running"]
    assert local["peak"] <= CAPACITY and ray["peak"] <= CAPACITY, (local["peak"], ray["peak"])
    assert ray["peak"] == CAPACITY  # the limit was reached, so it was what held the calls back
    a, b = json.loads(local["stdout"]), json.loads(ray["stdout"])
    assert [(c["case"], c["ok"], c["output"], c["cost"]) for c in b["cases"]] == [
        (c["case"], c["ok"], c["output"], c["cost"]) for c in a["cases"]]
    assert [c["output"] for c in b["cases"]] == [f"echo: B echo: A case-{n}" for n in range(CASES)]
    steps = {(n, s): v for n, s, v in ray["steps"]}
    assert len(steps) == 2 * CASES
    # no saved step called again after the kill
    for n, s in facts["saved_at_kill"]:
        prompt = _prompt(n, s, steps)
        assert ray["counts"][prompt] == facts["counts_at_kill"][prompt], f"case {n} step {s} was called again"
    # each case done exactly once: one ok record per (case, step), trace file and store agree
    assert Counter(ray["trace"]) == Counter(ray["stored"])
    records = [json.loads(x) for x in ray["stored"]]
    assert Counter((r["case"], r["step"]) for r in records if r["outcome"] == "ok") == Counter(
        {(n, s): 1 for n in range(CASES) for s in ("a", "b")})
    assert sum(r["cost"] for r in records) == sum(c["cost"] for c in b["cases"])
