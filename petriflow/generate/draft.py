"""The draft: the small format a model writes a workflow in, and its expansion into petriflow's format.

A tiny model under petriflow's full generation schema wanders: it invents
long step ids, repeats route branches until the token limit cuts its answer
mid-string, and writes branch probabilities that do not add up to one (the
benchmark of ``analysis/bench/README.md`` measured 0 of 52 passing). The
draft removes each of those freedoms from the output space, so the
grammar-constrained decoder cannot write them:

* ``steps`` is an object keyed by step id, and the ids are the catalog's own
  names (a tool, a function, a prompt, a person of ``humans``): no id can be
  invented or written twice, and the keys come in the catalog's
  ``generate_order``;
* what a step *is* (kind, tool, function, model, prompt and system text,
  token limits) follows from its id, so the model writes only what it
  decides: ``after``, ``after_any``, tool ``args``, function ``kwargs``, and
  ``route`` or ``loop`` on a function whose catalog entry lists the
  ``labels`` its output names;
* a ``route`` is ``{label: step}`` with every label of the function required
  once: no branch can be repeated or missing, and it has no probabilities to
  get wrong; the expansion gives the branches equal shares (the route's
  ``p`` is a profile's prior, which petriflow fits from traces; the gate's
  cost bound takes the dearest branch whatever the shares);
* every array and free string is bounded, so a whole answer fits the tokens
  it is given (:func:`draft_tokens` is that bound).

:func:`expand` turns a draft into a workflow document by adding only what
the catalog holds; the gate then checks that document like any other file,
every check in place. Whatever is not a draft (a full workflow document, a
string that is not JSON, an unknown id or key) passes through unchanged or
as written, for the gate to refuse by name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from petriflow.generate.catalog import Catalog

__all__ = ["draft_ids", "draft_schema", "draft_tokens", "expand", "expand_text"]

_ID = "^[a-z][a-z0-9_]{0,31}$"
_FREE = 60
"""The longest literal string a draft may hold (a tool argument, the name): room for a note, no room to wander."""
_JOIN = 3
"""The most steps an ``after`` or ``after_any`` lists."""


def draft_ids(catalog: Catalog) -> dict[str, tuple[str, str]]:
    """Each step id a draft may use -> (kind, catalog name), in the catalog's ``generate_order``.

    A name that is not a valid step id, or that an earlier section already took, is left out (the
    sections are read in the order functions, tools, prompts, humans)."""
    from petriflow.generate.schema import _kinds

    kinds = set(_kinds(catalog))
    found: dict[str, tuple[str, str]] = {}
    sections = [("python", catalog.functions), ("tool", catalog.tools), ("chat", catalog.prompts),
                ("human", catalog.humans)]
    import re

    for kind, names in sections:
        if kind not in kinds:
            continue
        for name in names:
            if re.match(_ID, name) and name not in found:
                found[name] = (kind, name)
    order = [i for i in catalog.generate_order if i in found]
    return {i: found[i] for i in [*order, *(i for i in found if i not in order)]}


def _labels(catalog: Catalog, name: str) -> tuple[str, ...]:
    return tuple(catalog.functions[name].get("labels", ()))


def _template(catalog: Catalog, ids: list[str], own: str) -> dict[str, Any]:
    """The templates an argument may be: a case input or another step's whole output (an enum: the
    decoder cannot invent a name)."""
    return {"enum": [f"{{{n}}}" for n in (*catalog.inputs, *(i for i in ids if i != own))]}


def _narrow(schema: Any) -> Any:
    """A literal argument's schema with free strings cut to :data:`_FREE` characters (still within the
    tool's own schema: a shorter string it allows is one it allows)."""
    if not isinstance(schema, Mapping):
        return schema
    out = dict(schema)
    if out.get("type") == "string" and "enum" not in out and "pattern" not in out:
        out["maxLength"] = min(int(out.get("maxLength", _FREE)), _FREE)
    return out


def _args(catalog: Catalog, schema: Mapping[str, Any], ids: list[str], own: str) -> dict[str, Any]:
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        return dict(schema)
    return {"type": "object", "additionalProperties": False, "required": list(schema.get("required", [])),
            "properties": {k: {"anyOf": [_narrow(v), _template(catalog, ids, own)]} for k, v in props.items()}}


def _step(catalog: Catalog, sid: str, kind: str, ids: list[str]) -> dict[str, Any]:
    others = {"enum": [i for i in ids if i != sid]}
    props: dict[str, Any] = {
        "after": {"type": "array", "items": others, "minItems": 1, "maxItems": _JOIN, "uniqueItems": True},
        "after_any": {"type": "array", "items": others, "minItems": 2, "maxItems": _JOIN, "uniqueItems": True},
    }
    required: list[str] = []
    if kind == "tool":
        props["args"] = _args(catalog, catalog.tools[sid].schema, ids, sid)
        required.append("args")
    elif kind == "python":
        kwargs = catalog.functions[sid].get("kwargs")
        if kwargs is not None:
            props["kwargs"] = dict(kwargs)
        labels = _labels(catalog, sid)
        if len(labels) >= 2:
            props["route"] = {"type": "object", "additionalProperties": False, "required": list(labels),
                              "properties": {lab: others for lab in labels}}
        elif len(labels) == 1 and catalog.limits.loop:
            props["loop"] = {"type": "object", "additionalProperties": False, "required": ["to", "max"],
                             "properties": {"to": others, "max": {"type": "integer", "minimum": 1,
                                                                  "maximum": catalog.limits.loop}}}
    elif kind == "chat":
        chat = [m for m, e in catalog.models.items() if e.kind == "chat"]
        if len(chat) > 1:
            props["model"] = {"enum": chat}
            required.append("model")
    return {"type": "object", "additionalProperties": False, "required": required, "properties": props}


def draft_schema(catalog: Catalog) -> dict[str, Any]:
    """The JSON Schema a model writes its draft under (``response_format: json_schema``); see the module
    docstring for what it leaves out and why."""
    ids = draft_ids(catalog)
    order = list(ids)
    steps = {sid: _step(catalog, sid, kind, order) for sid, (kind, _) in ids.items()}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"petriflow workflow draft for catalog {catalog.name}",
        "type": "object", "required": ["name", "steps"], "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z][a-z_]{0,23}$"},
            "steps": {"type": "object", "additionalProperties": False, "minProperties": 1,
                      "maxProperties": min(len(steps), catalog.limits.steps), "properties": steps},
        },
    }


def draft_tokens(catalog: Catalog) -> int:
    """An upper bound on the tokens of any answer the draft schema allows: every step, every optional key at
    its longest, each character counted as a token (a tokenizer never needs more than one token a byte for
    this ASCII text). ``max_tokens`` at least this large means no answer is cut off."""
    schema = draft_schema(catalog)
    longest_id = max((len(i) for i in draft_ids(catalog)), default=1)
    return 40 + sum(_longest(s, longest_id) + longest_id + 4 for s in schema["properties"]["steps"]
                    ["properties"].values())


def _longest(schema: Any, longest_id: int) -> int:
    """Characters of the longest JSON value ``schema`` allows (the shapes :func:`draft_schema` writes)."""
    if not isinstance(schema, Mapping):
        return 8
    if "enum" in schema:
        return max(len(json.dumps(v)) for v in schema["enum"])
    if "const" in schema:
        return len(json.dumps(schema["const"]))
    if "anyOf" in schema:
        return max(_longest(s, longest_id) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return 2 + sum(len(json.dumps(k)) + 2 + _longest(v, longest_id) for k, v in props.items())
    if kind == "array":
        return 2 + int(schema.get("maxItems", 16)) * (_longest(schema.get("items"), longest_id) + 1)
    if kind == "string":
        return 2 + 2 * int(schema.get("maxLength", 64))  # a pattern's strings here are at most 64 characters
    if kind == "integer":
        return len(str(schema.get("maximum", 10**9)))
    return 24


def expand(doc: Any, catalog: Catalog) -> Any:
    """The workflow document of a draft (see the module docstring); anything else is returned as it is.

    Only the catalog's own entries are added; every key the model wrote goes into the document (an
    unknown one too, for the gate's ``schema`` check to name)."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("steps"), Mapping):
        return doc
    ids = draft_ids(catalog)
    steps: list[dict[str, Any]] = []
    for sid, body in doc["steps"].items():
        if sid not in ids or not isinstance(body, Mapping):
            steps.append({"id": sid, "draft": body})  # no kind: the gate's schema check refuses it by id
            continue
        kind, name = ids[sid]
        step: dict[str, Any] = {"id": sid, "kind": kind}
        rest = dict(body)
        if kind == "tool":
            step["tool"] = name
            if "args" in rest:
                step["config"] = {"args": rest.pop("args")}
        elif kind == "python":
            step["function"] = catalog.functions[name]["function"]
            if "kwargs" in rest:
                step["config"] = {"kwargs": rest.pop("kwargs")}
            labels = _labels(catalog, name)
            if isinstance(rest.get("route"), Mapping):
                route = rest.pop("route")
                share = Fraction(1, max(len(route), 1))
                step["route"] = [{"when": lab, "to": to, "p": float(share)} for lab, to in route.items()]
            if isinstance(rest.get("loop"), Mapping) and len(labels) == 1:
                step["loop"] = {"when": labels[0], **rest.pop("loop")}
        elif kind == "chat":
            chat = [m for m, e in catalog.models.items() if e.kind == "chat"]
            prompt = catalog.prompts[name]
            step["model"] = rest.pop("model", None) or (catalog.generator if catalog.generator in chat
                                                        else chat[0] if chat else None)
            step["prompt"] = prompt["prompt"]
            if "system" in prompt:
                step["system"] = prompt["system"]
            step["config"] = {"max_tokens": catalog.limits.max_tokens,
                              "max_input_tokens": catalog.limits.max_input_tokens}
        step.update(rest)
        steps.append(step)
    return {**{k: v for k, v in doc.items() if k != "steps"}, "steps": steps}


def expand_text(text: str, catalog: Catalog) -> Any:
    """A model's answer as the gate should see it: the expanded draft when it is one, else the text itself
    (so the ``parse`` check refuses what is not JSON, with its own message)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return text
    expanded = expand(doc, catalog)
    return text if expanded is doc else expanded
