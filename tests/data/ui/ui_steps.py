"""Python steps of review_flow.yaml (the web console's test workflow)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def draft(inputs: Mapping[str, Any], case: Mapping[str, Any]) -> dict[str, str]:
    """A draft verdict that quotes the post as it is (a post may hold HTML: the console must show it as text)."""
    return {"post": str(case.get("question", "")), "verdict": "looks fine"}


def audit(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The audit row: which branch ran and what it said."""
    decided = {step: out for step, out in inputs.items() if out is not None}
    return {"audited": True, "decision": decided}
