"""plan(): what was verified is what runs; an unsound workflow cannot be planned."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from petriflow.errors import UnsoundWorkflowError
from petriflow.execute import plan, run_sync
from petriflow.net.lower import lower
from petriflow.spec import WorkflowBuilder, load

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_the_broken_qa_router_is_refused_with_its_witness() -> None:
    with pytest.raises(UnsoundWorkflowError) as err:
        plan(load(MODELS / "qa_router_broken.yaml"))
    text = str(err.value)
    assert "not sound" in text and "`classify` finishes and chooses" in text
    assert "`aggregate` waits for" in text  # the stuck join, in workflow words


def test_a_report_that_is_not_sound_is_refused_without_checking_again() -> None:
    wf = WorkflowBuilder("ok").step("a", kind="python", function="builtins:len").build()
    fake = SimpleNamespace(sound=None, explain=lambda: "WITNESS-TEXT")
    with pytest.raises(UnsoundWorkflowError, match="budget") as err:
        plan(wf, report=fake)
    assert "WITNESS-TEXT" in str(err.value)


def test_the_qa_router_plan_is_read_off_its_net() -> None:
    wf = load(MODELS / "qa_router.yaml")
    dag = plan(wf)
    net = lower(wf)
    assert dag.net == net and dag.report.sound is True
    classify = dag.steps["classify"]
    assert classify.labels == ("general", "code", "search")
    assert {o.transition for o in classify.outcomes} == {t for t in net.transitions if t.startswith("classify.choose")}
    # every transition the plan names is a transition of the verified net
    named = {dag.begin.transition, dag.end.transition}
    for sp in dag.steps.values():
        named |= {e.transition for e in sp.entries} | {o.transition for o in sp.outcomes}
        named |= {t for t in (sp.fail, sp.retry, sp.give_up) if t}
    assert named <= set(net.transitions)
    assert dag.steps["search"].upstream == ("retrieve",) and dag.steps["retrieve"].upstream == ("classify",)
    assert dag.steps["general"].uses == (("llm", 1),)


def test_the_dag_is_immutable() -> None:
    dag = plan(WorkflowBuilder("x").step("a", kind="python", function="builtins:len").build())
    with pytest.raises(dataclasses.FrozenInstanceError):
        dag.net = None  # type: ignore[misc]
    with pytest.raises(TypeError):
        dag.steps["b"] = dag.steps["a"]  # type: ignore[index]


def test_loops_and_maps_are_bounded_parts_of_the_plan() -> None:
    wf = (WorkflowBuilder("lm")
          .step("split", kind="python", function="petriflow.execute.builtins:echo", config={"kwargs": {"value": [1, 2]}})
          .step("each", kind="python", function="petriflow.execute.builtins:echo", after=["split"],
                map={"over": "split", "max": 3})
          .step("check", kind="python", function="petriflow.execute.builtins:echo", after=["each"],
                config={"kwargs": {"value": "retry"}}, loop={"to": "split", "max": 2})
          .build())
    dag = plan(wf)
    each = dag.steps["each"]
    assert each.map is not None and sorted(each.map.collect) == [1, 2, 3]
    assert sorted({e.items for e in each.entries}) == [1, 2, 3]
    assert dag.tracked["check.loop_budget"] == 2
    r = run_sync(dag, "go")
    assert r.ok and r.events.count("check.loop") == 2 and dag.net.is_final(dag.net.replay(r.events))


def test_petriflow_run_refuses_the_unsound_router_and_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from petriflow.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["run", str(MODELS / "qa_router_broken.yaml"), "--input", "hi", "--db", str(tmp_path / "r.sqlite")])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "not sound" in err and "`aggregate` waits for" in err
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(MODELS / "qa_router.yaml"), "--db", str(tmp_path / "r.sqlite")])
    assert exit_.value.code == 2 and "--input" in capsys.readouterr().err
    bad = tmp_path / "in.jsonl"
    bad.write_text('"ok"\n{not json\n')
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(MODELS / "qa_router.yaml"), "--inputs", str(bad), "--db", str(tmp_path / "r.sqlite")])
    assert exit_.value.code == 2 and "in.jsonl:2" in capsys.readouterr().err


def test_petriflow_run_makes_one_case_per_repeated_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``--input a --input b`` runs both cases (it used to keep only the last one)."""
    import json

    from petriflow.cli import main
    from petriflow.execute.store import SqliteStore

    wf = tmp_path / "echo.yaml"
    wf.write_text("name: echo\nsteps:\n  - id: a\n    kind: python\n    function: petriflow.execute.builtins:echo\n")
    db = tmp_path / "r.sqlite"
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(wf), "--input", "first", "--input", "second", "--run-id", "R", "--db", str(db), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert exit_.value.code == 0 and [c["ok"] for c in out["cases"]] == [True, True]
    assert [c.input for c in SqliteStore(db).cases("R")] == ["first", "second"]
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(wf), "--input", "x", "--inputs", str(tmp_path / "in.jsonl"), "--db", str(db)])
    assert exit_.value.code == 2 and "not both" in capsys.readouterr().err


def test_a_fallback_chain_waits_on_its_roots_inputs_as_the_workflow_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """plan asks the workflow (root_of, routers_of) instead of walking the fallback chain itself."""
    from petriflow.spec.model import Workflow

    s = "petriflow.execute.builtins:echo"
    wf = (WorkflowBuilder("fb")
          .step("pick", kind="python", function=s, route=[{"to": "left", "p": 0.5, "when": "l"},
                                                          {"to": "right", "p": 0.5, "when": "r"}])
          .step("left", kind="python", function=s, fallback="left_fb")
          .step("left_fb", kind="python", function=s, fallback="left_fb2")
          .step("left_fb2", kind="python", function=s)
          .step("right", kind="python", function=s)
          .step("join", kind="python", function="petriflow.execute.builtins:first_answer", after_any=["left", "right"])
          .build())
    net = lower(wf)  # lowering asks the workflow too: only plan's own questions are counted
    asked: dict[str, list[str]] = {"root_of": [], "routers_of": []}
    for name in asked:
        real = getattr(Workflow, name)

        def spy(self: Workflow, step_id: str, _real: Any = real, _name: str = name) -> Any:
            asked[_name].append(step_id)
            return _real(self, step_id)

        monkeypatch.setattr(Workflow, name, spy)
    dag = plan(wf, net=net)
    assert {sid: dag.steps[sid].upstream for sid in ("left", "left_fb", "left_fb2")} == dict.fromkeys(
        ("left", "left_fb", "left_fb2"), ("pick",))
    assert dag.steps["left_fb2"].owner == "left_fb" and dag.steps["join"].upstream == ("left", "right")
    assert set(asked["root_of"]) >= {s.id for s in wf.steps} and "left" in asked["routers_of"]
