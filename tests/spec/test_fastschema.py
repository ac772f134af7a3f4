"""The quick schema check says what jsonschema says, on the examples and on random mutations of them.

Loading trusts ``_fastschema.is_valid`` when it says "valid", so a wrong
"valid" would let a bad document through: every document here is judged by
both, and they must agree.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petriflow.spec._fastschema import Unsupported, is_valid
from petriflow.spec.schema import WORKFLOW_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "models").glob("*.yaml"))
            if "profile" not in p.name] + [
    {"name": "m", "steps": [{"id": "items", "kind": "tool"},
                            {"id": "each", "kind": "chat", "after": ["items"], "map": {"over": "items", "max": 3},
                             "retry": {"max_attempts": 2}},
                            {"id": "loop", "kind": "chat", "after": ["each"], "loop": {"to": "each", "max": 2}}]},
]
VALIDATOR = jsonschema.Draft202012Validator(WORKFLOW_SCHEMA)

LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**7), st.floats(-2, 2, allow_nan=False),
                   st.sampled_from([1.0, 0.0, 3.0, "", "a", "x y", "a\n", "9z", "chat", "tool", "classify", "when",
                                    "m:f", "_", "a" * 70]),
                   st.lists(st.sampled_from(["a", "b", "a", 1]), max_size=3))


def _paths(doc: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*here, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*here, i))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """An example workflow with a few values replaced, keys dropped or added."""
    doc = copy.deepcopy(draw(st.sampled_from(EXAMPLES)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["set", "drop", "add"]))
        if action == "set":
            parent[path[-1]] = draw(LEAVES)
        elif action == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "p", "max", "id", "when", "to", "after"]))] = draw(LEAVES)
    return doc


@pytest.mark.parametrize("doc", EXAMPLES)
def test_the_examples_are_valid_to_both(doc: Any) -> None:
    assert VALIDATOR.is_valid(doc)
    assert is_valid(doc, WORKFLOW_SCHEMA)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_the_quick_check_agrees_with_jsonschema(doc: Any) -> None:
    assert is_valid(doc, WORKFLOW_SCHEMA) == VALIDATOR.is_valid(doc)


@given(st.sampled_from([True, 1, 1.0, "1", None]), st.sampled_from([{"type": "integer"}, {"type": "number"},
                                                                  {"enum": [1]}, {"enum": [True]},
                                                                  {"type": "array", "uniqueItems": True}]))
def test_json_types_and_equality_as_jsonschema_has_them(value: Any, schema: dict[str, Any]) -> None:
    for doc in (value, [value, 1], [value, True]):
        assert is_valid(doc, schema) == jsonschema.Draft202012Validator(schema).is_valid(doc)


def test_an_unknown_keyword_gives_up_instead_of_guessing() -> None:
    with pytest.raises(Unsupported):
        is_valid("x", {"format": "email"})


def test_too_many_steps_is_one_short_line_that_names_the_limit() -> None:
    from petriflow.errors import SpecError
    from petriflow.limits import MAX_STEPS
    from petriflow.spec.load import from_document

    doc = {"name": "long", "steps": [{"id": f"s{i}", "kind": "tool"} for i in range(MAX_STEPS + 1)]}
    with pytest.raises(SpecError) as err:
        from_document(doc)
    text = str(err.value)
    assert f"{MAX_STEPS + 1:,} items, more than the {MAX_STEPS:,} allowed" in text and len(text) < 300, text
