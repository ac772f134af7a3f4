"""Python steps for the loop-with-state tests: each reads what its pass sees and says so in its output."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def triage(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Ask for clarification until the customer's answer (the human step ``hear``) says an order number."""
    heard = inputs.get("previous", {}).get("hear")
    label = "answer" if isinstance(heard, str) and "order" in heard else "clarify"
    return {"label": label, "pass": inputs["loop_pass"], "heard": heard}


def ask(inputs: Mapping[str, Any]) -> str:
    """The clarifying question of this pass."""
    return f"question {inputs['loop_pass']}"


def read(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Having heard the customer, always go round again: triage decides whether the loop is left."""
    return {"again": True, "heard": inputs["hear"]}


def reply(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The reply: what triage decided on its last pass."""
    return dict(inputs["triage"])


def always_more(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """A reviewer that always asks for another pass: the loop's ``exhausted`` branch must end it."""
    return {"label": "again", "pass": inputs["loop_pass"]}
