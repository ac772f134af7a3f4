"""The CLI as a user meets it: exit codes, one-line errors, the QA-router verdicts, PNML in and out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import _conformance as conformance
import pytest

ROOT = Path(__file__).resolve().parents[1]


def petriflow(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "petriflow", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_check_passes_the_qa_router() -> None:
    res = petriflow("check", "models/qa_router.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "sound          yes" in res.stdout


def test_check_fails_the_broken_qa_router_with_a_witness_in_steps() -> None:
    res = petriflow("check", "models/qa_router_broken.yaml")
    assert res.returncode == 1
    out = res.stdout
    assert "`classify` chose `" in out
    chosen = out.split("`classify` chose `")[1].split("`")[0]
    others = sorted({"general", "code", "search"} - {chosen})
    assert f"`aggregate` waits for `{others[0]}` and `{others[1]}`, which can no longer run" in out
    assert "1. the workflow starts" in out


def test_check_json_contract() -> None:
    res = petriflow("check", "models/qa_router_broken.yaml", "--json")
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    for key, kind in [("net", dict), ("states", int), ("edges", int), ("dead_markings", int), ("deadlock", bool),
                      ("deadlock_trace", list), ("bounded", bool), ("bound", int), ("safe", bool), ("sound", bool),
                      ("dead_transitions", list), ("live", bool), ("seconds", float)]:
        assert isinstance(doc[key], kind), key
    assert set(doc["net"]) >= {"places", "transitions", "arcs"}
    assert doc["deadlock"] is True and doc["sound"] is False
    assert doc["deadlock_trace"][0] == "begin" and doc["deadlock_trace"][-1].endswith(".finish")


def test_budget_exceeded_exits_3() -> None:
    res = petriflow("check", "models/qa_router.yaml", "--max-states", "5", "--json")
    assert res.returncode == 3, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["states"] is None and doc["complete"] is False


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("check", "missing.yaml"), "no such file"),
        (("check", "dev.py"), "unknown workflow file type"),
        (("draw", "models/qa_router.yaml", "-o", "x.gif"), "unknown suffix"),
        (("lower", "models/qa_router.yaml", "-o", "x.txt"), "not a .pnml file"),
        (("check", "models/qa_router.yaml", "--final", "nowhere=1"), "unknown place"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], words: str, tmp_path: Path) -> None:
    res = petriflow(*args)
    assert res.returncode == 2, res.stderr
    assert words in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_bad_workflow_file_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps:\n  - id: a\n    kind: chat\n  - id: b\n    kind: chat\n    after: [nope]\n")
    res = petriflow("check", str(bad))
    assert res.returncode == 2
    assert f"{bad}:7, step 'b'" in res.stderr and "unknown step 'nope'" in res.stderr


def test_schema_is_valid_json_schema() -> None:
    import jsonschema

    res = petriflow("schema")
    assert res.returncode == 0
    schema = json.loads(res.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    import yaml

    jsonschema.validate(yaml.safe_load((ROOT / "models" / "qa_router.yaml").read_text()), schema)


def test_lower_writes_pnml_that_checks_the_same(tmp_path: Path) -> None:
    out = tmp_path / "qa.pnml"
    assert petriflow("lower", "models/qa_router_broken.yaml", "-o", str(out)).returncode == 0
    direct = json.loads(petriflow("check", "models/qa_router_broken.yaml", "--json").stdout)
    via_pnml = json.loads(petriflow("check", str(out), "--json").stdout)
    for key in ("states", "edges", "dead_markings", "deadlock", "bound", "sound"):
        assert direct[key] == via_pnml[key], key


@pytest.mark.parametrize("suffix", [".png", ".svg", ".mmd", ".dot"])
def test_draw_every_format(suffix: str, tmp_path: Path) -> None:
    out = tmp_path / f"broken{suffix}"
    res = petriflow("draw", "models/qa_router_broken.yaml", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert out.stat().st_size > 200


@pytest.mark.parametrize("row", [r for r in conformance.rows() if int(r["reachable_states"]) < 200_000],
                         ids=lambda r: r["model"])
def test_check_agrees_with_the_conformance_table(row: dict[str, str]) -> None:
    res = petriflow("check", str(conformance.path(row["model"])), "--json")
    doc = json.loads(res.stdout)
    assert doc["states"] == int(row["reachable_states"])
    assert doc["edges"] == int(row["state_graph_edges"])
    assert doc["deadlock"] == (row["deadlock"] == "true")
    assert doc["bound"] == int(row["max_tokens_per_place"])
    assert doc["dead_markings"] == int(row["deadlock_markings"])
    assert doc["live"] == (row["live"] == "true")
    assert (doc["dead_transitions"] == []) == (row["quasi_live"] == "true")
    assert res.returncode == (1 if doc["deadlock"] or not doc["live"] else 0)
