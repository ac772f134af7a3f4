"""Run identity (issue 11 items 2 and 4): a run id is never reused for other inputs or another workflow.

A workflow of Python steps whose module is written into the test's
directory, so "editing the step function" is editing a real file, as a
user would.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from petriflow.errors import InputError
from petriflow.execute import Executor, plan
from petriflow.execute.identity import still_valid, workflow_identity
from petriflow.execute.store import RunStore, open_store
from petriflow.spec import WorkflowBuilder
from petriflow.spec.model import Workflow


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    name = f"steps_{time.time_ns()}"
    path = tmp_path / f"{name}.py"
    path.write_text("CALLS = []\ndef first(inputs):\n    CALLS.append('first')\n    return 'one'\n"
                    "def second(inputs):\n    CALLS.append('second')\n    return inputs['first'] + ' v1'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, path
    sys.modules.pop(name, None)


def _wf(name: str) -> Workflow:
    return (WorkflowBuilder("ident")
            .step("first", kind="python", function=f"{name}:first")
            .step("second", kind="python", function=f"{name}:second", after=["first"])
            .build())


def _run(store: RunStore, wf: Workflow, values: list[str], run_id: str) -> list[object]:
    return asyncio.run(Executor(plan(wf), store=store).run_many(values, run_id=run_id))


def test_reusing_a_run_id_with_other_inputs_is_refused(store_url: str, module: tuple[str, Path]) -> None:
    store = open_store(store_url)
    _run(store, _wf(module[0]), ["first", "second"], "X")
    with pytest.raises(InputError, match="run id 'X' was used with other inputs"):
        _run(store, _wf(module[0]), ["NEW"], "X")
    assert [c.input for c in store.cases("X")] == ["first", "second"]


def test_the_same_run_again_is_its_resume(store_url: str, module: tuple[str, Path]) -> None:
    store = open_store(store_url)
    _run(store, _wf(module[0]), ["q"], "X")
    calls = importlib.import_module(module[0]).CALLS
    again = _run(store, _wf(module[0]), ["q"], "X")
    assert again[0].ok and calls == ["first", "second"]  # type: ignore[attr-defined]


def test_resuming_an_edited_workflow_is_refused_and_from_saved_reuses_what_applies(
        store_url: str, module: tuple[str, Path]) -> None:
    name, path = module
    store = open_store(store_url)
    store.create_run("R", workflow="w", options={"identity": workflow_identity(_wf(name), ["q"]).to_json()})
    store.add_case("R", 0, "q")
    from petriflow.execute.store import Checkpoint
    store.save_step("R", 0, "first#1", Checkpoint("first", "", "saved one"))
    store.save_step("R", 0, "second#1", Checkpoint("second", "", "saved one v1"))
    path.write_text(path.read_text().replace("' v1'", "' v2'"))
    sys.modules.pop(name, None)
    ex = Executor(plan(_wf(name)), store=store)
    with pytest.raises(InputError, match=r"changed since it was made.*--from-saved"):
        asyncio.run(ex.resume("R"))
    # the module is one file: both steps changed, so nothing applies; a workflow-only edit keeps 'first'
    edited = (WorkflowBuilder("ident")
              .step("first", kind="python", function=f"{name}:first")
              .step("second", kind="python", function=f"{name}:second", after=["first"], timeout=5)
              .build())
    old = workflow_identity(_wf(name), ["q"])
    assert still_valid(edited, old, workflow_identity(edited, ["q"])) == {"first"}
    store.create_run("S", workflow="w", options={"identity": old.to_json()})
    store.add_case("S", 0, "q")
    store.save_step("S", 0, "first#1", Checkpoint("first", "", "saved one"))
    store.save_step("S", 0, "second#1", Checkpoint("second", "", "saved one v1"))
    rid, results = asyncio.run(Executor(plan(edited), store=store).rerun("S", as_run_id="T"))
    assert rid == "T" and results[0].output == "saved one v2" and results[0].reused == 1
    assert store.load_steps("S", 0)["second#1"].output == "saved one v1"  # the old run is left as it was
