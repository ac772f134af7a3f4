"""The worst-case cost bound holds for executed runs of the shipped workflows (issue 12), not only simulated ones.

Each shipped workflow that has a bound (``check --json`` reports
``cost_bound.usd``) is run through the CLI on the real local model, on its
demo input and on a batch of other inputs (``models/**/demo_steps.txt``
names the demo's; none routed to a person, who would be waited for), and no
executed case may cost more than the bound. The
cases must cost something, or the comparison would say nothing: the
shipped workflows price their models. ``tests/simulate/test_cost_bound.py``
checks the same bound against 10,000 simulated cases.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTRA = {
    "qa_router": ["what is the capital of France?", "my python loop never ends, why?",
                  "search the web for the latest release of numpy"],
    "customer_support": [{"question": "is the blue mug in stock?", "customer_id": 2, "ticket_id": 502},
                         {"question": "has my order 1002 shipped yet?", "customer_id": 1, "ticket_id": 501}],
}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "petriflow", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)


def _demo_runs() -> list[list[str]]:
    """The ``run`` lines of the demo, each as its CLI arguments."""
    files = [ROOT / "models" / "demo_steps.txt", *sorted((ROOT / "models").glob("*/demo_steps.txt"))]
    lines = [shlex.split(line) for f in files for line in f.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return [args for args in lines if args[0] == "run"]


def _without_trace(args: list[str]) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == "--trace":
            skip = True
        else:
            out.append(a)
    return out


@pytest.mark.parametrize("demo", _demo_runs(), ids=lambda a: Path(a[1]).stem)
def test_no_executed_case_costs_more_than_the_bound(demo: list[str], tmp_path: Path) -> None:
    workflow = demo[1]
    checked = _cli("check", workflow, "--json")
    report: dict[str, Any] = json.loads(checked.stdout)
    bound = report["cost_bound"]
    if bound["usd"] is None:  # no bound to hold: it says why (tests/simulate/test_cost_bound.py checks the reason)
        assert bound["reason"]
        return
    db = tmp_path / "runs.sqlite"
    demo_run = _cli(*_without_trace(demo), "--json", "--db", str(db))
    assert demo_run.returncode == 0, demo_run.stderr[-2000:]
    costs = [c["cost"] for c in json.loads(demo_run.stdout)["cases"]]
    extra = EXTRA.get(Path(workflow).stem, [])
    if extra:
        inputs = tmp_path / "inputs.jsonl"
        inputs.write_text("".join(json.dumps(x) + "\n" for x in extra))
        batch = _cli("run", workflow, "--inputs", str(inputs), "--json", "--db", str(db))
        assert batch.returncode in (0, 1), batch.stderr[-2000:]
        costs += [c["cost"] for c in json.loads(batch.stdout)["cases"]]
    assert len(costs) == 1 + len(extra) and all(c > 0 for c in costs), costs
    assert max(costs) <= bound["usd"], (max(costs), bound)
