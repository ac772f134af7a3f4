"""A yes/no JSON Schema check for the keywords the workflow schema uses.

Every ``petriflow check`` loads a workflow, and importing jsonschema (with
referencing, attrs and its meta-schemas) costs more than checking a small
workflow. So loading asks this module first whether the document is valid;
only a document it rejects goes to jsonschema, which finds the error to
show. The answer must be jsonschema's (Draft 2020-12, no format checks): a
keyword this module does not know makes it give up (:class:`Unsupported`),
and the caller then asks jsonschema. A hypothesis test compares the two on
mutated example workflows (``tests/spec/test_fastschema.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

__all__ = ["Unsupported", "is_valid"]

_IGNORED = frozenset({"$schema", "$id", "$defs", "title", "description", "default", "examples", "$comment"})


class Unsupported(Exception):
    """The schema uses a keyword this checker does not implement."""


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _is_type(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if kind == "number":
        return isinstance(value, (int, float))
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    raise Unsupported(f"type {kind!r}")


def _canonical(value: Any) -> Any:
    """A hashable form in which JSON-equal values are equal (``1 == 1.0``, ``True != 1``)."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", value)
    if isinstance(value, list):
        return ("a", tuple(_canonical(v) for v in value))
    if isinstance(value, dict):
        return ("o", frozenset((k, _canonical(v)) for k, v in value.items()))
    return ("s", value)


def is_valid(doc: Any, schema: Mapping[str, Any]) -> bool:
    """Whether ``doc`` is valid against ``schema`` (local ``#/$defs/...`` references only)."""
    return _valid(doc, schema, schema)


def _valid(value: Any, schema: Any, root: Mapping[str, Any]) -> bool:
    if schema is True:
        return True
    if schema is False:
        return False
    for key, arg in schema.items():
        if key in _IGNORED:
            continue
        if key == "$ref":
            if not arg.startswith("#/$defs/"):
                raise Unsupported(arg)
            if not _valid(value, root["$defs"][arg[len("#/$defs/"):]], root):
                return False
        elif key == "type":
            kinds = arg if isinstance(arg, list) else [arg]
            if not any(_is_type(value, k) for k in kinds):
                return False
        elif key == "enum":
            if _canonical(value) not in {_canonical(a) for a in arg}:
                return False
        elif key == "const":
            if _canonical(value) != _canonical(arg):
                return False
        elif key == "oneOf":
            if sum(_valid(value, sub, root) for sub in arg) != 1:
                return False
        elif key == "anyOf":
            if not any(_valid(value, sub, root) for sub in arg):
                return False
        elif key == "allOf":
            if not all(_valid(value, sub, root) for sub in arg):
                return False
        elif key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if _is_type(value, "number") and not _in_range(value, key, arg):
                return False
        elif key in ("minLength", "maxLength", "pattern"):
            if isinstance(value, str) and not _string_ok(value, key, arg):
                return False
        elif key in ("items", "minItems", "maxItems", "uniqueItems"):
            if isinstance(value, list) and not _array_ok(value, key, arg, root):
                return False
        elif key in ("properties", "required", "additionalProperties", "propertyNames", "minProperties",
                     "maxProperties"):
            if isinstance(value, dict) and not _object_ok(value, key, arg, schema, root):
                return False
        else:
            raise Unsupported(key)
    return True


def _in_range(value: float, key: str, bound: float) -> bool:
    if key == "minimum":
        return value >= bound
    if key == "maximum":
        return value <= bound
    if key == "exclusiveMinimum":
        return value > bound
    return value < bound


def _string_ok(value: str, key: str, arg: Any) -> bool:
    if key == "minLength":
        return bool(len(value) >= arg)
    if key == "maxLength":
        return bool(len(value) <= arg)
    return _pattern(arg).search(value) is not None


def _array_ok(value: list[Any], key: str, arg: Any, root: Mapping[str, Any]) -> bool:
    if key == "items":
        return all(_valid(v, arg, root) for v in value)
    if key == "minItems":
        return bool(len(value) >= arg)
    if key == "maxItems":
        return bool(len(value) <= arg)
    return not arg or len({_canonical(v) for v in value}) == len(value)


def _object_ok(value: dict[str, Any], key: str, arg: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    if key == "properties":
        return all(_valid(value[k], sub, root) for k, sub in arg.items() if k in value)
    if key == "required":
        return all(k in value for k in arg)
    if key == "additionalProperties":
        if "patternProperties" in schema:
            raise Unsupported("patternProperties")
        known = schema.get("properties", {})
        return all(_valid(v, arg, root) for k, v in value.items() if k not in known)
    if key == "propertyNames":
        return all(_valid(k, arg, root) for k in value)
    if key == "minProperties":
        return bool(len(value) >= arg)
    return bool(len(value) <= arg)
