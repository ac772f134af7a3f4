"""The JSON Schema of a workflow document (what ``petriflow schema`` prints).

The schema checks shapes and types; :mod:`petriflow.spec.load` then checks
what a schema cannot say (references, cycles, probabilities summing to one).
"""

from __future__ import annotations

from typing import Any

from petriflow.errors import UNPRINTABLE
from petriflow.limits import MAX_ATTEMPTS, MAX_COUNT, MAX_LOOP, MAX_MAP_ITEMS, MAX_NAME, MAX_NUMBER, MAX_STEPS

__all__ = ["DIST_FAMILIES", "STEP_KINDS", "WORKFLOW_SCHEMA"]

STEP_KINDS = ("chat", "embed", "classify", "tool", "python", "human")
"""chat: a chat completion; embed/classify: an embedding call or an embedding-based
classifier; tool: a registered tool; python: a Python callable; human: a review."""

DIST_FAMILIES = ("fixed", "exponential", "lognormal", "gamma", "empirical", "mixture")

_ID = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_-]*$", "maxLength": 64}
_IDS = {"type": "array", "items": {"$ref": "#/$defs/id"}, "uniqueItems": True}
_EXCS = {"type": "array", "uniqueItems": True,
         "items": {"type": "string", "pattern": "^([A-Za-z_][\\w.]*:)?[A-Za-z_]\\w*$"}}
_PROB = {"type": "number", "minimum": 0, "maximum": 1}
_AMOUNT = {"type": "number", "minimum": 0, "maximum": MAX_NUMBER}
_POSITIVE = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_NUMBER}
_CLOSED = {"type": "object", "additionalProperties": False}
"""An object with only the properties it lists: an unknown key (most often a typo) is refused, not ignored."""
_TEXT = {"type": "string", "pattern": f"^[^{UNPRINTABLE}]*$", "maxLength": MAX_NAME,
         "description": "printable characters only: names are printed to terminals and written to metrics"}
_NAME = {**_TEXT, "pattern": "^[A-Za-z0-9_][A-Za-z0-9_. -]*$", "minLength": 1, "maxLength": 128,
         "description": "letters, digits, '_', '.', '-' and spaces"}

_DIST: dict[str, Any] = {
    "description": "A number (a fixed value) or a distribution: {dist: FAMILY, ...parameters}.",
    "oneOf": [
        _AMOUNT,
        {
            **_CLOSED,
            "required": ["dist"],
            "properties": {
                "dist": {"enum": list(DIST_FAMILIES)},
                "value": _AMOUNT,
                "mean": _POSITIVE,
                "rate": _POSITIVE,
                "mu": {"type": "number", "minimum": -MAX_NUMBER, "maximum": MAX_NUMBER},
                "sigma": _POSITIVE,
                "shape": _POSITIVE,
                "scale": _POSITIVE,
                "samples": {"type": "array", "items": _AMOUNT, "minItems": 1},
                "components": {"type": "array", "items": {"$ref": "#/$defs/dist"}, "minItems": 1},
                "weights": {"type": "array", "items": _AMOUNT},
            },
        },
    ],
}

WORKFLOW_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://petriflow.dev/schema/workflow.json",
    "title": "petriflow workflow",
    **_CLOSED,
    "required": ["name", "steps"],
    "properties": {
        "name": _NAME,
        "description": {"type": "string"},
        "models": {
            "description": "Model endpoints by id. A step's `model` names one of these or is passed through as a model name.",
            "type": "object",
            "propertyNames": {"$ref": "#/$defs/id"},
            "additionalProperties": {"$ref": "#/$defs/model"},
        },
        "resources": {
            "description": "Shared resources: capacity tokens that steps hold while they run.",
            "type": "object",
            "propertyNames": {"$ref": "#/$defs/id"},
            "additionalProperties": {"$ref": "#/$defs/resource"},
        },
        "tools": {
            "description": "Tools the steps may call, by name: a Python callable (module:callable, resolved "
                           "relative to this file's directory) with the JSON Schema of its arguments.",
            "type": "object",
            "propertyNames": {"$ref": "#/$defs/id"},
            "additionalProperties": {"$ref": "#/$defs/tool"},
        },
        "steps": {"type": "array", "minItems": 1, "maxItems": MAX_STEPS, "items": {"$ref": "#/$defs/step"}},
    },
    "$defs": {
        "id": _ID,
        "dist": _DIST,
        "model": {
            **_CLOSED,
            "properties": {
                "name": {**_TEXT, "description": "the model name sent to the endpoint"},
                "base_url": {**_TEXT, "description": "OpenAI-compatible endpoint, or `local` (default)"},
                "api_key_env": _TEXT,
                "kind": {"enum": ["chat", "embedding"]},
                "price_input": {**_AMOUNT, "description": "dollars per 1M input tokens"},
                "price_output": {**_AMOUNT, "description": "dollars per 1M output tokens"},
                "price_call": {**_AMOUNT, "description": "dollars per call"},
                "accepts": {"type": "array", "minItems": 1, "uniqueItems": True,
                            "items": {"enum": ["text", "image", "file"]},
                            "description": "what the model reads; a prompt part it cannot read fails the step "
                                           "(default: the local chat model reads text, others are not checked)"},
            },
        },
        "tool": {
            **_CLOSED,
            "required": ["function"],
            "properties": {
                "function": {"type": "string", "pattern": "^[A-Za-z_][\\w.]*:[A-Za-z_]\\w*$",
                             "description": "module:callable"},
                "schema": {"type": "object", "description": "JSON Schema of the keyword arguments"},
                "retry_on": {**_EXCS, "description": "exceptions that make a call retryable "
                             "(default: ConnectionError, TimeoutError)"},
                "description": {"type": "string"},
            },
        },
        "resource": {
            **_CLOSED,
            "required": ["capacity"],
            "properties": {
                "capacity": {"type": "integer", "minimum": 1, "maximum": MAX_COUNT,
                             "description": "calls in flight at once"},
                "requests_per_minute": _POSITIVE,
                "tokens_per_minute": _POSITIVE,
            },
        },
        "step": {
            **_CLOSED,
            "required": ["id", "kind"],
            "properties": {
                "id": {"$ref": "#/$defs/id"},
                "kind": {"enum": list(STEP_KINDS)},
                "description": {"type": "string"},
                "after": {**_IDS, "description": "AND-join: start when all of these have finished"},
                "after_any": {**_IDS, "description": "XOR-join: start when one of these has finished"},
                "route": {
                    "description": "XOR-split: the step's output picks exactly one branch",
                    "type": "array",
                    "minItems": 2,
                    "items": {
                        **_CLOSED,
                        "required": ["to", "p"],
                        "properties": {
                            "to": {"$ref": "#/$defs/id"},
                            "p": _PROB,
                            "when": {**_TEXT, "description": "a label the output names (one word), `else` "
                                     "(the default branch) or an expression over output, case and loop_pass"},
                            "name": {**_TEXT, "minLength": 1, "description": "the branch's label in traces, profiles and "
                                     "drawings (default: the bare label, else the `to` step)"},
                        },
                    },
                },
                "loop": {
                    "description": "go back to an earlier step, at most `max` times",
                    **_CLOSED,
                    "required": ["to", "max"],
                    "properties": {
                        "to": {"$ref": "#/$defs/id"},
                        "max": {"type": "integer", "minimum": 1, "maximum": MAX_LOOP},
                        "p": _PROB,
                        "when": {**_TEXT, "description": "a label the output names (or a true field of that "
                                 "name), or an expression over output, case and loop_pass"},
                        "exhausted": {"type": "string", "description": "on a step that also routes: the "
                                      "branch (its `when`) taken when the output asks for another pass but "
                                      "the budget is spent"},
                    },
                },
                "map": {
                    "description": "run once per item of an upstream step's list output, at most `max` items",
                    **_CLOSED,
                    "required": ["over", "max"],
                    "properties": {"over": {"$ref": "#/$defs/id"},
                                   "max": {"type": "integer", "minimum": 1, "maximum": MAX_MAP_ITEMS}},
                },
                "uses": {
                    "description": "resources held while the step runs: a list of ids or {id: count}",
                    "oneOf": [
                        _IDS,
                        {
                            "type": "object",
                            "propertyNames": {"$ref": "#/$defs/id"},
                            "additionalProperties": {"type": "integer", "minimum": 1, "maximum": MAX_COUNT},
                        },
                    ],
                },
                "retry": {
                    **_CLOSED,
                    "required": ["max_attempts"],
                    "properties": {
                        "max_attempts": {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS},
                        "backoff": {**_AMOUNT, "description": "first delay, seconds"},
                        "backoff_max": _AMOUNT,
                        "jitter": {"type": "boolean"},
                        "on": {**_EXCS, "description": "exceptions of a python or tool step that are retried "
                               "(default: ConnectionError, TimeoutError)"},
                    },
                },
                "timeout": {**_POSITIVE, "description": "seconds per attempt"},
                "fallback": {"$ref": "#/$defs/id"},
                "on_failure": {"$ref": "#/$defs/id", "description": "the step that runs when this one fails "
                               "for good (after its retries and fallbacks); the case then ends, failed"},
                "model": _TEXT,
                "prompt": {"type": "string"},
                "system": {"type": "string"},
                "output_schema": {"type": "object"},
                "tool": _TEXT,
                "function": {**_TEXT, "description": "module:callable"},
                "labels": {
                    "description": "classify: label -> example texts (nearest centroid)",
                    "type": "object",
                    "propertyNames": _TEXT,
                    "additionalProperties": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                },
                "config": {"type": "object"},
                "latency": {"$ref": "#/$defs/dist"},
                "cost": {**_AMOUNT, "description": "dollars per call (simulation)"},
                "failure_rate": _PROB,
                "tokens": {
                    **_CLOSED,
                    "properties": {"input": {"$ref": "#/$defs/dist"}, "output": {"$ref": "#/$defs/dist"}},
                },
            },
        },
    },
}
