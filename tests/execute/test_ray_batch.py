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
  workers, and a dead worker's units are given back only after its calls end;
* a third batch whose *driver* is killed mid-run is finished by
  ``run --resume --backend ray``: every case once, with the right output, no
  step saved at the kill called again, one ``ok`` record per step.
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


@pytest.fixture(scope="module")
def ray_facts(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the probe saw of its three batches (run once for the module's tests, in the namespace)."""
    prefix = _loopback_only()
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install 'petriflow[ray]')")
    out = tmp_path_factory.mktemp("ray") / "facts.json"
    proc = subprocess.run([*prefix, sys.executable, "-m", "tests.execute.ray_batch_probe", pg_server.database(),
                           pg_server.database(), pg_server.database(), str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=840, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    facts: dict[str, Any] = json.loads(out.read_text())
    return facts


@pytest.mark.timeout(900)
def test_a_ray_batch_equals_the_local_one_and_a_killed_worker_calls_no_saved_step_again(
        ray_facts: dict[str, Any]) -> None:
    facts = ray_facts
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
    _exactly_once(facts, ray, steps)
    assert Counter(ray["trace"]) == Counter(ray["stored"])
    assert sum(json.loads(r)["cost"] for r in ray["stored"]) == sum(c["cost"] for c in b["cases"])


def _exactly_once(kill: dict[str, Any], batch: dict[str, Any], steps: dict[tuple[int, str], str]) -> None:
    """No step saved at the kill was called again, and each (case, step) has one ``ok`` record."""
    for n, s in kill["saved_at_kill"]:
        prompt = _prompt(n, s, steps)
        assert batch["counts"][prompt] == kill["counts_at_kill"][prompt], f"case {n} step {s} was called again"
    records = [json.loads(x) for x in batch["stored"]]
    assert Counter((r["case"], r["step"]) for r in records if r["outcome"] == "ok") == Counter(
        {(n, s): 1 for n in range(CASES) for s in ("a", "b")})


@pytest.mark.timeout(900)
def test_a_killed_ray_driver_is_resumed_on_ray_with_nothing_saved_called_again(ray_facts: dict[str, Any]) -> None:
    driver = ray_facts["driver"]
    resumed = driver["resumed"]
    assert driver["killed_while_running"] and 0 < len(driver["saved_at_kill"]) < 2 * CASES
    assert resumed["rc"] == 0, resumed["stderr"]
    out = json.loads(resumed["stdout"])
    assert [(c["case"], c["ok"], c["output"]) for c in out["cases"]] == [
        (n, True, f"echo: B echo: A case-{n}") for n in range(CASES)]
    assert resumed["peak"] <= CAPACITY
    _exactly_once(driver, resumed, {(n, s): v for n, s, v in resumed["steps"]})
