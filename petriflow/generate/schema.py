"""The JSON Schema a generated workflow is written against: petriflow's format, narrowed to a catalog.

Two strengths. ``strict=True`` is what the model is constrained by
(``response_format: json_schema``): only the catalog's step kinds, tools,
functions, models, prompts and label sets appear as ``enum`` values, and the
limits as maxima, so a constrained decoder cannot even write a tool that is
not there. ``strict=False`` is the shape alone (what the gate's ``schema``
check applies to any file); the catalog's names and limits are then the
``catalog`` and ``limits`` checks, which name what broke them.

Models, tools and resources are not part of a generated document: the gate
adds the catalog's own (:func:`petriflow.generate.gate.merged`).
"""

from __future__ import annotations

from typing import Any

from petriflow.generate.catalog import Catalog
from petriflow.limits import MAX_ATTEMPTS, MAX_LOOP, MAX_MAP_ITEMS, MAX_STEPS
from petriflow.spec.schema import STEP_KINDS, WORKFLOW_SCHEMA

__all__ = ["generation_schema"]

_ID = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,31}$"}
_IDS = {"type": "array", "items": _ID, "uniqueItems": True, "maxItems": 8}
_PROB = {"type": "number", "minimum": 0, "maximum": 1}
_WORD = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}


def _enum(values: list[Any], strict: bool, loose: dict[str, Any]) -> dict[str, Any]:
    return {"enum": values} if strict else loose


def _kinds(catalog: Catalog) -> list[str]:
    chat = any(m.kind == "chat" for m in catalog.models.values()) and bool(catalog.prompts)
    embedding = any(m.kind in ("embedding", "embed") for m in catalog.models.values()) and bool(catalog.labels)
    allowed = {"tool": bool(catalog.tools), "python": bool(catalog.functions), "chat": chat,
               "classify": embedding, "human": True}
    offered = catalog.generate_kinds or STEP_KINDS
    return [k for k in STEP_KINDS if allowed.get(k) and k in offered]


def generation_schema(catalog: Catalog, *, strict: bool = True) -> dict[str, Any]:
    """The schema of a generated workflow document for ``catalog`` (see the module docstring).

    ``strict=False`` is the workflow format's own schema (``petriflow schema``): any file may be gated.
    """
    if not strict:
        return WORKFLOW_SCHEMA
    lim = catalog.limits
    chat = [m for m, e in catalog.models.items() if e.kind == "chat"]
    embedding = [m for m, e in catalog.models.items() if e.kind in ("embedding", "embed")]
    prompts = [p["prompt"] for p in catalog.prompts.values()]
    systems = sorted({p["system"] for p in catalog.prompts.values() if "system" in p})
    label_sets = [{k: list(v) for k, v in sets.items()} for sets in catalog.labels.values()]
    text = {"type": "string", "maxLength": 4000}
    step: dict[str, Any] = {
        "type": "object",
        "required": ["id", "kind"],
        "additionalProperties": False,
        "properties": {
            "id": _ID,
            "kind": {"enum": _kinds(catalog) if strict else list(STEP_KINDS)},
            "after": _IDS,
            "after_any": _IDS,
            "route": {"type": "array", "minItems": 2, "maxItems": 8, "items": {
                "type": "object", "required": ["to", "when", "p"], "additionalProperties": False,
                "properties": {"to": _ID, "when": _WORD, "p": _PROB}}},
            "loop": {"type": "object", "required": ["to", "max", "when"], "additionalProperties": False,
                     "properties": {"to": _ID, "when": _WORD, "p": _PROB, "exhausted": _WORD,
                                    "max": {"type": "integer", "minimum": 1,
                                            "maximum": max(lim.loop, 1) if strict else MAX_LOOP}}},
            "map": {"type": "object", "required": ["over", "max"], "additionalProperties": False,
                    "properties": {"over": _ID, "max": {"type": "integer", "minimum": 1,
                                                        "maximum": max(lim.map, 1) if strict else MAX_MAP_ITEMS}}},
            "retry": {"type": "object", "required": ["max_attempts"], "additionalProperties": False,
                      "properties": {"max_attempts": {"type": "integer", "minimum": 1,
                                                      "maximum": lim.attempts if strict else MAX_ATTEMPTS},
                                     "backoff": {"type": "number", "minimum": 0, "maximum": 60}}},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
            "fallback": _ID,
            "on_failure": _ID,
            "model": _enum(chat + embedding, strict, {"type": "string"}),
            "prompt": _enum(prompts, strict, text),
            "system": _enum(systems, strict, text),
            "tool": _enum(list(catalog.tools), strict, {"type": "string"}),
            "function": _enum(list(catalog.function_specs), strict, {"type": "string"}),
            "labels": _enum(label_sets, strict, {"type": "object"}),
            "config": {"type": "object", "additionalProperties": not strict, "properties": {
                "args": {"type": "object"}, "kwargs": {"type": "object"},
                "max_tokens": {"type": "integer", "minimum": 1, "maximum": lim.max_tokens if strict else 2**31},
                "max_input_tokens": {"type": "integer", "minimum": 1},
                "poll": {"type": "number", "exclusiveMinimum": 0, "maximum": 60}}},
        },
    }
    if strict:
        step = {"anyOf": _variants(catalog, step)}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"petriflow workflow for catalog {catalog.name}",
        "type": "object",
        "required": ["name", "steps"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_. -]{0,63}$"},
            "description": {"type": "string", "maxLength": 500},
            "steps": {"type": "array", "minItems": 1, "maxItems": lim.steps if strict else MAX_STEPS,
                      "items": {"$ref": "#/$defs/step"}},
        },
        "$defs": {"step": step},
    }


def _variants(catalog: Catalog, generic: dict[str, Any]) -> list[dict[str, Any]]:
    """One step schema per kind (and per tool and function): a tool step's ``config.args`` is that tool's
    own argument schema, so a constrained decoder writes only arguments the tool takes."""
    lim = catalog.limits
    common = {k: v for k, v in generic["properties"].items()
              if k in ("id", "after", "after_any", "route", "loop", "map", "retry", "fallback", "on_failure")}
    if not lim.loop:
        common.pop("loop")
    if not lim.map:
        common.pop("map")

    def variant(kind: str, required: tuple[str, ...] = (), **props: Any) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": False, "required": ["id", "kind", *required],
                "properties": {**common, "kind": {"const": kind}, **props}}

    kinds = _kinds(catalog)
    out: list[dict[str, Any]] = []
    if "tool" in kinds:
        out += [variant("tool", ("tool", "config"), tool={"const": name}, config={
            "type": "object", "additionalProperties": False, "required": ["args"],
            "properties": {"args": _templated(t.schema)}}) for name, t in catalog.tools.items()]
    if "python" in kinds:
        for f in catalog.functions.values():
            extra: dict[str, Any] = {}
            if f.get("kwargs") is not None:
                extra["config"] = {"type": "object", "additionalProperties": False,
                                   "properties": {"kwargs": dict(f["kwargs"])}}
            out.append(variant("python", ("function",), function={"const": f["function"]}, **extra))
    if "chat" in kinds:
        chat = [m for m, e in catalog.models.items() if e.kind == "chat"]
        for p in catalog.prompts.values():
            texts = {"prompt": {"const": p["prompt"]}}
            if "system" in p:
                texts["system"] = {"const": p["system"]}
            out.append(variant("chat", ("model", "prompt", "config"), model={"enum": chat}, config={
                "type": "object", "additionalProperties": False, "required": ["max_tokens", "max_input_tokens"],
                "properties": {"max_tokens": {"type": "integer", "minimum": 1, "maximum": lim.max_tokens},
                               "max_input_tokens": {"type": "integer", "minimum": 1,
                                                    "maximum": lim.max_input_tokens}}},
                **texts))
    if "classify" in kinds:
        embedding = [m for m, e in catalog.models.items() if e.kind in ("embedding", "embed")]
        out += [variant("classify", ("model", "labels"), model={"enum": embedding},
                        labels={"const": {k: list(v) for k, v in sets.items()}}) for sets in catalog.labels.values()]
    if "human" in kinds:
        out.append(variant("human"))
    return out


_TEMPLATE = {"type": "string", "pattern": "^\\{[a-z_][a-z0-9_]*(\\[[a-z_]+\\])?\\}$",
             "description": "a template: a case input or an earlier step's output, e.g. {question}"}


def _templated(schema: Any) -> dict[str, Any]:
    """A tool's argument schema where each argument may also be one template (its value comes at run time,
    where the executor checks it against the tool's own schema)."""
    out = dict(schema)
    props = out.get("properties")
    if isinstance(props, dict):
        out["properties"] = {k: {"anyOf": [dict(v), _TEMPLATE]} for k, v in props.items()}
    return out
