"""Durability: a run killed with ``kill -9`` mid-run resumes without redoing any committed step.

The run is a real ``petriflow run`` subprocess against the fault server (a
fixed delay per call, so the kill lands mid-run). The server counts every
request by its prompt, and each prompt names its case and step, so the
oracle is exact: a step execution committed before the kill is never
requested again, and after the resume every case has every output.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("a", "b", "c")


def _workflow(base_url: str) -> str:
    return f"""
name: chain
models:
  m: {{name: fault-model, base_url: "{base_url}"}}
steps:
  - {{id: a, kind: chat, model: m, prompt: "A {{question}}"}}
  - {{id: b, kind: chat, model: m, prompt: "B {{a}}", after: [a]}}
  - {{id: c, kind: chat, model: m, prompt: "C {{b}}", after: [b]}}
"""


def _committed(db: Path) -> list[tuple[int, str, str]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return [(r[0], r[1], r[2]) for r in con.execute("SELECT ncase, step, output FROM steps")]
    except sqlite3.OperationalError:  # the table is not there yet
        return []


def _petriflow(*args: str, home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PETRIFLOW_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "petriflow", "run", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.timeout(120)
def test_kill_9_then_resume_repeats_no_committed_step(fault_server: Any, tmp_path: Path) -> None:
    fault_server.set_delay(0.4)
    wf = tmp_path / "chain.yaml"
    wf.write_text(_workflow(fault_server.base_url))
    inputs = tmp_path / "in.jsonl"
    cases = [f"q{i}" for i in range(4)]
    inputs.write_text("\n".join(json.dumps(q) for q in cases) + "\n")
    db = tmp_path / "runs.sqlite"
    proc = _petriflow(str(wf), "--inputs", str(inputs), "--db", str(db), "--run-id", "R1", "--concurrency", "2",
                      home=tmp_path)
    deadline = time.monotonic() + 60
    while len(_committed(db)) < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    before = _committed(db)
    assert 4 <= len(before) < len(cases) * len(STEPS)
    prompts_before = dict(fault_server.counts()["prompts"])

    resumed = _petriflow("--resume", "R1", "--db", str(db), "--json", home=tmp_path)
    out, err = resumed.communicate(timeout=90)
    assert resumed.returncode == 0, err.decode()
    doc = json.loads(out)
    assert [c["ok"] for c in doc["cases"]] == [True] * len(cases)

    after = _committed(db)
    assert len(after) == len(cases) * len(STEPS)  # no output lost
    prompts_after = fault_server.counts()["prompts"]
    outputs = {(n, s): json.loads(o) for n, s, o in after}
    for n, step, _ in before:
        upstream = {"a": f"A {cases[n]}", "b": f"B {outputs.get((n, 'a'))}", "c": f"C {outputs.get((n, 'b'))}"}
        prompt = upstream[step]
        assert prompts_after[prompt] == prompts_before[prompt], f"case {n} step {step} was called again"
    for n, q in enumerate(cases):  # the chain really ran on each case's own outputs
        assert outputs[(n, "c")] == f"echo: C echo: B echo: A {q}"
        assert doc["cases"][n]["output"] == outputs[(n, "c")]


def test_resume_after_a_failed_case_reuses_what_was_committed(tmp_path: Path) -> None:
    import asyncio

    from petriflow.execute import Executor, SqliteStore, plan
    from petriflow.execute.builtins import _PLAYED
    from petriflow.spec import WorkflowBuilder

    tag = f"res{time.time_ns()}"
    wf = (WorkflowBuilder("again")
          .step("first", kind="python", function="petriflow.execute.builtins:scripted",
                config={"kwargs": {"key": f"{tag}.first", "script": ["one"]}})
          .step("second", kind="python", function="petriflow.execute.builtins:scripted", after=["first"],
                config={"kwargs": {"key": f"{tag}.second", "script": ["!fatal", "two"]}})
          .build())
    dag = plan(wf)
    store = SqliteStore(tmp_path / "r.sqlite")
    failed = asyncio.run(Executor(dag, store=store).run_many(["q"], run_id="R"))
    assert not failed[0].ok and _PLAYED[f"{tag}.first"] == 1
    done = asyncio.run(Executor(dag, store=SqliteStore(tmp_path / "r.sqlite")).resume("R"))
    assert done[0].ok and done[0].output == "two" and done[0].reused == 1
    assert _PLAYED[f"{tag}.first"] == 1 and _PLAYED[f"{tag}.second"] == 2  # first was not run again
    assert dag.net.is_final(dag.net.replay(done[0].events))
