"""The catalog: everything a generated workflow may draw on, and nothing else.

A model that writes a workflow sees the catalog and is held to it by the
gate (:mod:`petriflow.generate.gate`): the tools it may call (with the JSON
Schema of their arguments), the Python functions and prompts it may use, the
classifier label sets, the models, the case variables a template may read,
and the limits (steps, depth, loop passes, map items, attempts, tokens per
call, dollars per case). The catalog is a file the operator writes; nothing
in a request or a model's answer can add to it.

```yaml
name: support
generator: smollm2                 # the model (a key of models) that writes the workflows
generate_kinds: [tool, python, chat, human]   # what the model is offered (default: all the catalog supports)
inputs: [question]                 # case variables a template may read
models: {smollm2: {name: SmolLM2-135M-Instruct, price_input: 0.1, price_output: 0.3}}
tools:                             # as a workflow's `tools:`; functions next to this file
  lookup_order: {function: support_tools:lookup_order, schema: {...}}
functions: {find_order: {function: support_tools:find_order, labels: [found, missing], fields: [order_id]}}
prompts: {reply: {system: "...", prompt: "..."}}
humans: {agent: a person takes the case over}   # the human steps a generated draft may hold
generate_order: [find_order, lookup_order, reply, agent]   # the order of a draft's steps
examples: [{name: order, steps: {find_order: {route: {found: lookup_order, missing: agent}}, ...}}]
labels: {intent: {order: ["where is my order?"], human: ["get me a person"]}}
limits: {steps: 12, depth: 10, loop: 2, map: 5, attempts: 3, max_tokens: 256, max_input_tokens: 1024, budget: 0.01}
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from petriflow.errors import SpecError
from petriflow.limits import MAX_DOCUMENT_BYTES, load_yaml, read_text
from petriflow.spec.model import ModelEndpoint, ToolDecl

__all__ = ["CATALOG_SCHEMA", "Catalog", "Limits", "catalog_from", "load_catalog"]

_OBJ = {"type": "object"}
_IDMAP = {"type": "object", "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_-]*$", "maxLength": 64}}
_COUNT = {"type": "integer", "minimum": 0, "maximum": 100_000}

CATALOG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "petriflow generation catalog",
    "type": "object",
    "required": ["name", "models", "limits"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 128},
        "description": {"type": "string"},
        "generator": {"type": "string"},
        "inputs": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                   "uniqueItems": True},
        "generate_kinds": {"type": "array", "uniqueItems": True, "minItems": 1,
                           "items": {"enum": ["chat", "embed", "classify", "tool", "python", "human"]}},
        "models": {**_IDMAP, "additionalProperties": _OBJ},
        "tools": {**_IDMAP, "additionalProperties": _OBJ},
        "functions": {**_IDMAP, "additionalProperties": {
            "type": "object", "required": ["function"], "additionalProperties": False,
            "properties": {"function": {"type": "string", "pattern": "^[A-Za-z_][\\w.]*:[A-Za-z_]\\w*$"},
                           "description": {"type": "string"}, "kwargs": _OBJ,
                           "labels": {"type": "array", "uniqueItems": True, "minItems": 1, "maxItems": 8,
                                      "items": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,31}$"}},
                           "fields": {"type": "array", "uniqueItems": True, "maxItems": 8,
                                      "items": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,31}$"}}}}},
        "humans": {**_IDMAP, "additionalProperties": {"type": "string"}},
        "generate_order": {"type": "array", "uniqueItems": True, "items": {"type": "string"}},
        "examples": {"type": "array", "items": _OBJ, "maxItems": 4},
        "prompts": {**_IDMAP, "additionalProperties": {
            "type": "object", "required": ["prompt"], "additionalProperties": False,
            "properties": {"prompt": {"type": "string"}, "system": {"type": "string"}}}},
        "labels": {**_IDMAP, "additionalProperties": {
            "type": "object", "minProperties": 2,
            "additionalProperties": {"type": "array", "items": {"type": "string"}, "minItems": 1}}},
        "limits": {
            "type": "object", "additionalProperties": False,
            "required": ["steps", "depth", "loop", "map", "attempts", "max_tokens"],
            "properties": {"steps": {**_COUNT, "minimum": 1}, "depth": {**_COUNT, "minimum": 1}, "loop": _COUNT,
                           "map": _COUNT, "attempts": {**_COUNT, "minimum": 1},
                           "max_tokens": {**_COUNT, "minimum": 1}, "max_input_tokens": {**_COUNT, "minimum": 1},
                           "budget": {"type": "number", "minimum": 0}},
        },
    },
}


@dataclass(frozen=True)
class Limits:
    """How big a generated workflow may be: steps, the longest chain, loop passes, map items, attempts,
    ``max_tokens`` and ``max_input_tokens`` per model call and, when set, the worst-case dollars per case."""

    steps: int
    depth: int
    loop: int
    map: int
    attempts: int
    max_tokens: int
    budget: float | None = None
    max_input_tokens: int = 2048


def _ro(m: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True)
class Catalog:
    """A checked catalog. ``source`` is its file: tools and functions resolve next to it."""

    name: str
    limits: Limits
    models: Mapping[str, ModelEndpoint]
    tools: Mapping[str, ToolDecl] = field(default_factory=lambda: _ro(None))
    functions: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: _ro(None))
    prompts: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: _ro(None))
    labels: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=lambda: _ro(None))
    inputs: tuple[str, ...] = ("question",)
    generator: str | None = None
    generate_kinds: tuple[str, ...] | None = None
    """The step kinds a model is offered when it writes a workflow (None: every kind the catalog supports).
    Narrows generation only: a file the operator wrote may still use the catalog's other kinds."""
    humans: Mapping[str, str] = field(default_factory=lambda: _ro({"agent": "a person takes the case over"}))
    """The human steps a draft may hold, by id, with what each is for (default: one ``agent``)."""
    generate_order: tuple[str, ...] = ()
    """The order a draft lists its steps in (:mod:`petriflow.generate.draft`): what a step reads before it."""
    examples: tuple[Mapping[str, Any], ...] = ()
    """Drafts that pass the gate, shown to the model as examples of the format."""
    description: str = ""
    source: str | None = None
    document: Mapping[str, Any] = field(default_factory=lambda: _ro(None))
    """The catalog as written (its ``models`` and ``tools`` go into every workflow the gate passes)."""

    @property
    def function_specs(self) -> dict[str, str]:
        """``module:callable`` of each catalog function -> its catalog name."""
        return {str(f["function"]): name for name, f in self.functions.items()}

    def kwargs_schema(self, function: str) -> Mapping[str, Any]:
        """The JSON Schema a python step's ``config.kwargs`` must fit (no kwargs unless the catalog says)."""
        name = self.function_specs[function]
        schema = self.functions[name].get("kwargs")
        return schema if schema is not None else {"type": "object", "maxProperties": 0}


def catalog_from(doc: Mapping[str, Any], *, file: str = "<catalog>") -> Catalog:
    """Check a catalog document against :data:`CATALOG_SCHEMA` and the workflow format, and build it."""
    import jsonschema

    from petriflow.spec.load import from_document

    errors = sorted(jsonschema.Draft202012Validator(CATALOG_SCHEMA).iter_errors(doc), key=lambda e: e.path)
    if errors:
        err = errors[0]
        where = ".".join(map(str, err.absolute_path)) or "the document"
        raise SpecError(f"catalog: {where}: {err.message}", file=file, hint="fix the catalog")
    # the models and tools are a workflow's: let the workflow loader check them (one owner of the format)
    probe = from_document({"name": "catalog", "models": doc["models"], "tools": doc.get("tools", {}),
                           "steps": [{"id": "probe", "kind": "human"}]}, file=file)
    gen = doc.get("generator")
    if gen is not None and gen not in probe.models:
        raise SpecError(f"catalog: generator '{gen}' is not one of its models", file=file,
                        hint=f"models: {', '.join(probe.models)}")
    labels = {k: _ro({lab: tuple(v) for lab, v in sets.items()}) for k, sets in doc.get("labels", {}).items()}
    return Catalog(
        name=str(doc["name"]), limits=Limits(**doc["limits"]), models=probe.models, tools=probe.tools,
        functions=_ro({k: _ro(v) for k, v in doc.get("functions", {}).items()}),
        prompts=_ro({k: _ro(v) for k, v in doc.get("prompts", {}).items()}), labels=_ro(labels),
        inputs=tuple(doc.get("inputs", ["question"])), generator=gen, description=str(doc.get("description", "")),
        generate_kinds=tuple(doc["generate_kinds"]) if "generate_kinds" in doc else None,
        humans=_ro(doc.get("humans", {"agent": "a person takes the case over"})),
        generate_order=tuple(doc.get("generate_order", ())), examples=tuple(doc.get("examples", ())),
        source=file, document=_ro(doc))


def load_catalog(path: str | Path) -> Catalog:
    """Read and check a catalog file (YAML or JSON)."""
    p = Path(path)

    def fail(message: str, *, hint: str, line: int | None = None) -> SpecError:
        return SpecError(message, file=str(p), line=line, hint=hint)

    if not p.is_file():
        raise SpecError("no such catalog file", file=str(p), hint="pass --catalog CATALOG.yaml")
    doc = load_yaml(read_text(p, what="catalog", max_bytes=MAX_DOCUMENT_BYTES, fail=fail), fail=fail)
    if not isinstance(doc, Mapping):
        raise SpecError("a catalog is a mapping", file=str(p), hint="see docs/generate.md")
    return catalog_from(doc, file=str(p))
