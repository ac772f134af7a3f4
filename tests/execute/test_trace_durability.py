"""Durability of what a run reports (issue 11 items 5 and 6).

A step's trace record is committed with its checkpoint, the trace file is
derived from the store (a resume appends what a crash kept from it), the
cost reported after a resume counts the cases finished before, and a trace
or metrics file that cannot be written fails with one clear line after the
answers are printed and stored.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from petriflow.execute import Executor, TraceWriter, plan
from petriflow.execute.servers import Endpoint
from petriflow.execute.store import open_store
from petriflow.spec import WorkflowBuilder
from petriflow.trace import read_traces

ROOT = Path(__file__).resolve().parents[2]
PRICE = 1e6  # dollars per million tokens: one dollar a token, so costs are whole numbers


def _chain() -> Any:
    b = WorkflowBuilder("chain").model("m", name="fault-model", base_url="http://unused/v1", price_input=PRICE,
                                       price_output=PRICE)
    b.step("a", kind="chat", model="m", prompt="A {question}")
    b.step("b", kind="chat", model="m", prompt="B {a}", after=["a"])
    return plan(b.build())


def _executor(fs: Any, db: str, trace: TraceWriter) -> Executor:
    ep = {"m": Endpoint(base_url=fs.base_url, model="fault-model", api_key="x", price_input=PRICE,
                        price_output=PRICE)}
    return Executor(_chain(), store=open_store(db), trace=trace, endpoints=ep)


def test_trace_file_and_store_agree_after_a_crash_and_cost_counts_earlier_cases(fault_server: Any, store_url: str,
                                                                                tmp_path: Path) -> None:
    db, out = store_url, tmp_path / "t.jsonl"
    fault_server.add_rule(match="B echo: A two", faults=["400"])  # case 1 fails at b, after a was paid
    first = asyncio.run(_executor(fault_server, db, TraceWriter(out)).run_many(["one", "two"], run_id="R"))
    assert first[0].ok and not first[1].ok and first[0].cost > 0
    lines = out.read_text().splitlines()
    assert lines == open_store(db).trace_lines("R")  # every record committed, in order
    out.write_text("\n".join(lines[:1]) + "\n")  # a crash kept only the first line in the file
    trace = TraceWriter(out)
    again = asyncio.run(_executor(fault_server, db, trace).resume("R"))
    trace.close()
    assert all(r.ok for r in again)
    assert again[0].cost == first[0].cost and again[0].input_tokens == first[0].input_tokens
    assert out.read_text().splitlines() == open_store(db).trace_lines("R")  # no record lost, none twice
    records = read_traces(out)
    assert sum(st.cost for st in trace.stats.values()) == sum(r.cost for r in records)
    assert sum(r.cost for r in again) == sum(r.cost for r in records)


def _cli(tmp_path: Path, *args: str, file_size_limit: int | None = None) -> subprocess.CompletedProcess[str]:
    wf = tmp_path / "w.yaml"
    wf.write_text("name: w\nsteps:\n  - {id: a, kind: python, function: 'petriflow.execute.builtins:echo', "
                  "config: {kwargs: {value: hello}}}\n")

    def limit() -> None:  # a full disk for files past this size (Python ignores SIGXFSZ: writes fail with EFBIG)
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run([sys.executable, "-m", "petriflow", "run", str(wf), "--input", "hello", "--db",
                           str(tmp_path / "r.sqlite"), *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=limit)


def test_a_full_disk_for_the_trace_fails_clearly_after_the_answers(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_bytes(b"\n" * (4 << 20))  # the trace is at the limit: its next line cannot be written
    out = _cli(tmp_path, "--trace", str(trace), file_size_limit=4 << 20)
    assert out.returncode == 2, out.stderr
    assert out.stdout.startswith("hello") and "Traceback" not in out.stderr
    assert f"cannot write the trace to {trace}: File too large" in out.stderr
    assert "the results above are stored in run" in out.stderr
    from petriflow.execute import SqliteStore

    store = SqliteStore(tmp_path / "r.sqlite")
    run = store.runs()[0]
    assert [c.output for c in store.cases(run.run_id)] == ["hello"] and len(store.trace_lines(run.run_id)) == 1


def test_unwritable_metrics_fail_clearly_after_the_answers(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    out = _cli(tmp_path, "--metrics", str(tmp_path / "file" / "m.prom"))  # its directory is a file
    assert out.returncode == 2 and out.stdout.startswith("hello")
    assert "cannot write the metrics to" in out.stderr and "internal error" not in out.stderr


def test_an_unopenable_trace_is_refused_before_any_call(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    out = _cli(tmp_path, "--trace", str(tmp_path / "file" / "t.jsonl"))  # its directory is a file
    assert out.returncode == 2 and "hello" not in out.stdout and "cannot write the trace" in out.stderr
