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
            "description": {"type": "string", "maxLength": 200},
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
                "poll": {"type": "number", "exclusiveMinimum": 0, "maximum": 60}}},
        },
    }
    props = step["properties"]
    kinds = set(_kinds(catalog))
    if "classify" not in kinds and "embed" not in kinds:
        label_sets, embedding = [], []
    if "chat" not in kinds:
        prompts, systems, chat = [], [], []
    props["model"] = _enum(chat + embedding, strict, {"type": "string"})
    props["labels"] = _enum(label_sets, strict, {"type": "object"})
    props["prompt"], props["system"] = _enum(prompts, strict, text), _enum(systems, strict, text)
    if strict:
        for key, have in (("loop", lim.loop), ("map", lim.map)):
            if not have:
                del props[key]
        for key, values in (("prompt", prompts), ("system", systems), ("tool", list(catalog.tools)),
                            ("function", list(catalog.function_specs)), ("labels", label_sets),
                            ("model", chat + embedding)):
            if not values:
                del props[key]
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
