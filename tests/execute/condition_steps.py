"""Python steps for the condition tests: each returns what the case asks it to, so a test picks the output."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def scored(inputs: Mapping[str, Any], case: Mapping[str, Any]) -> Any:
    """The case's ``out`` as the step's output (a mapping, a list or JSON text)."""
    return case["out"]


def seen(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Which upstream outputs this step was given."""
    return {"inputs": sorted(inputs)}


def count(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """A counter that goes up by one each loop pass."""
    return {"n": inputs.get("loop_pass", 1)}
