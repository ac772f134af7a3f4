"""The tool allow-list: registered callables with the JSON Schema of their arguments.

Only registered tools can run (a workflow file names a tool; it does not
import code through a tool step; its ``tools:`` section declares them).
Arguments are checked against the tool's schema before the call, and the
exceptions a tool declares retryable become :class:`RetryableCallError`, the
one thing :func:`petriflow.rules.error_kind` retries besides timeouts.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from petriflow.errors import InputError, RetryableCallError

__all__ = ["DEFAULT_TOOLS", "Tool", "ToolRegistry", "idempotency_key", "retryable"]


@dataclass(frozen=True)
class Tool:
    """A callable (sync or async) with the JSON Schema of its keyword arguments."""

    name: str
    fn: Callable[..., Any]
    schema: Mapping[str, Any]
    description: str = ""
    retry_on: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)

    @property
    def wants_key(self) -> bool:
        return self._takes("idempotency_key")

    @property
    def wants_case(self) -> bool:
        """Whether the tool reads the case variables (``case=``): what the caller is, never what a model wrote."""
        return self._takes("case")

    def _takes(self, name: str) -> bool:
        try:
            return name in inspect.signature(self.fn).parameters
        except (TypeError, ValueError):
            return False


class ToolRegistry:
    """The allow-list. ``register`` (or the ``@tool`` decorator) adds; ``call`` validates and runs."""

    def __init__(self, tools: Mapping[str, Tool] | None = None) -> None:
        self._tools: dict[str, Tool] = dict(tools or {})

    def register(self, name: str, fn: Callable[..., Any], *, schema: Mapping[str, Any] | None = None,
                 description: str = "",
                 retry_on: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)) -> Tool:
        t = Tool(name, fn, schema or {"type": "object"}, description or (fn.__doc__ or "").strip().split("\n")[0],
                 retry_on)
        self._tools[name] = t
        return t

    def tool(self, *, name: str | None = None, schema: Mapping[str, Any] | None = None
             ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.register(name or fn.__name__, fn, schema=schema)
            return fn
        return deco

    def names(self) -> list[str]:
        return sorted(self._tools)

    def copy(self) -> ToolRegistry:
        return ToolRegistry(self._tools)

    def get(self, name: str, *, step: str | None = None) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise InputError(f"tool '{name}' is not registered", where=f"step '{step}'" if step else None,
                             hint=f"registered tools: {', '.join(self.names()) or 'none'}; "
                                  "declare it under `tools:` in the workflow file") from None

    def check_args(self, name: str, args: Mapping[str, Any]) -> None:
        import jsonschema

        try:
            jsonschema.validate(dict(args), dict(self.get(name).schema))
        except jsonschema.ValidationError as exc:
            raise InputError(f"tool '{name}': bad arguments: {exc.message}",
                             hint="fix the step's `config.args`") from None

    async def call(self, name: str, args: Mapping[str, Any], *, idempotency_key: str | None = None,
                   case: Mapping[str, Any] | None = None) -> Any:
        """Validate ``args`` and call the tool; a tool taking ``case`` gets the case variables.

        ``case`` and ``idempotency_key`` are the caller's, so arguments may not name them: a step's
        arguments (which a model may have written) cannot pose as the authenticated case.
        """
        t = self.get(name)
        reserved = sorted({"case", "idempotency_key"} & set(args))
        if reserved:
            raise InputError(f"tool '{name}': the arguments name {', '.join(reserved)}, which only the "
                             "executor passes", hint="remove it from `config.args`; a tool reads the case "
                             "from its `case` parameter")
        self.check_args(name, args)
        kwargs = dict(args)
        if idempotency_key is not None and t.wants_key:
            kwargs["idempotency_key"] = idempotency_key
        if t.wants_case:
            kwargs["case"] = dict(case or {})
        with retryable(t.retry_on, f"tool '{name}'"):
            out = t.fn(**kwargs)
            if inspect.isawaitable(out):
                out = await out
        return out


@contextlib.contextmanager
def retryable(kinds: tuple[type[BaseException], ...], what: str) -> Iterator[None]:
    """Turn an exception listed in ``kinds`` into a :class:`RetryableCallError` (kind ``raised``).

    :func:`petriflow.rules.error_kind` retries only call errors marked
    retryable and timeouts; everything else a Python callable raises is
    fatal (a bug is not fixed by trying again). A step's ``retry.on`` or a
    tool's ``retry_on`` names the exceptions that are transient instead.
    ``TimeoutError`` stays itself: it is already the ``timeout`` kind.
    """
    try:
        yield
    except TimeoutError:
        raise
    except kinds as exc:
        raise RetryableCallError(f"{what} raised {type(exc).__name__}: {exc}", kind="raised") from exc


def idempotency_key(run_id: str, case: int, key: str, args: Mapping[str, Any]) -> str:
    """Same run, case, step execution and arguments: same key (a hex digest)."""
    raw = json.dumps([run_id, case, key, dict(args)], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _default() -> ToolRegistry:
    from petriflow.execute.builtins import search_notes

    reg = ToolRegistry()
    reg.register("search_notes", search_notes, schema={
        "type": "object", "required": ["query"], "additionalProperties": False,
        "properties": {"query": {"type": "string"}, "k": {"type": "integer", "minimum": 1, "maximum": 20}},
    }, description="keyword search over petriflow's small local notes list")
    return reg


DEFAULT_TOOLS = _default()
"""The tools every executor allows unless given its own registry: ``search_notes``."""
