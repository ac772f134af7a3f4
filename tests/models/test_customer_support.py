"""The customer-support workflow end to end through the CLI on the REAL local models and a copy of its database.

Asserted for invariants, never for the wording of a reply: the ticket row the
case names holds the update (status and the facts the tool read); the second
pass of the clarification loop read the customer's answer; an escalated case
waits in ``petriflow runs pending``; the tools never reach another customer's
rows. The database is a fresh copy per test, built by the shipped script, so
the shipped file is never written.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from petriflow.trace import read_traces

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "models" / "customer_support"
WF = HERE / "customer_support.yaml"

pytestmark = [pytest.mark.local_models, pytest.mark.timeout(600)]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    subprocess.run([sys.executable, str(HERE / "build_db.py"), str(tmp_path / "support.sqlite")], check=True,
                   capture_output=True)
    return {**os.environ, "PYTHONPATH": str(ROOT), "PETRIFLOW_SUPPORT_DB": str(tmp_path / "support.sqlite")}


def _cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "petriflow", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def _case(question: str, customer: int, ticket: int) -> list[str]:
    return ["--input", f"question={question}", "--input", f"customer_id={customer}", "--input", f"ticket_id={ticket}"]


def _ticket(env: dict[str, str], ticket: int) -> dict[str, Any]:
    con = sqlite3.connect(env["PETRIFLOW_SUPPORT_DB"])
    con.row_factory = sqlite3.Row
    try:
        return dict(con.execute("SELECT * FROM tickets WHERE id = ?", (ticket,)).fetchone())
    finally:
        con.close()


def _start(env: dict[str, str], tmp_path: Path, run_id: str, *case: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "petriflow", "run", str(WF), *case, "--run-id", run_id,
                             "--db", str(tmp_path / "runs.sqlite"), "--trace", str(tmp_path / "t.jsonl"), "--json"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_pending(env: dict[str, str], tmp_path: Path, needle: str, proc: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        p = _cli(env, "runs", "pending", "--db", str(tmp_path / "runs.sqlite"))
        if needle in p.stdout:
            return p.stdout
        time.sleep(0.5)
    raise AssertionError(f"nothing like {needle!r} waited")


def test_check_proves_the_workflow_and_refuses_the_broken_variant_with_a_witness(env: dict[str, str]) -> None:
    assert _cli(env, "check", str(WF)).returncode == 0
    p = _cli(env, "check", str(HERE / "customer_support_broken.yaml"))
    assert p.returncode == 1
    assert "`intent` finishes and chooses `human`" in p.stdout
    assert "`escalate` waits for `find_order`, which can no longer run" in p.stdout


def test_an_order_question_updates_the_ticket_and_replies(env: dict[str, str], tmp_path: Path,
                                                          local_models: Any) -> None:
    before = _ticket(env, 501)
    p = _cli(env, "run", str(WF), *_case("where is my order 1002? I have been waiting for weeks", 1, 501),
             "--db", str(tmp_path / "runs.sqlite"), "--trace", str(tmp_path / "t.jsonl"), "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)["cases"][0]
    assert out["ok"] and isinstance(out["output"]["reply"], str) and out["output"]["reply"].strip()
    after = _ticket(env, 501)
    assert before["status"] == "open" and after["status"] == "answered"
    assert "1002" in after["note"] and "backordered" in after["note"]  # what lookup_order read from the orders table
    steps = {r.step for r in read_traces(tmp_path / "t.jsonl") if r.outcome == "ok"}
    assert {"sentiment", "intent", "find_order", "lookup", "facts", "record", "reply"} <= steps
    assert not {"ask", "clarify", "stock", "escalate"} & steps


def test_another_customers_order_reads_as_not_found(env: dict[str, str], tmp_path: Path, local_models: Any) -> None:
    p = _cli(env, "run", str(WF), *_case("where is my order 1003?", 1, 501),  # 1003 is customer 2's
             "--db", str(tmp_path / "runs.sqlite"), "--json")
    assert p.returncode == 0, p.stderr
    note = _ticket(env, 501)["note"]
    assert "No order 1003" in note and "headphones" not in note and "delivered" not in note
    assert _ticket(env, 502)["status"] == "open"  # customer 2's ticket is untouched


def test_the_clarification_loops_second_pass_reads_the_customers_answer(env: dict[str, str], tmp_path: Path,
                                                                        local_models: Any) -> None:
    db = str(tmp_path / "runs.sqlite")
    proc = _start(env, tmp_path, "clarify-1", *_case("my parcel has not arrived, where is my order?", 3, 503))
    try:
        _wait_pending(env, tmp_path, "step 'clarify' pass 1", proc)
        assert _cli(env, "answer", "clarify-1", "clarify", "I am not sure, sorry", "--db", db).returncode == 0
        _wait_pending(env, tmp_path, "step 'clarify' pass 2", proc)
        assert _cli(env, "answer", "clarify-1", "clarify", "--pass", "2", "it is order 1004", "--db", db
                    ).returncode == 0
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    shown = json.loads(_cli(env, "runs", "show", "clarify-1", "--db", db, "--json").stdout)["cases"][0]["steps"]
    assert shown["find_order#1"]["label"] == "missing" and shown["find_order#1"]["heard"] is None
    assert shown["find_order#2"]["heard"] == "I am not sure, sorry" and shown["find_order#2"]["label"] == "missing"
    assert shown["find_order#3"]["heard"] == "it is order 1004" and shown["find_order#3"]["order_id"] == "1004"
    passes = [(r.loop_pass, r.branch) for r in read_traces(tmp_path / "t.jsonl") if r.step == "find_order"]
    assert passes == [(1, "missing"), (2, "missing"), (3, "found")]
    ticket = _ticket(env, 503)
    assert ticket["status"] == "answered" and "1004" in ticket["note"] and "processing" in ticket["note"]


def test_an_escalated_case_waits_for_a_person_in_runs_pending(env: dict[str, str], tmp_path: Path,
                                                              local_models: Any) -> None:
    db = str(tmp_path / "runs.sqlite")
    proc = _start(env, tmp_path, "esc-1", *_case("I want to speak to a manager right now, get me a human", 2, 502))
    try:
        shown = _wait_pending(env, tmp_path, "step 'agent' pass 1", proc)
        assert "esc-1 case 0" in shown and "petriflow answer esc-1 agent VALUE" in shown
        assert _ticket(env, 502)["status"] == "escalated"  # recorded before the person is asked
        assert _cli(env, "answer", "esc-1", "agent", "called the customer back", "--db", db).returncode == 0
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    out = json.loads(stdout)["cases"][0]["output"]  # one entry per terminal step: only the person's ran
    assert out == {"agent": "called the customer back", "reply": None, "heard": None}
    assert "nothing is waiting" in _cli(env, "runs", "pending", "--db", db).stdout
