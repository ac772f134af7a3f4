"""The checkpoint stores: what is committed is there for the next process, and answers cross processes.

One suite for every store: each test that takes ``kind`` runs on the store in
memory, on SQLite and on a private PostgreSQL server (see ``pg_server``).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from petriflow.errors import ExecutionError, InputError
from petriflow.execute.store import Checkpoint, MemoryStore, PostgresStore, SqliteStore, open_store

KINDS = ["memory", "sqlite", "postgres"]


def _store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> MemoryStore:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SqliteStore(tmp_path / "s.sqlite")
    return PostgresStore(request.getfixturevalue("pg_server").database())


@pytest.mark.parametrize("kind", KINDS)
def test_runs_cases_steps_answers_and_tools_round_trip(kind: str, request: pytest.FixtureRequest,
                                                       tmp_path: Path) -> None:
    store = _store(kind, request, tmp_path)
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
    store.save_tool_result("k", ["r2"])
    assert store.tool_result("k") == (True, ["r2"])
    store.save_step("R", 0, "a#1", Checkpoint("a", "again", 3, cost=0.25))  # a step saved again replaces its output
    assert store.load_steps("R", 0)["a#1"] == Checkpoint("a", "again", 3, 0.25)


@pytest.mark.parametrize("kind", KINDS)
def test_answers_per_pass_waiting_and_runs_read_the_same_on_every_store(kind: str, request: pytest.FixtureRequest,
                                                                          tmp_path: Path) -> None:
    store = _store(kind, request, tmp_path)
    store.create_run("old", workflow="w")
    store.create_run("new", workflow="w", options={"x": 1})
    store.create_run("new", workflow="other")  # creating a run again leaves it as it was
    assert [r.run_id for r in store.runs()] == ["new", "old"] and store.get_run("new").workflow == "w"
    store.set_run_status("old", "ok")
    assert store.get_run("old").status == "ok"
    store.answer("new", "h", "every pass")
    store.answer("new", "h", "pass 2", npass=2)
    store.answer("new", "h", "case 3 pass 2", case=3, npass=2)
    assert [store.get_answer("new", "h", c, npass=p) for c, p in ((0, 1), (0, 2), (3, 2), (3, 1))] == [
        "every pass", "pass 2", "case 3 pass 2", "every pass"]
    store.start_waiting("new", 0, "h", 1)
    store.start_waiting("old", 1, "h", 2)
    store.start_waiting("new", 0, "h", 1)  # waiting again keeps the first moment
    assert [(w.run_id, w.case, w.npass) for w in store.waiting()] == [("new", 0, 1), ("old", 1, 2)]
    assert [w.run_id for w in store.waiting("old")] == ["old"]
    store.stop_waiting("new", 0, "h", 1)
    assert [w.run_id for w in store.waiting()] == ["old"]
    store.add_cases("new", ["a", {"b": 2}])
    store.add_cases("new", ["changed", "c"])  # cases added again keep their first input
    assert [(c.case, c.input) for c in store.cases("new")] == [(0, "a"), (1, {"b": 2})]


def test_sqlite_is_in_wal_mode(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "s.sqlite")
    with sqlite3.connect(tmp_path / "s.sqlite") as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_another_process_sees_each_commit(store_url: str) -> None:
    store = open_store(store_url)
    store.create_run("R", workflow="w")
    store.add_case("R", 0, "q")
    store.save_step("R", 0, "a#1", Checkpoint("a", "", "out"))
    code = ("from petriflow.execute.store import open_store; import sys; s = open_store(sys.argv[1]); "
            "print(s.load_steps('R', 0)['a#1'].output); s.answer('R', 'h', 'yes')")
    out = subprocess.run([sys.executable, "-c", code, store_url], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "out" and store.get_answer("R", "h", 0) == "yes"


@pytest.mark.parametrize(("db", "kind"), [("runs.sqlite", SqliteStore), ("sqlite:///runs.sqlite", SqliteStore)])
def test_db_names_the_store_by_path_or_url(db: str, kind: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store(db)
    assert isinstance(store, kind) and store.path == Path("runs.sqlite") and (tmp_path / "runs.sqlite").is_file()
    assert isinstance(open_store("sqlite:///" + str(tmp_path / "abs.sqlite")), SqliteStore)
    assert (tmp_path / "abs.sqlite").is_file()


def test_a_postgres_url_opens_the_postgres_store_and_an_unreachable_one_is_bad_input(pg_server: object,
                                                                                       tmp_path: Path) -> None:
    url = pg_server.database()  # type: ignore[attr-defined]
    assert isinstance(open_store(url), PostgresStore)
    with pytest.raises(InputError, match="cannot connect to the run store") as info:
        open_store(f"postgresql://petriflow:secret@/nowhere?host={tmp_path}")
    assert "secret" not in str(info.value)


def test_a_file_that_is_not_a_store_is_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "x.sqlite"
    bad.write_text("this is not sqlite" * 100)
    with pytest.raises(InputError, match="checkpoint store"):
        SqliteStore(bad)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("output", "named"), [
    ({1, 2}, "set"), ((1, 2), "tuple"), ({"a": {"b": {3}}}, "set (at ['a']['b'])"),
    ({1: "x"}, "dict with a int key"), (Checkpoint("a", "", 1), "Checkpoint"),
])
def test_an_output_json_would_change_is_refused_when_committed(kind: str, output: object, named: str,
                                                               request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A resumed run reads outputs back from JSON; what JSON changes must not be committed as if it were the same."""
    store = _store(kind, request, tmp_path)
    with pytest.raises(ExecutionError, match="cannot be checkpointed") as info:
        store.save_step("R", 0, "a#1", Checkpoint("a", "", output))
    assert f"step 'a' returned a {named}" in str(info.value)
    assert store.load_steps("R", 0) == {}


def test_json_data_including_nan_is_committed_and_read_back_equal(store_url: str) -> None:
    store = open_store(store_url)
    value = {"a": [1, 2.5, "x", None, True, {"b": []}], "n": float("nan")}
    store.save_step("R", 0, "a#1", Checkpoint("a", "", value))
    back = store.load_steps("R", 0)["a#1"].output
    assert back["a"] == value["a"] and back["n"] != back["n"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_step_returning_a_set_fails_its_case_with_the_checkpoint_message(kind: str, request: pytest.FixtureRequest,
                                                                           tmp_path: Path) -> None:
    import asyncio

    from petriflow.execute import Executor, plan
    from petriflow.spec import WorkflowBuilder

    wf = (WorkflowBuilder("sets").step("a", kind="python", function="builtins:set")
          .step("b", kind="python", function="builtins:len", after=["a"]).build())
    store = _store(kind, request, tmp_path)
    res = asyncio.run(Executor(plan(wf), store=store).run_many(["q"], run_id="R"))
    assert not res[0].ok and "step 'a' returned a set, which cannot be checkpointed" in (res[0].error or "")
    assert "b" not in res[0].outputs
