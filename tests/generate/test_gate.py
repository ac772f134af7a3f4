"""The gate through the CLI, with a scripted model server: each refusal names its check and its witness.

``petriflow generate`` asks the scripted server (a real HTTP server on
127.0.0.1 speaking the OpenAI protocol, :mod:`tests.generate.scripted_server`)
for a workflow; the server answers with a prepared document, and the gate
must refuse it for the right reason, with a witness naming the steps.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .scripted_server import ScriptedServer

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "models" / "customer_support"
CATALOG = HERE / "catalog.yaml"

# a workflow the gate passes: find the order number, look it up, write it to the ticket, reply kindly
GOOD: dict[str, Any] = {"name": "order_status", "steps": [
    {"id": "find_order", "kind": "python", "function": "support_tools:find_order",
     "route": [{"when": "found", "to": "lookup", "p": 0.8}, {"when": "missing", "to": "agent", "p": 0.1},
               {"when": "give_up", "to": "handoff", "p": 0.1}]},
    {"id": "lookup", "kind": "tool", "tool": "lookup_order", "config": {"args": {"order_id": "{find_order[order_id]}"}}},
    {"id": "facts", "kind": "python", "function": "support_tools:facts", "after": ["lookup"]},
    {"id": "record", "kind": "tool", "tool": "update_ticket", "after": ["facts"],
     "config": {"args": {"status": "answered", "note": "{facts}"}}},
    {"id": "agent", "kind": "human"},
    {"id": "handoff", "kind": "human"},
]}


def _with(step: str, **changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    for s in doc["steps"]:
        if s["id"] == step:
            s.update(changes)
    return doc


def _chat(extra: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    doc["steps"].append({"id": "reply", "kind": "chat", "model": "smollm2", "after": ["record"],
                         "prompt": "The customer wrote: {question}\nTheir mood: {sentiment[label]}\nWhat our records say: "
                                   "{facts}\nWrite a short, kind reply.",
                         "system": "You are a warm, patient customer support agent. Acknowledge the customer's "
                                   "feelings, state the facts plainly, and never invent facts.", **extra})
    doc["steps"].insert(0, {"id": "sentiment", "kind": "classify", "model": "e5", "config": {"max_input_tokens": 512},
                            "labels": {
        "negative": ["this is unacceptable, I am furious", "terrible service, very disappointed", "I am so angry"],
        "neutral": ["where is my order?", "do you have this in stock?", "what is the status of my parcel"],
        "positive": ["thanks a lot, you are great", "I love the keyboard", "thank you for the quick help"]}})
    doc["steps"][1]["after"] = ["sentiment"]
    return doc


DEADLOCK = copy.deepcopy(GOOD)  # `note` waits for both people, and a case reaches only one of them
DEADLOCK["steps"].append({"id": "note", "kind": "tool", "tool": "update_ticket", "after": ["agent", "handoff"],
                          "config": {"args": {"status": "escalated", "note": "x"}}})

UNBOUNDED = copy.deepcopy(GOOD)
UNBOUNDED["steps"][3]["loop"] = {"to": "find_order", "when": "again"}  # no max: no bound

TOO_MANY_PASSES = copy.deepcopy(GOOD)
TOO_MANY_PASSES["steps"][3]["loop"] = {"to": "find_order", "max": 10_000, "when": "again"}

MISSING_ON_A_PATH = copy.deepcopy(GOOD)
MISSING_ON_A_PATH["steps"][4] = {"id": "agent", "kind": "tool", "tool": "update_ticket",
                                 "config": {"args": {"status": "escalated", "note": "{facts}"}}}

CASES = [
    ("deadlock", DEADLOCK, "verify", ["`find_order` finishes and chooses `missing`", "`note` waits for `handoff`, which can no longer run"]),
    ("unbounded loop", UNBOUNDED, "schema", ["step 'record'"]),
    ("loop over the limit", TOO_MANY_PASSES, "limits", ["step 'record'"]),
    ("tool outside the catalog", _with("lookup", tool="export_database"), "catalog", ["step 'lookup'"]),
    ("arguments break the schema", _with("record", config={"args": {"status": "deleted", "note": "x"}}),
     "arguments", ["step 'record'"]),
    ("argument naming the case", _with("lookup", config={"args": {"order_id": "1", "case": {"customer_id": 2}}}),
     "arguments", ["step 'lookup'"]),
    ("template reads a secret", _with("record", config={"args": {"status": "answered", "note": "{api_key}"}}),
     "catalog", ["step 'record'"]),
    ("reference missing on one path", MISSING_ON_A_PATH, "references",
     ["`find_order` runs", "-> `agent` starts without `facts`"]),
    ("over budget", _chat({"config": {"max_tokens": 256, "max_input_tokens": 1024}}), "cost", ["step 'reply'"]),
    ("own tools section", {**GOOD, "tools": {"lookup_order": {"function": "os:system"}}}, "catalog",
     ["`tools.lookup_order`"]),
    ("not JSON", "{\"name\": \"x\", \"steps\": [", "parse", []),
]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    subprocess.run([sys.executable, str(HERE / "build_db.py"), str(tmp_path / "support.sqlite")], check=True,
                   capture_output=True)
    return {**os.environ, "PYTHONPATH": str(ROOT), "PETRIFLOW_SUPPORT_DB": str(tmp_path / "support.sqlite"),
            "OPENAI_API_KEY": "sk-test-DO-NOT-LEAK-0123456789abcdef", "PETRIFLOW_HOME": str(tmp_path / "home")}


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer([GOOD]) as s:
        yield s


def _cli(env: dict[str, str], server: ScriptedServer, *args: str) -> subprocess.CompletedProcess[str]:
    e = {**env, "PETRIFLOW_LOCAL_BASE_URL": server.base_url}
    return subprocess.run([sys.executable, "-m", "petriflow", *args], cwd=ROOT, env=e, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize(("name", "doc", "check", "witness"), CASES, ids=[c[0] for c in CASES])
def test_each_bad_workflow_is_refused_with_its_check_and_witness(name: str, doc: Any, check: str,
                                                                  witness: list[str], env: dict[str, str],
                                                                  server: ScriptedServer, tmp_path: Path) -> None:
    server.script = [doc if isinstance(doc, str) else json.dumps(doc)]
    out = tmp_path / "wf.json"
    budget = ["--budget", "0.00001"] if check == "cost" else []
    p = _cli(env, server, "generate", "where is my order 1001?", "--catalog", str(CATALOG), "--rounds", "1",
             "-o", str(out), "--json", *budget)
    assert p.returncode == 1, p.stderr
    (rnd,) = json.loads(p.stdout)["rounds"]
    assert rnd["check"] == check, rnd
    told = rnd["witness"]
    for w in witness:
        assert any(w in line for line in told), (w, told)
    assert not out.exists()  # a refused workflow is never written
    # the same verdict from `check --catalog` on a file: the gate is usable on any file
    f = tmp_path / "doc.json"
    f.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    c = _cli(env, server, "check", str(f), "--catalog", str(CATALOG), "--json", *budget)
    assert c.returncode == 1 and json.loads(c.stdout)["check"] == check


def test_the_good_workflow_passes_with_a_bound_and_every_check(env: dict[str, str], server: ScriptedServer,
                                                               tmp_path: Path) -> None:
    f = tmp_path / "good.json"
    f.write_text(json.dumps(_chat({"config": {"max_tokens": 128, "max_input_tokens": 1024}})))
    p = _cli(env, server, "check", str(f), "--catalog", str(CATALOG), "--json")
    assert p.returncode == 0, p.stdout
    doc = json.loads(p.stdout)
    assert doc["ok"] and doc["passed"] == ["parse", "schema", "catalog", "arguments", "limits", "spec", "verify",
                                           "references", "cost"]
    assert doc["cost_bound"]["usd"] > 0 and "reply" in doc["cost_bound"]["path"]


def test_a_repaired_workflow_passes_and_runs_and_the_model_was_told_why(env: dict[str, str], server: ScriptedServer,
                                                                         tmp_path: Path) -> None:
    server.script = [json.dumps(_with("lookup", tool="export_database")), json.dumps(GOOD)]
    out, log = tmp_path / "wf.json", tmp_path / "rounds.jsonl"
    p = _cli(env, server, "generate", "where is my order 1001?", "--catalog", str(CATALOG), "--rounds", "3",
             "-o", str(out), "--log", str(log))
    assert p.returncode == 0, p.stderr
    rounds = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["round"], r["ok"], r["check"]) for r in rounds] == [(1, False, "catalog"), (2, True, None)]
    assert server.generate_calls == 2
    second = server.generation_requests()[1]["body"]["messages"]
    assert "refused by the `catalog` check" in second[-1]["content"] and "export_database" in second[-2]["content"]
    assert json.loads(out.read_text()) == GOOD
    run = _cli(env, server, "run", str(out), "--catalog", str(CATALOG), "--input", "question=where is order 1001?",
               "--input", "customer_id=1", "--input", "ticket_id=501", "--db", str(tmp_path / "runs.sqlite"),
               "--trace", str(tmp_path / "t.jsonl"), "--json")
    assert run.returncode == 0, run.stderr
    import sqlite3

    row = sqlite3.connect(env["PETRIFLOW_SUPPORT_DB"]).execute("SELECT status, note FROM tickets WHERE id = 501"
                                                               ).fetchone()
    assert row[0] == "answered" and "1001" in row[1] and "shipped" in row[1]


def test_the_repair_loop_stops_at_its_bound(env: dict[str, str], server: ScriptedServer, tmp_path: Path) -> None:
    server.script = [json.dumps(DEADLOCK)]
    p = _cli(env, server, "generate", "where is my order?", "--catalog", str(CATALOG), "--rounds", "4", "--json")
    assert p.returncode == 1
    assert server.generate_calls == 4 and [r["check"] for r in json.loads(p.stdout)["rounds"]] == ["verify"] * 4


def test_run_with_a_catalog_refuses_before_anything_runs(env: dict[str, str], server: ScriptedServer,
                                                         tmp_path: Path) -> None:
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(_with("record", config={"args": {"status": "deleted", "note": "x"}})))
    p = _cli(env, server, "run", str(f), "--catalog", str(CATALOG), "--input", "question=hi", "--input",
             "customer_id=1", "--db", str(tmp_path / "runs.sqlite"))
    assert p.returncode == 1 and "refused by the `arguments` check" in p.stderr
    assert not server.requests
