"""The draft format: its schema bounds every answer, it reaches nothing outside the catalog, and the gate
still checks the expanded workflow in full (petriflow.generate.draft)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from petriflow.generate import gate, load_catalog
from petriflow.generate.catalog import Catalog
from petriflow.generate.draft import (
    chosen_steps,
    draft_ids,
    draft_schema,
    draft_tokens,
    expand,
    expand_text,
    plan_schema,
)
from petriflow.spec.load import from_document

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "models" / "customer_support" / "catalog.yaml"

ORDER: dict[str, Any] = {"name": "order", "steps": {
    "find_order": {"route": {"found": "lookup_order", "missing": "ask", "give_up": "agent"}},
    "ask": {}, "clarify": {"after": "ask"}, "heard": {"after": "clarify", "loop": {"to": "find_order", "max": 2}},
    "lookup_order": {"args": {"order_id": "{find_order[order_id]}"}}, "facts": {"after": "lookup_order"},
    "reply": {"after": "facts"}, "agent": {}}}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(CATALOG)


def _walk(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(schema, dict):
        yield path, schema
        for k, v in schema.items():
            yield from _walk(v, f"{path}/{k}")
    elif isinstance(schema, list):
        for i, v in enumerate(schema):
            yield from _walk(v, f"{path}/{i}")


def test_every_example_of_the_catalog_is_a_draft_the_gate_passes(catalog: Catalog) -> None:
    assert len(catalog.examples) == 3
    for example in [*catalog.examples, ORDER]:
        jsonschema.validate(example, draft_schema(catalog))
        verdict = gate(expand(example, catalog), catalog)
        assert verdict.ok, (example["name"], verdict.message())


def test_the_draft_schema_bounds_every_string_number_and_array(catalog: Catalog) -> None:
    """What the grammar enforces: no string without a length in its pattern (llama.cpp's grammar keeps a
    pattern, not a maxLength beside it), no float (its bounds are not enforced), every array bounded."""
    for chosen in (None, ("facts", "reply"), tuple(draft_ids(catalog))):
        schema = draft_schema(catalog, chosen)
        jsonschema.Draft202012Validator.check_schema(schema)
        for where, node in _walk(schema):
            kind = node.get("type")
            if kind == "string":
                assert str(node.get("pattern", "")).endswith("}$"), where
            assert kind != "number", where
            if kind == "array":
                assert "maxItems" in node, where
            if kind == "integer":
                assert "maximum" in node and "minimum" in node, where
        assert 0 < draft_tokens(catalog, chosen) < 5000


def test_the_token_bound_holds_for_a_long_answer_with_the_most_whitespace(catalog: Catalog) -> None:
    """An answer as long as the schema lets it be (every step, 60-character notes, 22 characters of
    whitespace at every separator) still fits draft_tokens counted one token a character."""
    doc = copy.deepcopy(ORDER)
    doc["steps"]["update_ticket"] = {"after": "facts", "args": {"status": "answered", "note": "x" * 60}}
    doc["steps"]["check_inventory"] = {"after": "update_ticket", "args": {"query": "é" * 60}}
    ordered = {"name": "a" * 24, "steps": {i: doc["steps"][i] for i in draft_ids(catalog) if i in doc["steps"]}}
    jsonschema.validate(ordered, draft_schema(catalog))
    text = json.dumps(ordered, indent=20, ensure_ascii=False)
    assert len(text.encode()) <= draft_tokens(catalog)


def test_a_route_names_every_label_once_and_its_shares_sum_to_one(catalog: Catalog) -> None:
    route = draft_schema(catalog)["properties"]["steps"]["properties"]["find_order"]["properties"]["route"]
    assert route["required"] == ["found", "missing", "give_up"] and route["additionalProperties"] is False
    doc = expand(ORDER, catalog)
    (find,) = [s for s in doc["steps"] if s["id"] == "find_order"]
    assert [b["when"] for b in find["route"]] == ["found", "missing", "give_up"]
    assert sum(b["p"] for b in find["route"]) == pytest.approx(1.0, abs=1e-12)
    wf = from_document({**doc, "models": dict(catalog.document["models"]), "tools": dict(catalog.document["tools"])})
    assert {b.to for b in wf.step("find_order").route} == {"lookup_order", "ask", "agent"}
    missing = copy.deepcopy(ORDER)
    del missing["steps"]["find_order"]["route"]["give_up"]  # a label left out: the decoder cannot write it
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(missing, draft_schema(catalog))


def test_a_literal_argument_is_never_a_template(catalog: Catalog) -> None:
    doc = copy.deepcopy(ORDER)
    doc["steps"]["update_ticket"] = {"after": "facts", "args": {"status": "answered",
                                                                 "note": "{look_up_order[query]}"}}  # SmolLM2's
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, draft_schema(catalog))
    doc["steps"]["update_ticket"]["args"]["note"] = "{facts}"  # a template of the enum is fine
    jsonschema.validate(doc, draft_schema(catalog))


def test_what_is_not_a_draft_reaches_the_gate_as_written(catalog: Catalog) -> None:
    full = {"name": "x", "steps": [{"id": "a", "kind": "tool", "tool": "export_database"}]}
    assert expand(full, catalog) is full and expand_text(json.dumps(full), catalog) == json.dumps(full)
    assert expand_text('{"name": "x", "steps": {"fac', catalog) == '{"name": "x", "steps": {"fac'
    assert gate(expand_text('{"name": "x", "steps": {"fac', catalog), catalog).check == "parse"
    invented = {"name": "x", "steps": {"export_database": {}, "reply": {"after": "facts"}}}
    v = gate(expand(invented, catalog), catalog)
    assert (v.check, v.witness) == ("schema", ("step 'export_database'",))
    extra = copy.deepcopy(ORDER)
    extra["steps"]["facts"]["tools"] = {"shell": {}}  # a key the draft has not: kept, and refused by name
    assert gate(expand(extra, catalog), catalog).check == "schema"
    dangling = {"name": "x", "steps": {"reply": {"after": "facts"}}}  # expansion adds no step
    assert gate(expand(dangling, catalog), catalog).check == "catalog"


def test_a_plan_fixes_the_steps_the_draft_must_write_and_may_name(catalog: Catalog) -> None:
    jsonschema.validate({"steps": ["reply"]}, plan_schema(catalog))
    assert chosen_steps({"steps": ["reply"]}, catalog) == ("facts", "reply")  # a reply brings what it reads
    assert chosen_steps({"steps": ["agent", "update_ticket", "agent"]}, catalog) == ("update_ticket", "agent")
    for bad in (None, {"steps": []}, {"steps": ["export_database"]}, {"plan": ["reply"]}, ["reply"]):
        assert chosen_steps(bad, catalog) is None
    chosen = ("find_order", "lookup_order", "agent")
    schema = draft_schema(catalog, chosen)
    steps = schema["properties"]["steps"]
    assert steps["required"] == list(chosen) and list(steps["properties"]) == list(chosen)
    names = set(draft_ids(catalog))
    for where, node in _walk(steps):
        for value in node.get("enum", []):
            if isinstance(value, str) and value in names:
                assert value in chosen, where
    ok = {"name": "o", "steps": {"find_order": {"route": {"found": "lookup_order", "missing": "agent",
                                                          "give_up": "agent"}},
                                 "lookup_order": {"args": {"order_id": "1001"}}, "agent": {}}}
    jsonschema.validate(ok, schema)
    assert gate(expand(ok, catalog), catalog).ok
    bad = copy.deepcopy(ok)
    bad["steps"]["agent"] = {"after": "update_ticket"}  # not chosen: the decoder cannot name it
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


@pytest.mark.local_models
@pytest.mark.timeout(600)
def test_the_grammar_keeps_the_real_model_inside_the_draft_and_its_bound(local_models: Any,
                                                                          catalog: Catalog) -> None:
    """SmolLM2 under the draft schema with max_tokens at the bound: the answer always ends by itself (never
    cut at the limit) and fits the schema."""
    import asyncio

    from petriflow.execute.client import ModelClient

    chosen = ("facts", "reply")
    schema = draft_schema(catalog, chosen)

    async def ask() -> Any:
        async with ModelClient() as cli:
            return await cli.chat(local_models["chat"], [{"role": "user", "content": "Write the workflow JSON."}],
                                  max_tokens=draft_tokens(catalog, chosen), temperature=0.0, use_cache=False,
                                  extra_body={"response_format": {"type": "json_schema",
                                                                  "json_schema": {"name": "w", "schema": schema}}})

    res = asyncio.run(ask())
    assert res.finish_reason == "stop" and res.output_tokens <= draft_tokens(catalog, chosen)
    jsonschema.validate(json.loads(res.text), schema)
