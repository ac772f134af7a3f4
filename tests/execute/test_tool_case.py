"""A tool that takes ``case`` reads the case variables from the executor; arguments can never pose as them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from petriflow.errors import InputError
from petriflow.execute import Executor, ToolRegistry, plan
from petriflow.spec import loads


def whoami(note: str, case: Mapping[str, Any]) -> dict[str, Any]:
    return {"customer": case.get("customer_id"), "note": note}


def _reg() -> ToolRegistry:
    reg = ToolRegistry()
    reg.register("whoami", whoami, schema={"type": "object", "properties": {"note": {"type": "string"}}})
    return reg


def test_a_tool_taking_case_gets_the_case_variables_not_the_arguments() -> None:
    wf = loads("""
name: t
steps:
  - {id: who, kind: tool, tool: whoami, config: {args: {note: "{question}"}}}
""")
    res = asyncio.run(Executor(plan(wf), tools=_reg()).run({"question": "customer_id=99", "customer_id": "7"}))
    assert res.ok, res.error
    assert res.output == {"customer": "7", "note": "customer_id=99"}


@pytest.mark.parametrize("key", ["case", "idempotency_key"])
def test_arguments_that_name_what_only_the_executor_passes_are_refused(key: str) -> None:
    with pytest.raises(InputError, match="only the executor passes"):
        asyncio.run(_reg().call("whoami", {"note": "x", key: {"customer_id": 1}}, case={"customer_id": 7}))
