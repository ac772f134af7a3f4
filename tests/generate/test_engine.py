"""``petriflow support``: triage, generation with repair, the gate, and the run of what passed, through the CLI.

The scripted server (a real HTTP server on 127.0.0.1 speaking the OpenAI
protocol) plays every model: its embeddings are bags of words, so triage picks
the label whose examples share the message's words; its generator answers
with prepared workflows. The oracles are the support database, the trace
file, the checkpoint store (``petriflow runs show``) and the requests the
server received.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from petriflow.trace import TraceRecord, read_traces

from .scripted_server import REPLY, ScriptedServer
from .test_gate import DEADLOCK, GOOD, HERE, ROOT, _cli, _with, env

__all__ = ["env", "support_cli", "ticket"]

ENGINE = ["sentiment", "intent"]  # the catalog's label sets, in order: the triage's steps


def support_cli(env: dict[str, str], server: ScriptedServer, tmp_path: Path, message: str, *extra: str,
                customer: str = "1", ticket_id: str = "501") -> subprocess.CompletedProcess[str]:
    return _cli(env, server, "support", message, "--customer", customer, "--ticket", ticket_id,
                "--catalog", str(HERE / "catalog.yaml"), *_files(tmp_path), "--run-id", "r1", "--json", *extra)


def _files(tmp_path: Path) -> list[str]:
    return ["--db", str(tmp_path / "runs.sqlite"), "--trace", str(tmp_path / "t.jsonl"), "--log",
            str(tmp_path / "rounds.jsonl"), "--out", str(tmp_path / "out")]


def ticket(env: dict[str, str], tid: int) -> dict[str, Any]:
    con = sqlite3.connect(env["PETRIFLOW_SUPPORT_DB"])
    con.row_factory = sqlite3.Row
    try:
        return dict(con.execute("SELECT * FROM tickets WHERE id = ?", (tid,)).fetchone())
    finally:
        con.close()


def _records(tmp_path: Path, run: str) -> list[TraceRecord]:
    return [r for r in read_traces(tmp_path / "t.jsonl") if r.run_id == run]


def _shown(env: dict[str, str], server: ScriptedServer, tmp_path: Path, run: str) -> dict[str, Any]:
    p = _cli(env, server, "runs", "show", run, "--db", str(tmp_path / "runs.sqlite"), "--json")
    assert p.returncode == 0, p.stderr
    steps: dict[str, Any] = json.loads(p.stdout)["cases"][0]["steps"]
    return steps


def test_a_workflow_passing_the_first_round_runs_and_the_trace_has_every_node(env: dict[str, str],
                                                                                tmp_path: Path) -> None:
    with ScriptedServer([GOOD]) as server:
        p = support_cli(env, server, tmp_path, "where is my order 1001?")
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
        assert out["chosen"] == "generated" and [r["ok"] for r in out["rounds"]] == [True]
        assert out["triage"]["intent"]["label"] == "order"  # the words of the message are the order examples'
        assert json.loads(Path(out["workflow"]).read_text()) == GOOD  # what ran is what the model wrote
        engine = _records(tmp_path, "r1-engine")
        assert [(r.step, r.branch) for r in engine] == [("sentiment", None), ("intent", None), ("generate", None),
                                                       ("gate", "passed"), ("choose", "generated")]
        ran = _records(tmp_path, "r1")
        assert [r.step for r in ran] == ["find_order", "lookup", "facts", "record"]  # agent, handoff: not on the path
        assert all(r.outcome == "ok" and r.end >= r.start for r in engine + ran)
        assert engine[-1].end <= ran[0].start  # nothing ran before the gate had passed it
        data = _shown(env, server, tmp_path, "r1")  # every node's data, in the store
        assert data["find_order#1"]["order_id"] == "1001" and data["lookup#1"]["status"] == "shipped"
        rounds = _shown(env, server, tmp_path, "r1-engine")
        assert rounds["intent#1"]["label"] == "order" and rounds["generate#1"]["ok"] is True
        case = json.loads(_cli(env, server, "runs", "show", "r1", "--db", str(tmp_path / "runs.sqlite"),
                               "--json").stdout)["cases"][0]
        assert case["input"]["customer_id"] == "1" and case["input"]["intent"]["label"] == "order"
    from petriflow.execute.store import open_store

    store = open_store(str(tmp_path / "runs.sqlite"))  # every record was committed to the store, then the file
    stored = store.trace_lines("r1-engine") + store.trace_lines("r1")
    assert stored == (tmp_path / "t.jsonl").read_text().splitlines()
    t = ticket(env, 501)
    assert t["status"] == "answered" and "1001" in t["note"] and "shipped" in t["note"]


def test_a_refused_workflow_is_repaired_and_every_round_is_logged_and_traced(env: dict[str, str],
                                                                              tmp_path: Path) -> None:
    with ScriptedServer([_with("lookup", tool="export_database"), GOOD]) as server:
        p = support_cli(env, server, tmp_path, "where is my order 1002?")
        assert p.returncode == 0, p.stderr
        second = server.generation_requests()[1]["body"]["messages"]
    assert "refused by the `catalog` check" in second[-1]["content"]
    out = json.loads(p.stdout)
    assert out["chosen"] == "generated" and [(r["check"], r["ok"]) for r in out["rounds"]] == [("catalog", False),
                                                                                             (None, True)]
    logged = [json.loads(x) for x in (tmp_path / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in logged] == [1, 2] and logged[0]["witness"] == ["step 'lookup'"]
    gates = [r for r in _records(tmp_path, "r1-engine") if r.step == "gate"]
    assert [(g.attempt, g.outcome, g.branch, g.error) for g in gates] == [(1, "error", "catalog", "retryable"),
                                                                         (2, "ok", "passed", None)]
    assert "round 1: refused by the `catalog` check" in p.stderr
    t = ticket(env, 501)
    assert t["status"] == "answered" and "1002" in t["note"] and "backordered" in t["note"]


def test_refused_every_round_falls_back_to_the_verified_workflow(env: dict[str, str], tmp_path: Path) -> None:
    with ScriptedServer([DEADLOCK]) as server:
        p = support_cli(env, server, tmp_path, "where is my order 1002? I am so angry", "--rounds", "3")
        assert p.returncode == 0, p.stderr
        assert server.generate_calls == 3
    out = json.loads(p.stdout)
    assert [r["check"] for r in out["rounds"]] == ["verify"] * 3
    assert out["chosen"] == "fallback" and out["workflow"].endswith("customer_support.yaml")
    assert "falling back to the verified" in p.stderr
    gates = [(r.branch, r.error) for r in _records(tmp_path, "r1-engine") if r.step in ("gate", "choose")]
    assert gates == [("verify", "retryable"), ("verify", "retryable"), ("verify", "fatal"), ("fallback", None)]
    ran = {r.step for r in _records(tmp_path, "r1")}
    assert {"sentiment", "intent", "find_order", "lookup", "facts", "record", "reply"} <= ran and "note" not in ran
    assert out["case"]["output"]["reply"] == REPLY  # the shipped workflow's reply step, on the scripted model
    t = ticket(env, 501)
    assert t["status"] == "answered" and "1002" in t["note"]


def _start(env: dict[str, str], server: ScriptedServer, tmp_path: Path, message: str, *extra: str,
           customer: str, ticket_id: str, catalog: Path = HERE / "catalog.yaml") -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "petriflow", "support", message, "--customer", customer,
                             "--ticket", ticket_id, "--catalog", str(catalog), *_files(tmp_path),
                             "--run-id", "r1", "--json", *extra], cwd=ROOT,
                            env={**env, "PETRIFLOW_LOCAL_BASE_URL": server.base_url}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_pending(env: dict[str, str], server: ScriptedServer, tmp_path: Path, needle: str,
                  proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if needle in _cli(env, server, "runs", "pending", "--db", str(tmp_path / "runs.sqlite")).stdout:
            return
        time.sleep(0.3)
    raise AssertionError(f"nothing like {needle!r} waited")


def _answer(env: dict[str, str], server: ScriptedServer, tmp_path: Path, *args: str) -> None:
    p = _cli(env, server, "answer", "r1", *args, "--db", str(tmp_path / "runs.sqlite"))
    assert p.returncode == 0, p.stderr


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    out: dict[str, Any] = json.loads(stdout)
    return out


def test_refused_every_round_escalates_to_a_person_who_answers_in_runs_answer(env: dict[str, str],
                                                                               tmp_path: Path) -> None:
    with ScriptedServer([DEADLOCK]) as server:
        proc = _start(env, server, tmp_path, "where is my order 1002?", "--rounds", "2", "--on-refusal", "escalate",
                      customer="1", ticket_id="501")
        _wait_pending(env, server, tmp_path, "r1 case 0 step 'agent'", proc)
        assert ticket(env, 501)["status"] == "escalated"  # recorded before the person is asked
        _answer(env, server, tmp_path, "agent", "called the customer back")
        out = _finish(proc)
    assert out["chosen"] == "escalated" and out["workflow"].endswith("escalation.yaml")
    assert out["case"]["output"] == "called the customer back"  # the one terminal step: the person
    assert [r.step for r in _records(tmp_path, "r1")] == ["escalate", "agent"]
    assert [r.branch for r in _records(tmp_path, "r1-engine") if r.step == "choose"] == ["escalated"]


CLARIFY: dict[str, Any] = {"name": "clarify_order", "steps": [
    {"id": "find_order", "kind": "python", "function": "support_tools:find_order", "config": {"kwargs": {"passes": 3}},
     "route": [{"when": "found", "to": "lookup", "p": 0.8}, {"when": "missing", "to": "ask", "p": 0.15},
               {"when": "give_up", "to": "handoff", "p": 0.05}]},
    {"id": "ask", "kind": "python", "function": "support_tools:ask"},
    {"id": "clarify", "kind": "human", "after": ["ask"]},
    {"id": "heard", "kind": "python", "function": "support_tools:heard", "after": ["clarify"],
     "loop": {"to": "find_order", "max": 2, "when": "again", "p": 0.9}},
    {"id": "lookup", "kind": "tool", "tool": "lookup_order", "config": {"args": {"order_id": "{find_order[order_id]}"}}},
    {"id": "facts", "kind": "python", "function": "support_tools:facts", "after": ["lookup"]},
    {"id": "record", "kind": "tool", "tool": "update_ticket", "after": ["facts"],
     "config": {"args": {"status": "answered", "note": "{facts}"}}},
    {"id": "handoff", "kind": "human"},
]}


def test_the_generated_clarification_loop_asks_and_reads_the_customers_answer(env: dict[str, str],
                                                                              tmp_path: Path) -> None:
    with ScriptedServer([CLARIFY]) as server:
        proc = _start(env, server, tmp_path, "my parcel has not arrived", customer="3", ticket_id="503")
        _wait_pending(env, server, tmp_path, "step 'clarify' pass 1", proc)
        _answer(env, server, tmp_path, "clarify", "I am not sure")
        _wait_pending(env, server, tmp_path, "step 'clarify' pass 2", proc)
        _answer(env, server, tmp_path, "clarify", "--pass", "2", "it is order 1004")
        out = _finish(proc)
        shown = _shown(env, server, tmp_path, "r1")
    assert out["chosen"] == "generated"
    assert [(r.loop_pass, r.branch) for r in _records(tmp_path, "r1") if r.step == "find_order"] == [
        (1, "missing"), (2, "missing"), (3, "found")]
    assert shown["find_order#3"]["heard"] == "it is order 1004"
    t = ticket(env, 503)
    assert t["status"] == "answered" and "1004" in t["note"] and "processing" in t["note"]


def test_bad_input_is_one_line_and_exit_2(env: dict[str, str], tmp_path: Path) -> None:
    with ScriptedServer([GOOD]) as server:
        bad_id = support_cli(env, server, tmp_path, "where is my order?", customer="1 OR 1=1")
        empty = support_cli(env, server, tmp_path, "   ")
        no_catalog = _cli(env, server, "support", "hi", "--customer", "1", "--catalog", str(tmp_path / "none.yaml"))
        broken = support_cli(env, server, tmp_path, "where is my order?", "--fallback",
                             str(HERE / "customer_support_broken.yaml"))
        missing = support_cli(env, server, tmp_path, "where is my order?", "--on-refusal", "escalate",
                              "--escalation", str(tmp_path / "nowhere.yaml"))
        assert not server.requests  # refused before any model was asked
    for p, says in ((bad_id, "customer_id must be"), (empty, "the message is empty"),
                    (no_catalog, "no such catalog file"), (broken, "the fallback workflow does not pass the gate"),
                    (missing, "nowhere.yaml")):
        assert p.returncode == 2 and says in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert ticket(env, 501)["status"] == "open"


def test_a_changed_case_is_not_the_engines_to_make(env: dict[str, str], tmp_path: Path) -> None:
    """The generated workflow's only way to a customer is the case the engine built: no template reaches it."""
    reads_id = copy.deepcopy(GOOD)
    reads_id["steps"][3]["config"] = {"args": {"status": "answered", "note": "{customer_id}"}}
    with ScriptedServer([reads_id, GOOD]) as server:
        p = support_cli(env, server, tmp_path, "where is my order 1001?")
    assert p.returncode == 0, p.stderr
    assert [r["check"] for r in json.loads(p.stdout)["rounds"]] == ["catalog", None]


def test_an_engine_run_killed_while_a_person_is_asked_resumes_with_petriflow_run(env: dict[str, str],
                                                                                 tmp_path: Path) -> None:
    with ScriptedServer([CLARIFY]) as server:
        proc = _start(env, server, tmp_path, "my parcel has not arrived", customer="3", ticket_id="503")
        _wait_pending(env, server, tmp_path, "step 'clarify' pass 1", proc)
        proc.kill()
        proc.wait()
        calls = server.generate_calls
        resumed = subprocess.Popen([sys.executable, "-m", "petriflow", "run", "--resume", "r1", "--db",
                                    str(tmp_path / "runs.sqlite"), "--json"], cwd=ROOT,
                                   env={**env, "PETRIFLOW_LOCAL_BASE_URL": server.base_url}, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        _wait_pending(env, server, tmp_path, "step 'clarify' pass 1", resumed)
        _answer(env, server, tmp_path, "clarify", "order 1004")
        stdout, stderr = resumed.communicate(timeout=90)
        assert resumed.returncode == 0, stderr
        assert server.generate_calls == calls  # the resume ran the gated file; nothing was generated again
    assert json.loads(stdout)["cases"][0]["ok"]
    t = ticket(env, 503)
    assert t["status"] == "answered" and "1004" in t["note"]
    assert [r.step for r in _records(tmp_path, "r1")].count("find_order") == 2  # pass 1 saved, pass 2 after


def test_a_generator_that_does_not_answer_is_no_workflow_and_the_case_is_still_served(env: dict[str, str],
                                                                                       tmp_path: Path) -> None:
    import shutil

    import yaml

    cat = tmp_path / "catalog"
    cat.mkdir()
    for f in ("support_tools.py", "escalation.yaml"):
        shutil.copy(HERE / f, cat / f)
    doc = yaml.safe_load((HERE / "catalog.yaml").read_text())
    doc["models"]["smollm2"]["base_url"] = "http://127.0.0.1:9/v1"  # nothing listens there: refused at once
    (cat / "catalog.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    with ScriptedServer([GOOD]) as server:
        proc = _start(env, server, tmp_path, "where is my order 1001?", "--on-refusal", "escalate", customer="1",
                      ticket_id="501", catalog=cat / "catalog.yaml")
        _wait_pending(env, server, tmp_path, "r1 case 0 step 'agent'", proc)
        _answer(env, server, tmp_path, "agent", "answered by phone")
        out = _finish(proc)
        assert server.generate_calls == 0
    assert out["rounds"] == [] and out["chosen"] == "escalated"
    assert [r.step for r in _records(tmp_path, "r1-engine")] == ["sentiment", "intent", "choose"]
    assert ticket(env, 501)["status"] == "escalated"


def test_a_message_over_the_triages_token_limit_is_refused_before_anything_is_generated(env: dict[str, str],
                                                                                         tmp_path: Path) -> None:
    with ScriptedServer([GOOD]) as server:
        p = support_cli(env, server, tmp_path, "where is my order " * 800)
        assert not server.generation_requests()
    assert p.returncode == 2 and "the triage failed" in p.stderr and "more than its max_input_tokens (512)" in p.stderr
    assert "Traceback" not in p.stderr and ticket(env, 501)["status"] == "open"
