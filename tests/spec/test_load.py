"""Loading workflows: every kind of bad file gets its own clear error with file, line and step."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from petriflow.errors import SpecError
from petriflow.spec import Workflow, WorkflowBuilder, load, loads

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
name: tiny
resources:
  llm: {capacity: 2}
steps:
  - id: a
    kind: chat
    uses: [llm]
  - id: b
    kind: python
    after: [a]
"""


def test_examples_load() -> None:
    wf = load(ROOT / "models" / "qa_router.yaml")
    assert wf.step_ids == ("classify", "general", "code", "retrieve", "search", "aggregate")
    assert [b.to for b in wf.step("classify").route] == ["general", "code", "retrieve"]
    assert wf.step("aggregate").after_any == ("general", "code", "search")
    assert wf.resources["llm"].capacity == 4
    assert wf.initial_steps() == ("classify",)
    assert wf.terminal_steps() == ("aggregate",)


def test_json_and_yaml_give_the_same_workflow(tmp_path: Path) -> None:
    import yaml

    doc = yaml.safe_load(GOOD)
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(doc, indent=2))
    assert _without_lines(load(path)) == _without_lines(loads(GOOD))


def _without_lines(wf: Workflow) -> Workflow:
    return dataclasses.replace(wf, source=None, steps=tuple(dataclasses.replace(s, line=None) for s in wf.steps))


def test_builder_gives_the_same_workflow_as_the_file() -> None:
    built = (WorkflowBuilder("tiny").resource("llm", capacity=2)
             .step("a", kind="chat", uses=["llm"]).step("b", kind="python", after=["a"]).build())
    from_file = loads(GOOD)
    assert _without_lines(built) == dataclasses.replace(_without_lines(from_file), name="tiny")


def _error(text: str, file: str = "wf.yaml") -> SpecError:
    with pytest.raises(SpecError) as info:
        loads(text, file=file)
    return info.value


@pytest.mark.parametrize(
    ("text", "line", "step", "words"),
    [
        ("name: x\nsteps:\n  - id: a\n    kind: chat\n     after: [b]\n", 5, None, "invalid YAML"),
        (GOOD + "    after_any: [a, zz]\n", 11, "b", "unknown step 'zz'"),
        (GOOD.replace("after: [a]", "after: [nope]"), 10, "b", "unknown step 'nope'"),
        (GOOD + "  - id: a\n    kind: chat\n", 11, "a", "duplicate step id 'a'"),
        (GOOD.replace("kind: python", "kind: pyhton"), 9, "b", "is not one of"),
        (GOOD.replace("capacity: 2", "capacity: two"), 3, None, "is not of type 'integer'"),
        (GOOD.replace("uses: [llm]", "uses: [gpu]"), 7, "a", "unknown resource 'gpu'"),
        (GOOD + "    colour: blue\n", 8, "b", "'colour' was unexpected"),
        ("name: x\nsteps:\n  - id: a\n    kind: chat\n    after: [b]\n  - id: b\n    kind: chat\n    after: [a]\n",
         None, None, "cycle without a bound"),
        ("name: x\nsteps:\n  - id: a\n    kind: classify\n    route:\n      - {to: b, p: 0.5}\n      - {to: c, p: 0.4}\n"
         "  - {id: b, kind: chat}\n  - {id: c, kind: chat}\n", 6, "a", "sum to 0.9"),
        ("name: x\nsteps:\n  - {id: a, kind: chat}\n  - {id: b, kind: chat, after: [a], loop: {to: c, max: 2}}\n"
         "  - {id: c, kind: chat}\n", 4, "b", "not upstream"),
        ("name: x\nsteps:\n  - {id: a, kind: chat, loop: {to: a}}\n", 3, "a", "'max' is a required property"),
        ("name: x\nsteps:\n  - {id: a, kind: chat}\n  - {id: b, kind: chat, map: {over: a, max: 3}}\n", 4, "b",
         "not in `after`"),
        ("", None, None, "empty"),
        ("- 1\n- 2\n", 1, None, "must be a mapping"),
        ("name: x\nsteps:\n  - {id: a, kind: chat, fallback: z}\n", 3, "a", "fallback 'z'"),
        ("name: x\nsteps:\n  - {id: a, kind: chat}\n  - {id: b, kind: chat, after: [a]}\n"
         "  - {id: c, kind: chat, after: [b], loop: {to: a, max: 2}}\n  - {id: d, kind: chat, after: [b]}\n",
         5, "c", "'d' waits on 'b' inside the loop"),
        ("name: x\nsteps:\n  - {id: s, kind: python}\n  - {id: c, kind: classify, route: [{to: a, p: 0.5}, {to: b, p: 0.5}]}\n"
         "  - {id: a, kind: chat}\n  - {id: b, kind: chat}\n  - {id: p, kind: chat, after: [s]}\n",
         6, "b", "'a' and 'b' end the workflow in different branches of route 'c'"),
        ("name: x\nsteps:\n  - id: a\n    kind: chat\n    config:\n      hedge_after: 0.5\n", 6, "a",
         "hedged requests were removed"),
    ],
    ids=["syntax", "after_any-unknown", "dangling", "duplicate", "bad-kind", "wrong-type", "unknown-resource",
         "unknown-key", "cycle", "probabilities", "loop-target", "loop-without-bound", "map-over", "empty",
         "not-mapping", "fallback", "loop-side-exit", "mixed-ends", "hedging"],
)
def test_bad_files_get_their_own_clear_error(text: str, line: int | None, step: str | None, words: str) -> None:
    err = _error(text)
    assert words in str(err)
    assert err.file == "wf.yaml"
    if line is not None:
        assert err.line == line, str(err)
    if step is not None:
        assert err.step == step
    assert err.hint, "every error says what would fix it"
    assert "\n" not in str(err)


def test_json_syntax_error_names_the_json_line() -> None:
    err = _error('{\n  "name": "x",\n  "steps": [\n    {"id": "a" "kind": "chat"}\n  ]\n}\n', file="wf.json")
    assert err.line == 4 and "JSON" in str(err)


def test_missing_and_wrong_suffix_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        load(tmp_path / "nope.yaml")
    (tmp_path / "w.txt").write_text(GOOD)
    with pytest.raises(SpecError, match="unknown workflow file type"):
        load(tmp_path / "w.txt")
