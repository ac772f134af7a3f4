"""One case's state while it runs, and what a step task reports back: shared by the loop and the policies.

The executor's case loop (:mod:`petriflow.execute.executor`) changes a case's
marking; the step policies (:mod:`petriflow.execute.policies`) read it (the
retry budget) and add to its cost and events. Both need these types, and
neither should need the other's module to get them, so they live here,
below both.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

from petriflow.errors import PetriflowError
from petriflow.execute.plan import Outcome, StepPlan
from petriflow.execute.redact import redact
from petriflow.execute.store import Checkpoint
from petriflow.trace import TraceRecord

__all__ = ["Case", "Done", "Mailbox", "message"]


@dataclass
class Done:
    """What a step task tells its case loop: which step ran (the step or its fallback) and its output."""

    step: str
    ran: str
    key: str
    output: Any = None
    error: BaseException | None = None
    attempt: TraceRecord | None = None
    reused: Checkpoint | None = None
    outcome: Outcome | None = None  # a map's collect transition
    failed: BaseException | None = None  # the step failed for good and hands over to its on_failure handler
    holds: bool = False  # the step that ran still holds its resources (released once its finish fires)


class Mailbox:
    """Where a case's step tasks drop their results: a deque and one waiter (lighter than asyncio.Queue)."""

    __slots__ = ("items", "waiter")

    def __init__(self) -> None:
        self.items: deque[Done] = deque()
        self.waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Done) -> None:
        self.items.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def get(self) -> Done:
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.items.popleft()

    def empty(self) -> bool:
        return not self.items

    def get_nowait(self) -> Done:
        return self.items.popleft()


class Case:
    """One case's state; only its loop changes ``marking``."""

    def loop_pass(self, step: str) -> int:
        """Which run of ``step`` (or of the step a fallback stands in for) this is: pass n round a loop is n."""
        return max(1, self.occurrences.get(step, 1))

    def failure_info(self) -> dict[str, str] | None:
        """What an on_failure handler is told: the step that failed for good and its error (None: none did)."""
        if self.failure is None:
            return None
        return {"step": self.failed_step or "", "error": message(self.failure)}

    __slots__ = (
        "cost",
        "deferred",
        "events",
        "failed_step",
        "failure",
        "index",
        "input_tokens",
        "marking",
        "memo",
        "occurrences",
        "output_tokens",
        "outputs",
        "pending",
        "previous",
        "queue",
        "ready",
        "reused",
        "run_id",
        "tasks",
        "vars",
    )

    def __init__(self, run_id: str, index: int, vars_: dict[str, Any], marking: dict[str, int],
                 memo: dict[str, Checkpoint]) -> None:
        self.run_id, self.index, self.vars, self.marking, self.memo = run_id, index, vars_, marking, memo
        self.queue = Mailbox()
        self.outputs: dict[str, Any] = {}
        self.previous: dict[str, Any] = {}
        self.failure: BaseException | None = None  # a step failed for good and its on_failure handler took over
        self.failed_step: str | None = None  # which step that was  # a loop body's outputs on the pass before (see StepCall)
        self.occurrences: dict[str, int] = {}
        self.events: list[str] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.pending = 0  # launched step tasks whose message has not been read yet
        self.ready: deque[tuple[StepPlan, str, str]] = deque()  # inline steps waiting for the loop
        self.deferred: list[tuple[StepPlan, str, str]] = []  # steps to start once the loop has fired all
        self.cost = 0.0
        self.input_tokens = self.output_tokens = self.reused = 0


def message(exc: BaseException | None) -> str:
    """One line for a failure, redacted of credentials (it is stored and printed): petriflow's errors
    speak for themselves, others get their type name."""
    if exc is None:
        return "unknown error"
    text = str(exc) or type(exc).__name__
    return redact(text if isinstance(exc, PetriflowError) else f"{type(exc).__name__}: {text}")
