"""Python steps of review_flow.yaml (the web console's test workflow)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def draft(inputs: Mapping[str, Any], case: Mapping[str, Any]) -> dict[str, str]:
    """A draft verdict that quotes the post as it is (a post may hold HTML: the console must show it as text)."""
    return {"post": str(case.get("question", "")), "verdict": "looks fine"}


def audit(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The audit row: which branch ran and what it said (the XOR-join's ``after_any_step`` and ``after_any``)."""
    return {"audited": True, "decision": {inputs["after_any_step"]: inputs["after_any"]}}


async def gated(inputs: Mapping[str, Any], case: Mapping[str, Any]) -> str:
    """Hold the step (and the resource unit it uses) until the file ``$UI_GATE`` exists (resource_flow.yaml)."""
    import asyncio
    import os
    from pathlib import Path

    gate = Path(os.environ["UI_GATE"])
    while not gate.exists():
        await asyncio.sleep(0.05)
    return f"worked on {case.get('question')}"
