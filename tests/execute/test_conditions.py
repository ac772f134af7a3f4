"""Conditions on outputs in the executor: `when:` expressions over output, case and loop_pass pick the branch,
`else` is the default, two true conditions or none fail the step naming the branches, a loop's `when` may be an
expression, and a classify step's output carries its label and score."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from petriflow.execute import Executor, TraceWriter, plan
from petriflow.execute.client import Endpoint
from petriflow.spec import WorkflowBuilder, loads

M = "tests.execute.condition_steps"


def _routed(name: str, *routes: dict[str, Any]) -> str:
    """A workflow whose step `pick` outputs the case's ``out`` and takes one of ``routes`` to a step of that name.

    Every branch's step records what it saw, and `out` (first_answer, after any branch) names the branch
    taken in its ``route``: the tests below differ only in their routes, so that is all they spell out.
    """
    targets = [r["to"] for r in routes]
    branches = "".join(f"  - {{id: {t}, kind: python, function: {M}:seen}}\n" for t in targets)
    return (f"name: {name}\nsteps:\n  - id: pick\n    kind: python\n    function: {M}:scored\n    route:\n"
            + "".join(f"      - {json.dumps(r)}\n" for r in routes) + branches
            + f"  - {{id: out, kind: python, function: petriflow.execute.builtins:first_answer, "
              f"after_any: [{', '.join(targets)}]}}\n")


MODERATE = _routed(
    "moderate",
    {"to": "review", "p": 0.3, "when": "output.score < 0.6 or output.label == 'unsure'", "name": "low"},
    {"to": "approve", "p": 0.5, "when": "output.score >= 0.6 and output.label == 'ok'"},
    {"to": "reject", "p": 0.2, "when": "else"},
)


def _run(text: str, values: list[Any], trace: TraceWriter | None = None) -> list[Any]:
    ex = Executor(plan(loads(text)), trace=trace)
    return asyncio.run(ex.run_many(values, concurrency=4))


def test_expressions_pick_the_branch_and_else_takes_the_rest() -> None:
    outs = [{"score": 0.2, "label": "ok"}, {"score": 0.9, "label": "ok"}, {"score": 0.9, "label": "spam"},
            {"score": 0.9, "label": "unsure"}, json.dumps({"score": 0.7, "label": "ok"})]
    trace = TraceWriter(keep=True)
    results = _run(MODERATE, [{"out": o} for o in outs], trace)
    assert all(r.ok for r in results), [r.error for r in results]
    assert [r.output["route"] for r in results] == ["review", "approve", "reject", "review", "approve"]
    branches = [t.branch for t in sorted(trace.records, key=lambda t: t.case) if t.step == "pick"]
    assert branches == ["low", "approve", "reject", "low", "approve"]  # name, else the target's id


def test_case_fields_and_the_text_output_are_readable() -> None:
    text = _routed("lang", {"to": "fr", "p": 0.5, "when": "case.lang == 'fr' and output == 'x'"},
                   {"to": "en", "p": 0.5, "when": "else"})
    results = _run(text, [{"lang": "fr", "out": "x"}, {"lang": "fr", "out": "y"}, {"lang": "en", "out": "x"}])
    assert [r.output["route"] for r in results] == ["fr", "en", "en"]


def test_two_true_conditions_fail_the_step_naming_both() -> None:
    text = _routed("both", {"to": "a", "p": 0.4, "when": "'refund' in output.words"},
                   {"to": "b", "p": 0.4, "when": "'angry' in output.words"}, {"to": "c", "p": 0.2, "when": "else"})
    ok, both, missing = _run(text, [{"out": {"words": ["refund"]}}, {"out": {"words": ["refund", "angry"]}},
                                    {"out": {"other": 1}}])
    assert ok.ok and ok.output["route"] == "a"
    assert not both.ok and "'a', 'b' all hold" in both.error and "exactly one" in both.error
    assert not missing.ok and "cannot be evaluated" in missing.error and "words" in missing.error


def test_a_label_route_with_else_takes_else_instead_of_failing() -> None:
    text = _routed("lab", {"to": "a", "p": 0.5, "when": "approved"}, {"to": "b", "p": 0.5, "when": "else"})
    results = _run(text, [{"out": "approved"}, {"out": "something else"}])
    assert [r.output["route"] for r in results] == ["a", "b"]


def test_a_loop_when_may_be_an_expression() -> None:
    text = f"""
name: loopexpr
steps:
  - {{id: start, kind: python, function: {M}:seen}}
  - id: step
    kind: python
    function: {M}:count
    after: [start]
    loop: {{to: step, max: 5, p: 0.5, when: "output.n < case.passes"}}
"""
    results = _run(text, [{"passes": 1}, {"passes": 3}, {"passes": 9}])
    assert [r.output["n"] for r in results] == [1, 3, 6]  # at most max (5) extra passes


def test_a_classify_step_gives_label_and_score_and_a_condition_routes_on_it(fault_server: Any) -> None:
    wf = (WorkflowBuilder("cls")
          .model("e", name="fault-model", base_url="http://unused/v1", kind="embedding")
          .step("intent", kind="classify", model="e",
                labels={"code": ["python list code", "python function code"],
                        "weather": ["rain weather today", "sunny weather forecast"]},
                route=[{"to": "human", "p": 0.3, "when": "output.score < 0.6"},
                       {"to": "coder", "p": 0.4, "when": "output.score >= 0.6 and output.label == 'code'"},
                       {"to": "forecaster", "p": 0.3, "when": "output.score >= 0.6 and output.label == 'weather'"}])
          .step("human", kind="python", function=f"{M}:seen")
          .step("coder", kind="python", function=f"{M}:seen")
          .step("forecaster", kind="python", function=f"{M}:seen")
          .step("out", kind="python", function="petriflow.execute.builtins:first_answer",
                after_any=["human", "coder", "forecaster"])
          .build())
    ep = {"e": Endpoint(base_url=fault_server.base_url, model="fault-model", kind="embedding", api_key="x")}
    questions = ["python code for a list python function", "weather rain sunny forecast today", "zebra"]
    results = asyncio.run(Executor(plan(wf), endpoints=ep).run_many(questions, concurrency=1))
    labels = [r.outputs["intent"] for r in results]
    assert all(set(x) == {"label", "score"} and 0.0 < x["score"] <= 1.0 for x in labels)
    assert [x["label"] for x in labels[:2]] == ["code", "weather"] and labels[0]["score"] > 0.6
    assert labels[2]["score"] == pytest.approx(0.5, abs=0.05)  # shares no word with any example: a coin toss
    assert [r.output["route"] for r in results] == ["coder", "forecaster", "human"]
