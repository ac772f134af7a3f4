"""A run records its workflow's absolute path; an old relative one is looked for beside the store, or refused clearly."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from petriflow.errors import InputError
from petriflow.execute.identity import workflow_file
from petriflow.execute.store import SqliteStore
from petriflow.ui.views import Workflows
from tests.cli_in_process import petriflow

FLOW = """\
name: tiny
steps:
  - {id: say, kind: python, function: 'petriflow.execute.builtins:echo', config: {kwargs: {value: hi}}}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "tiny.yaml").write_text(FLOW)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_run_records_the_absolute_path_of_the_workflow_it_was_given(project: Path) -> None:
    res = petriflow("run", "flows/tiny.yaml", "--input", "x", "--run-id", "R", "--db", "runs.sqlite")
    assert res.code == 0, res.err
    store = SqliteStore(project / "runs.sqlite")
    row = store.get_run("R")
    assert row is not None and row.workflow == str((project / "flows" / "tiny.yaml").resolve())
    assert Path(row.workflow).is_absolute() and row.options["workflow"] == row.workflow
    os.chdir("/")  # from anywhere else the run's workflow is still found
    assert workflow_file(row.workflow, store) == project / "flows" / "tiny.yaml"
    store.close()


def test_an_old_relative_path_is_found_beside_the_store_else_refused_saying_where(project: Path) -> None:
    db = project / "runs" / "runs.sqlite"
    db.parent.mkdir()
    store = SqliteStore(db)
    store.create_run("OLD", workflow="tiny.yaml")  # as runs recorded it before paths were absolute
    store.add_case("OLD", 0, "x")
    with pytest.raises(InputError) as err:
        workflow_file("tiny.yaml", store, run_id="OLD")
    assert "the workflow file 'tiny.yaml' of run OLD is not there" in str(err.value)
    assert str(db.parent / "tiny.yaml") in str(err.value) and "--resume" in str(err.value)
    wf, why = Workflows(store).get("tiny.yaml")  # the console says the same
    assert wf is None and why is not None and "is not there" in why
    res = petriflow("run", "--resume", "OLD", "--db", db)
    assert res.refusal.startswith("petriflow: error: ") and "is not there" in res.refusal
    shutil.copy(project / "flows" / "tiny.yaml", db.parent / "tiny.yaml")  # kept beside the store: found
    assert workflow_file("tiny.yaml", store) == db.parent / "tiny.yaml"
    assert Workflows(store).get("tiny.yaml")[0] is not None
    store.close()
    res = petriflow("run", "--resume", "OLD", "--db", db)
    assert res.code == 0, res.err
