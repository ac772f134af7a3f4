"""The exception tree of petriflow: one root, each error with its context.

Every error says *where* (file, line, step or place) and *what to do*; the CLI
turns any of them into one line on stderr and an exit code, never a traceback.

    PetriflowError                 root; ``exit_code`` tells the CLI what to return
    ├── InputError                 bad input from the user (exit 2)
    │   ├── SpecError              a workflow file or builder call is wrong
    │   ├── PnmlError              a PNML file cannot be read
    │   ├── NetError               a net is malformed (shapes, ids, markings)
    │   └── ProfileError           a simulation profile or trace file is wrong
    ├── PropertyViolation          a verified property fails (exit 1)
    │   └── UnsoundWorkflowError   a workflow that is not sound cannot be planned
    ├── BudgetExceeded             a state, memory, time or money budget ran out (exit 3)
    └── ExecutionError             a run failed at run time (exit 1)
        ├── ModelCallError         a model endpoint answered wrongly or not at all
        │   ├── RetryableCallError 429, 5xx, timeout, connection, malformed: another attempt may work
        │   └── FatalCallError     any other refusal (400, 401, 404, ...): not retried
        ├── StepFailed             a step failed after its retries and fallback
        ├── Escalated              a person escalated a waiting human step (a TimeoutError too)
        └── ServerError            a local model server could not be started
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = [
    "BudgetExceeded",
    "Escalated",
    "ExecutionError",
    "FatalCallError",
    "InputError",
    "ModelCallError",
    "NetError",
    "PetriflowError",
    "PnmlError",
    "ProfileError",
    "PropertyViolation",
    "RetryKind",
    "RetryableCallError",
    "ServerError",
    "SpecError",
    "StepFailed",
    "UnsoundWorkflowError",
    "printable",
]

UNPRINTABLE = r"\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
"""What a name may not contain, as the body of a regex character class: C0 and C1 control characters
(a terminal obeys them: colours, cursor moves, a fake new line), the Unicode line separators and the
bidirectional overrides that make text read differently from what it is. The schema's name patterns
and :func:`printable` share it."""
_UNPRINTABLE = re.compile(f"[{UNPRINTABLE}]")
SHOWN_WORD = 120
"""A word (a run without spaces: an id, a path, a repr) longer than this is shortened in messages."""
_LONG_WORD = re.compile(rf"\S{{{SHOWN_WORD + 1},}}")
SHOWN_LINE = 1000
"""A message line longer than this is shortened in its middle, so the hint at its end survives."""


def printable(text: str, *, limit: int = SHOWN_LINE) -> str:
    """``text`` made safe to print on one terminal line: unprintable characters as ``\\x1b``-style escapes,
    words over :data:`SHOWN_WORD` characters and the whole over ``limit`` characters cut in the middle.

    Names in messages come from files, and a file can hold anything: an escape sequence that
    recolours the terminal, a newline that forges a second line, a 10,000-character id.

    >>> printable("step 'a\\x1b[31m'")
    "step 'a\\\\x1b[31m'"
    >>> printable("unknown step '" + "x" * 10_000 + "'")
    "unknown step 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…[9942 more]…xxxxxxxxxxxxxxxxxxx'"
    """
    text = _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    text = _LONG_WORD.sub(lambda m: _cut(m.group(), SHOWN_WORD // 2), text)
    return _cut(text, limit) if len(text) > limit else text


def _cut(text: str, keep: int) -> str:
    """The first two thirds and the last third of ``keep`` characters, and how many were left out."""
    head, tail = keep * 2 // 3, keep // 3
    return f"{text[:head]}…[{len(text) - head - tail} more]…{text[len(text) - tail:]}"


class PetriflowError(Exception):
    """Root of every error petriflow raises on purpose.

    ``where`` locates the problem (``file:line``, a step id, a place id);
    ``hint`` says what would fix it. ``str(err)`` joins them in one line.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        """One printable line (a witness may follow on lines of its own): see :func:`printable`."""
        head, newline, rest = self.message.partition("\n")  # a witness may follow the first line
        text = f"{self.where}: {head}" if self.where else head
        if self.hint:
            text += f" ({self.hint})"
        lines = [text, *rest.split("\n")] if newline else [text]
        return "\n".join(printable(line) for line in lines)


class InputError(PetriflowError):
    """The user gave something petriflow cannot use; nothing was changed."""

    exit_code = 2


class SpecError(InputError):
    """A workflow definition is invalid: ``where`` is ``file:line`` and the step."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        step: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.step = step
        parts = []
        if file:
            parts.append(f"{file}:{line}" if line else file)
        if step:
            parts.append(f"step '{step}'")
        super().__init__(message, where=", ".join(parts) or None, hint=hint)


class PnmlError(InputError):
    """A PNML document is not a P/T net petriflow can read."""


class NetError(InputError):
    """A Petri net is malformed: mismatched shapes, unknown ids, negative markings."""


class ProfileError(InputError):
    """A simulation profile, a variation spec or a trace file is invalid."""


class PropertyViolation(PetriflowError):
    """A property that was required to hold does not."""

    exit_code = 1


class UnsoundWorkflowError(PropertyViolation):
    """Planning refused a workflow whose net is not sound; the message has the witness."""


class BudgetExceeded(PetriflowError):
    """A search or a run stopped because a budget (states, memory, time, money) ran out."""

    exit_code = 3


class ExecutionError(PetriflowError):
    """A workflow run failed at run time."""

    exit_code = 1


class ModelCallError(ExecutionError):
    """A model endpoint failed after every retry and fallback."""


class ServerError(ExecutionError):
    """A local model server could not be started or reached."""


RetryKind = Literal["rate_limit", "server", "timeout", "connection", "malformed", "raised"]
"""Why a retryable call failed (``raised``: a python step or tool raised an exception declared retryable)."""


class RetryableCallError(ModelCallError):
    """The call failed in a way that another attempt may fix; ``retry_after`` is the server's wish."""

    def __init__(self, message: str, *, kind: RetryKind, retry_after: float | None = None,
                 status: int | None = None, where: str | None = None, hint: str | None = None) -> None:
        self.kind = kind
        self.retry_after = retry_after
        self.status = status
        super().__init__(message, where=where, hint=hint)


class FatalCallError(ModelCallError):
    """The endpoint refused the request in a way another attempt will not change."""

    def __init__(self, message: str, *, status: int | None = None, where: str | None = None,
                 hint: str | None = None) -> None:
        self.status = status
        super().__init__(message, where=where, hint=hint)


class StepFailed(ExecutionError):
    """A step failed for good: no attempts left and no fallback (or the fallback failed too)."""

    held: str | None = None


class Escalated(ExecutionError, TimeoutError):
    """A person escalated a waiting human step before its deadline: the deadline, brought forward.

    A ``TimeoutError`` on purpose: the step's policies treat it as the
    deadline passing (:func:`petriflow.rules.error_kind` says ``timeout``),
    so its fallback or its ``on_failure`` handler takes over by the same rule.
    """
