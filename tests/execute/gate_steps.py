"""A python step that holds its resource until the test opens the gate (for the recorded resource waits)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

GATE: dict[str, asyncio.Event] = {}


async def hold(inputs: Mapping[str, Any], case: Mapping[str, Any]) -> str:
    """Wait until ``GATE["open"]`` is set (made by the test on the run's own loop)."""
    await GATE["open"].wait()
    return f"held {case.get('question')}"
