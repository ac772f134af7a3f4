"""One rule for what a step sees: the steps finished on every path to it. Checked against enumerating every
combination of route choices (an independent oracle); `check` fails on a template that may read a missing step,
with the path; Python inputs and templates follow the same rule; `{after_any}` names the XOR-join's branch."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from petriflow.errors import SpecError
from petriflow.execute import Executor, plan
from petriflow.spec import load, loads
from petriflow.spec.visibility import problems, visible
from tests.cli_in_process import petriflow
from tests.spec._visibility_oracle import seen_in_every_case

F = "petriflow.execute.builtins:echo"

SUPPORT = f"""
name: support
steps:
  - id: classify
    kind: python
    function: {F}
    config: {{kwargs: {{value: order}}}}
    route:
      - {{to: general, p: 0.5, when: general}}
      - {{to: lookup, p: 0.5, when: order}}
  - {{id: general, kind: python, function: {F}}}
  - {{id: lookup, kind: python, function: {F}}}
  - {{id: check_inventory, kind: python, function: {F}, after: [lookup]}}
  - id: aggregate
    kind: chat
    after_any: [general, check_inventory]
    prompt: "Reply using {{check_inventory}}: {{question}}"
"""


DIAMONDS = [
    SUPPORT,
    f"""
name: d
steps:
  - {{id: a, kind: python, function: {F}}}
  - {{id: b, kind: python, function: {F}, after: [a], route: [{{to: c, p: 0.5}}, {{to: d, p: 0.5}}]}}
  - {{id: c, kind: python, function: {F}}}
  - {{id: d, kind: python, function: {F}, route: [{{to: e, p: 0.5}}, {{to: f, p: 0.5}}]}}
  - {{id: e, kind: python, function: {F}}}
  - {{id: f, kind: python, function: {F}}}
  - {{id: g, kind: python, function: {F}, after_any: [e, f]}}
  - {{id: h, kind: python, function: {F}, after_any: [c, g]}}
  - {{id: p, kind: python, function: {F}, after: [a]}}
  - {{id: z, kind: python, function: {F}, after: [h, p]}}
""",
]


@pytest.mark.parametrize("text", [*DIAMONDS, Path("models/qa_router.yaml").read_text()])
def test_what_a_step_sees_is_what_ran_before_it_in_every_case(text: str) -> None:
    wf = loads(text)
    oracle = seen_in_every_case(wf)
    for s in wf.steps:
        assert s.id in oracle, s.id
        assert visible(wf, s.id) == oracle[s.id], s.id


def test_a_prompt_naming_a_step_of_one_branch_fails_check_with_the_path(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text(SUPPORT)
    [ref] = problems(loads(SUPPORT))
    assert ref.message == ("step 'aggregate': the prompt names '{check_inventory}', which may not have run: "
                           "classify -> general -> aggregate: `check_inventory` did not run")
    res = petriflow("check", tmp_path / "w.yaml")
    assert res.code == 1 and "classify -> general -> aggregate" in res.out
    res = petriflow("check", "--json", tmp_path / "w.yaml")
    doc = json.loads(res.out)
    assert res.code == 1 and doc["references"] is False and doc["sound"] is True
    assert doc["reference_problems"][0]["path"] == ["classify", "general", "aggregate"]
    with pytest.raises(SpecError, match="check_inventory"):
        plan(loads(SUPPORT))
    fixed = SUPPORT.replace("{check_inventory}", "{after_any} (from {after_any_step})")
    (tmp_path / "w.yaml").write_text(fixed)
    res = petriflow("check", "--json", tmp_path / "w.yaml")
    assert res.code == 0 and json.loads(res.out)["references"] is True


def test_python_inputs_hold_every_step_it_sees_not_only_the_direct_ones() -> None:
    text = f"""
name: chain
steps:
  - {{id: a, kind: python, function: {F}, config: {{kwargs: {{value: A}}}}}}
  - {{id: side, kind: python, function: {F}, config: {{kwargs: {{value: S}}}}}}
  - {{id: b, kind: python, function: {F}, after: [a], config: {{kwargs: {{value: B}}}}}}
  - {{id: c, kind: python, function: {F}, after: [b]}}
  - {{id: last, kind: python, function: {F}, after: [c, side], config: {{kwargs: {{value: E}}}}}}
"""
    res = asyncio.run(Executor(plan(loads(text))).run("q"))
    assert res.ok, res.error
    assert res.outputs["c"] == {"a": "A", "b": "B"}  # a is seen through b; side may still be running: not seen


def test_after_any_names_the_branch_that_ran() -> None:
    text = f"""
name: xor
steps:
  - id: pick
    kind: python
    function: {F}
    config: {{kwargs: {{value: right}}}}
    route: [{{to: left, p: 0.5, when: left}}, {{to: right, p: 0.5, when: right}}]
  - {{id: left, kind: python, function: {F}, config: {{kwargs: {{value: L}}}}}}
  - {{id: right, kind: python, function: {F}, config: {{kwargs: {{value: R}}}}}}
  - {{id: join, kind: python, function: {F}, after_any: [left, right]}}
  - {{id: answer, kind: python, function: petriflow.execute.builtins:first_answer, after_any: [left, right]}}
"""
    res = asyncio.run(Executor(plan(loads(text))).run("q"))
    assert res.ok, res.error
    assert res.outputs["join"] == {"pick": "right", "after_any": "R", "after_any_step": "right"}
    assert res.outputs["answer"] == {"answer": "R", "route": "right"}


def test_the_shipped_workflows_read_only_what_they_see() -> None:
    for p in sorted(Path("models").glob("*.yaml")):
        try:
            wf = load(p)
        except SpecError:
            continue  # the broken variants
        assert problems(wf) == [], p
