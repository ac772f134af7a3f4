"""The checkpoint store: what is committed is there for the next process, and answers cross processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from petriflow.errors import ExecutionError, InputError
from petriflow.execute.store import Checkpoint, MemoryStore, SqliteStore


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_runs_cases_steps_answers_and_tools_round_trip(kind: str, tmp_path: Path) -> None:
    store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "s.sqlite")
    store.create_run("R", workflow="wf.yaml", options={"budget": 0.5})
    store.add_case("R", 0, {"question": "q"})
    store.add_case("R", 1, "plain")
    store.save_step("R", 0, "a#1", Checkpoint("a", "code", {"x": [1, 2]}))
    store.save_step("R", 0, "a#1/0", Checkpoint("a_fb", "", "item"))
    assert store.load_steps("R", 0) == {"a#1": Checkpoint("a", "code", {"x": [1, 2]}), "a#1/0": Checkpoint("a_fb", "", "item")}
    assert store.load_steps("R", 1) == {}
    store.finish_case("R", 0, status="ok", output="done", error=None)
    assert store.get_run("R").options == {"budget": 0.5} and store.get_run("nope") is None
    assert [(c.case, c.input, c.status) for c in store.cases("R")] == [(0, {"question": "q"}, "ok"), (1, "plain", "pending")]
    assert store.get_answer("R", "review", 0) is None
    store.answer("R", "review", "for all")
    store.answer("R", "review", "for case 1", case=1)
    assert store.get_answer("R", "review", 0) == "for all" and store.get_answer("R", "review", 1) == "for case 1"
    assert store.tool_result("k") == (False, None)
    store.save_tool_result("k", ["r"])
    assert store.tool_result("k") == (True, ["r"])


def test_sqlite_is_in_wal_mode_and_another_process_sees_each_commit(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = SqliteStore(path)
    store.create_run("R", workflow="w")
    store.add_case("R", 0, "q")
    store.save_step("R", 0, "a#1", Checkpoint("a", "", "out"))
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    code = ("from petriflow.execute.store import SqliteStore; import sys; s = SqliteStore(sys.argv[1]); "
            "print(s.load_steps('R', 0)['a#1'].output); s.answer('R', 'h', 'yes')")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "out" and store.get_answer("R", "h", 0) == "yes"


def test_a_file_that_is_not_a_store_is_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "x.sqlite"
    bad.write_text("this is not sqlite" * 100)
    with pytest.raises(InputError, match="checkpoint store"):
        SqliteStore(bad)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize(("output", "named"), [
    ({1, 2}, "set"), ((1, 2), "tuple"), ({"a": {"b": {3}}}, "set (at ['a']['b'])"),
    ({1: "x"}, "dict with a int key"), (Checkpoint("a", "", 1), "Checkpoint"),
])
def test_an_output_json_would_change_is_refused_when_committed(kind: str, output: object, named: str,
                                                               tmp_path: Path) -> None:
    """A resumed run reads outputs back from JSON; what JSON changes must not be committed as if it were the same."""
    store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "s.sqlite")
    with pytest.raises(ExecutionError, match="cannot be checkpointed") as info:
        store.save_step("R", 0, "a#1", Checkpoint("a", "", output))
    assert f"step 'a' returned a {named}" in str(info.value)
    assert store.load_steps("R", 0) == {}


def test_json_data_including_nan_is_committed_and_read_back_equal(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    value = {"a": [1, 2.5, "x", None, True, {"b": []}], "n": float("nan")}
    store.save_step("R", 0, "a#1", Checkpoint("a", "", value))
    back = store.load_steps("R", 0)["a#1"].output
    assert back["a"] == value["a"] and back["n"] != back["n"]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_step_returning_a_set_fails_its_case_with_the_checkpoint_message(kind: str, tmp_path: Path) -> None:
    import asyncio

    from petriflow.execute import Executor, plan
    from petriflow.spec import WorkflowBuilder

    wf = (WorkflowBuilder("sets").step("a", kind="python", function="builtins:set")
          .step("b", kind="python", function="builtins:len", after=["a"]).build())
    store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "s.sqlite")
    res = asyncio.run(Executor(plan(wf), store=store).run_many(["q"], run_id="R"))
    assert not res[0].ok and "step 'a' returned a set, which cannot be checkpointed" in (res[0].error or "")
    assert "b" not in res[0].outputs
