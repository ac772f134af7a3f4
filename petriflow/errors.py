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
        │   ├── RetryableCallError (execute.call_errors) 429, 5xx, timeout, connection, malformed
        │   └── FatalCallError     (execute.call_errors) any other refusal: not retried
        ├── StepFailed             (execute.policies) a step failed after its retries and fallback
        └── ServerError            a local model server could not be started
"""

from __future__ import annotations

__all__ = [
    "BudgetExceeded",
    "ExecutionError",
    "InputError",
    "ModelCallError",
    "NetError",
    "PetriflowError",
    "PnmlError",
    "ProfileError",
    "PropertyViolation",
    "ServerError",
    "SpecError",
    "UnsoundWorkflowError",
]


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
        head, newline, rest = self.message.partition("\n")  # a witness may follow the first line
        text = f"{self.where}: {head}" if self.where else head
        if self.hint:
            text += f" ({self.hint})"
        return text + newline + rest


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
