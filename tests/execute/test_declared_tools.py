"""Tools declared in the workflow file, functions resolved next to it, and which exceptions are retried.

Each workflow lives in a temporary directory with its own Python module and
is run from another directory, through the CLI: what a user does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MODULE = '''
CALLS = {"n": 0}

def lookup(order_id, idempotency_key=None):
    return {"order": order_id, "status": "shipped"}

def flaky(inputs):
    CALLS["n"] += 1
    if CALLS["n"] < 3:
        raise ConnectionError("reset by peer")
    return "ok after %d" % CALLS["n"]

class Transient(Exception):
    pass

def custom(inputs):
    CALLS["n"] += 1
    if CALLS["n"] < 2:
        raise Transient("try again")
    return "ok"

def custom_tool(query):
    CALLS["n"] += 1
    if CALLS["n"] < 3:
        raise Transient("try again")
    return "ok after %d" % CALLS["n"]
'''


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "petriflow", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=120)


def _workflow(tmp_path: Path, body: str) -> Path:
    d = tmp_path / "flow"
    d.mkdir()
    (d / "flowtools.py").write_text(MODULE)
    (d / "wf.yaml").write_text(body)
    (tmp_path / "elsewhere").mkdir()
    return d / "wf.yaml"


def _run(tmp_path: Path, wf: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _cli("run", str(wf), "--input", "x", "--db", str(tmp_path / "runs.sqlite"), "--json", *extra,
                cwd=tmp_path / "elsewhere")


TOOL_WF = """
name: declared
tools:
  lookup_order:
    function: flowtools:lookup
    schema: {type: object, required: [order_id], properties: {order_id: {type: integer}}}
    retry_on: [ConnectionError]
steps:
  - {id: look, kind: tool, tool: lookup_order, config: {args: {order_id: ARG}}}
"""


def test_a_declared_tool_runs_through_the_cli_from_another_directory(tmp_path: Path) -> None:
    wf = _workflow(tmp_path, TOOL_WF.replace("ARG", "42"))
    p = _run(tmp_path, wf)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["cases"][0]["output"] == {"order": 42, "status": "shipped"}


def test_arguments_are_checked_against_the_tool_schema_before_the_call(tmp_path: Path) -> None:
    wf = _workflow(tmp_path, TOOL_WF.replace("ARG", "'not a number'"))
    p = _run(tmp_path, wf)
    assert p.returncode != 0
    assert "bad arguments" in p.stdout + p.stderr


def test_an_unknown_tool_callable_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    wf = _workflow(tmp_path, TOOL_WF.replace("flowtools:lookup", "flowtools:nosuch").replace("ARG", "1"))
    p = _run(tmp_path, wf)
    assert p.returncode == 2
    assert f"{wf}:5" in p.stderr and "nosuch" in p.stderr
    assert "Traceback" not in p.stderr


def test_a_python_step_connection_error_is_retried(tmp_path: Path) -> None:
    wf = _workflow(tmp_path, """
name: flaky
steps:
  - {id: f, kind: python, function: flowtools:flaky, retry: {max_attempts: 3, backoff: 0}}
""")
    p = _run(tmp_path, wf)
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout)["cases"][0]["output"] == "ok after 3"


def test_retry_on_names_which_exceptions_are_retried(tmp_path: Path) -> None:
    body = """
name: custom
steps:
  - {id: f, kind: python, function: flowtools:custom, retry: {max_attempts: 3, backoff: 0ON}}
"""
    wf = _workflow(tmp_path, body.replace("ON", ", on: ['flowtools:Transient']"))
    assert _run(tmp_path, wf).returncode == 0
    (tmp_path / "runs.sqlite").unlink()
    wf.write_text(body.replace("ON", ""))  # not listed: fatal, one attempt
    p = _run(tmp_path, wf)
    assert p.returncode == 1
    assert "failed after 1 attempt" in p.stdout


def test_a_tool_steps_own_retry_on_is_obeyed(tmp_path: Path) -> None:
    body = """
name: toolretry
tools:
  t: {function: "flowtools:custom_tool", retry_on: []}
steps:
  - {id: f, kind: tool, tool: t, retry: {max_attempts: 3, backoff: 0ON}}
"""
    wf = _workflow(tmp_path, body.replace("ON", ", on: ['flowtools:Transient']"))
    p = _run(tmp_path, wf)
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout)["cases"][0]["output"] == "ok after 3"
    (tmp_path / "runs.sqlite").unlink()
    wf.write_text(body.replace("ON", ""))  # neither the tool nor the step lists it: fatal, one attempt
    p = _run(tmp_path, wf)
    assert p.returncode == 1 and "failed after 1 attempt" in p.stdout


def test_check_resolves_declared_tools_and_their_schemas(tmp_path: Path) -> None:
    wf = _workflow(tmp_path, TOOL_WF.replace("ARG", "1"))
    assert _cli("check", str(wf), cwd=tmp_path / "elsewhere").returncode == 0
    wf.write_text(TOOL_WF.replace("flowtools:lookup", "flowtools:nosuch").replace("ARG", "1"))
    p = _cli("check", str(wf), cwd=tmp_path / "elsewhere")
    assert p.returncode == 2 and f"{wf}:5" in p.stderr and "nosuch" in p.stderr and "Traceback" not in p.stderr
    wf.write_text(TOOL_WF.replace("{type: integer}", "{type: 12}").replace("ARG", "1"))
    p = _cli("check", str(wf), cwd=tmp_path / "elsewhere")
    assert p.returncode == 2 and "not a valid JSON Schema" in p.stderr and "Traceback" not in p.stderr
