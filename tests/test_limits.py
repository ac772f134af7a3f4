"""petriflow.limits on its own: budgets refuse what they should and let ordinary documents through."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from petriflow.errors import InputError, PropertyViolation, SpecError, printable
from petriflow.limits import (
    MAX_DEPTH,
    MAX_NODES,
    check_output,
    compose_yaml,
    failing,
    load_json,
    load_yaml,
    number,
    open_database,
    read_bytes,
)
from petriflow.spec import WorkflowBuilder, loads

FAIL = failing(InputError, "here")


def test_anchors_and_aliases_within_the_budget_still_work() -> None:
    wf = loads("name: w\nsteps:\n  - {id: a, kind: chat, retry: &r {max_attempts: 3, backoff: 0.5}}\n"
               "  - {id: b, kind: chat, after: [a], retry: *r}\n")
    assert wf.step("b").retry == wf.step("a").retry


def test_the_alias_budget_counts_expanded_values_exactly() -> None:
    """The mapping, two keys, the list ``b`` and the anchored list (``n + 1``), and ``n + 1`` per alias of it."""
    n = 1000

    def doc(k: int) -> str:
        return "a: &a [" + ",".join(["x"] * n) + "]\nb: [" + ",".join(["*a"] * k) + "]\n"

    k = (MAX_NODES - 4 - (n + 1)) // (n + 1)  # the most aliases that fit
    assert len(load_yaml(doc(k), fail=FAIL)["b"]) == k
    with pytest.raises(InputError, match="more than 500000 values"):
        load_yaml(doc(k + 1), fail=FAIL)


@pytest.mark.parametrize("depth", [MAX_DEPTH, MAX_DEPTH + 1])
def test_depth_is_counted_the_same_in_yaml_and_json(depth: int) -> None:
    text = "[" * depth + "]" * depth
    if depth <= MAX_DEPTH:
        assert compose_yaml(text, fail=FAIL) is not None and load_json(text, fail=FAIL) is not None
        return
    for load in (compose_yaml, load_json):
        with pytest.raises(InputError, match="nest"):
            load(text, fail=FAIL)


def test_brackets_inside_json_strings_do_not_count_as_nesting() -> None:
    assert load_json(json.dumps({"prompt": "[" * 1000 + '"\\"{' * 100}), fail=FAIL)["prompt"].startswith("[[")


@pytest.mark.parametrize("text", ['{"a": 1,}', '{"a": NaN}', '{"a": Infinity}', '[1] [2]'])
def test_json_means_json(text: str) -> None:
    with pytest.raises(InputError, match="invalid JSON"):
        load_json(text, fail=FAIL)


def test_a_json_workflow_reads_json_numbers_and_tolerates_tabs() -> None:
    """YAML 1.1 reads ``5e-1`` as a string and refuses a tab; a .json file is read as JSON."""
    text = ('{\n\t"name": "j",\n\t"steps": [{"id": "c", "kind": "classify", "route": [{"to": "a", "p": 5e-1}, '
            '{"to": "b", "p": 5e-1}]}, {"id": "a", "kind": "chat"}, {"id": "b", "kind": "chat"},\n\t'
            '{"id": "m", "kind": "python", "after_any": ["a", "b"]}]\n}\n')
    assert [b.p for b in loads(text, file="wf.json").step("c").route] == [0.5, 0.5]


def test_a_document_built_in_python_is_checked_too() -> None:
    with pytest.raises(SpecError, match="not a finite number"):
        WorkflowBuilder("w").step("c", kind="classify", route={"a": math.nan, "b": 1.0}) \
            .step("a", kind="chat").step("b", kind="chat").build()
    cyclic: list[object] = []
    cyclic.append(cyclic)
    with pytest.raises(SpecError, match=r"deeper than|more than"):
        WorkflowBuilder("w").step("a", kind="python", config={"x": cyclic}).build()


@pytest.mark.parametrize(("value", "words"), [
    (True, "must be a number"), (math.nan, "finite"), (-1, ">= 0"), (2**4000, "an integer of 4001 bits"),
    ("3", "must be a number"),
])
def test_number_refuses_what_is_not_a_number_in_range(value: object, words: str) -> None:
    with pytest.raises(InputError, match=words):
        number(value, what="x", fail=FAIL)


def test_a_file_over_its_budget_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"x" * 5000)
    assert read_bytes(big, what="f", max_bytes=5000, fail=FAIL) == b"x" * 5000
    with pytest.raises(InputError, match="larger than"):
        read_bytes(big, what="f", max_bytes=4999, fail=FAIL)


def test_an_output_given_by_another_name_is_still_the_input(tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: w\n")
    (tmp_path / "link.yaml").symlink_to(wf)
    with pytest.raises(InputError, match="also an input"):
        check_output(tmp_path / "link.yaml", inputs=[wf], what="profile", fail=FAIL)
    assert check_output(tmp_path / "new.yaml", inputs=[wf], what="profile", fail=FAIL) == tmp_path / "new.yaml"


def test_a_database_path_must_be_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "db")
    with pytest.raises(InputError, match="not a regular file"):
        open_database(tmp_path / "db", what="store", fail=FAIL)
    open_database(tmp_path / "fresh.sqlite", what="store", fail=FAIL).close()


def test_messages_are_printable_but_a_witness_keeps_its_lines() -> None:
    err = SpecError("unknown step 'a\x1b[2J'", file="w\r.yaml", hint="x" * 5000)
    assert "\x1b" not in str(err) and "\r" not in str(err) and len(str(err)) <= 1000
    witness = PropertyViolation("not sound\n  1. `a\x07` runs\n  2. stuck")
    assert str(witness).splitlines() == ["not sound", "  1. `a\\x07` runs", "  2. stuck"]
    assert printable("plain text") == "plain text"
