"""The workflow model: immutable values that one file (or the builder) describes.

A :class:`Workflow` is what the user wrote, checked and normalised; it knows
nothing of Petri nets. :func:`petriflow.net.lower.lower` turns it into one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Protocol

__all__ = ["Branch", "Loop", "MapOver", "ModelEndpoint", "Priced", "Resource", "Retry", "Step", "ToolDecl", "Workflow",
           "price_of"]


def _frozen_map(m: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True)
class Branch:
    """One branch of a route: go to step ``to`` when its test holds; ``p`` is its chance in simulation.

    ``when`` is the branch's label, what traces, profiles (``given``),
    explanations and drawings call it: the branch's ``name`` if the file
    gives one, else its bare label, else the ``to`` step's id. The test is
    exactly one of ``match`` (a bare label the output must name, as
    :func:`~petriflow.execute.tools.label_of` reads it), ``condition`` (an
    expression of :mod:`petriflow.spec.conditions`) or ``default`` (``when:
    else``: taken when no other branch's test holds).
    """

    to: str
    p: float
    when: str
    match: str | None = None
    condition: str | None = None
    default: bool = False


@dataclass(frozen=True)
class Loop:
    """Go back to the earlier step ``to``, at most ``max`` times; ``p`` is the chance per pass.

    ``when`` is a label the output names (or a field of it that is true),
    or an expression over ``output``, ``case`` and ``loop_pass``
    (:mod:`petriflow.spec.conditions`).
    ``exhausted`` names the route branch (its label) a step that both
    loops and routes takes when its output asks for another pass but the
    budget is spent; such a step must name it, so running out of passes is
    a decision written in the workflow, never a silent first branch.
    """

    to: str
    max: int
    p: float = 0.5
    when: str = "retry"
    exhausted: str | None = None

    @property
    def condition(self) -> str | None:
        """``when`` if it is an expression (not one word): the loop goes back while it is true."""
        from petriflow.spec.conditions import is_label

        return None if is_label(self.when) else self.when


@dataclass(frozen=True)
class MapOver:
    """Run the step once per item of step ``over``'s list output, at most ``max`` items."""

    over: str
    max: int


@dataclass(frozen=True)
class Retry:
    """At most ``max_attempts`` attempts, waiting ``backoff * 2**k`` (capped) between them."""

    max_attempts: int = 1
    backoff: float = 0.5
    backoff_max: float = 30.0
    jitter: bool = True
    on: tuple[str, ...] = ("ConnectionError", "TimeoutError")
    """Exceptions a python or tool step may raise that another attempt may fix (builtin names or module:Name)."""


@dataclass(frozen=True)
class ToolDecl:
    """A tool the workflow file declares: ``function`` (module:callable, resolved relative to the file),
    the JSON Schema of its keyword arguments, and the exceptions that make a call retryable."""

    name: str
    function: str
    schema: Mapping[str, Any] = field(default_factory=lambda: _frozen_map({"type": "object"}))
    retry_on: tuple[str, ...] = ("ConnectionError", "TimeoutError")
    description: str = ""
    line: int | None = None


@dataclass(frozen=True)
class Step:
    """One unit of work. Control flow: ``after`` (AND-join), ``after_any`` (XOR-join),
    ``route`` (XOR-split), ``loop``, ``map``; policies: ``retry``, ``timeout``,
    ``fallback``, ``on_failure`` (the step that runs when this one fails for good,
    before the case ends failed); ``uses`` holds resources while the step runs."""

    id: str
    kind: str
    after: tuple[str, ...] = ()
    after_any: tuple[str, ...] = ()
    route: tuple[Branch, ...] = ()
    loop: Loop | None = None
    map: MapOver | None = None
    uses: Mapping[str, int] = field(default_factory=lambda: _frozen_map(None))
    retry: Retry = Retry()
    timeout: float | None = None
    fallback: str | None = None
    on_failure: str | None = None
    model: str | None = None
    prompt: str | None = None
    system: str | None = None
    output_schema: Mapping[str, Any] | None = None
    tool: str | None = None
    function: str | None = None
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _frozen_map(None))
    config: Mapping[str, Any] = field(default_factory=lambda: _frozen_map(None))
    latency: Any = None
    cost: float | None = None
    failure_rate: float = 0.0
    tokens: Mapping[str, Any] = field(default_factory=lambda: _frozen_map(None))
    description: str = ""
    line: int | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every step this one waits on, by ``after`` or ``after_any``."""
        return self.after + self.after_any


@dataclass(frozen=True)
class Resource:
    """A shared resource: ``capacity`` calls at once, optionally rate-limited."""

    id: str
    capacity: int
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None


@dataclass(frozen=True)
class ModelEndpoint:
    """A model behind an OpenAI-compatible endpoint, with its prices (dollars per 1M tokens)."""

    id: str
    name: str
    base_url: str = "local"
    api_key_env: str | None = None
    kind: str = "chat"
    price_input: float = 0.0
    price_output: float = 0.0
    price_call: float = 0.0
    accepts: tuple[str, ...] | None = None
    """What a chat model reads (``text``, ``image``, ``file``); None: not declared, every part is sent."""

    def cost(self, input_tokens: Any, output_tokens: Any, calls: Any = 1.0) -> Any:
        """Dollars for ``calls`` calls that used these tokens in all (see :func:`price_of`)."""
        return price_of(self, input_tokens, output_tokens, calls)


class Priced(Protocol):
    """Anything with the three prices: a workflow's model, a simulation profile's model, an endpoint."""

    @property
    def price_input(self) -> float: ...

    @property
    def price_output(self) -> float: ...

    @property
    def price_call(self) -> float: ...


def price_of(prices: Priced, input_tokens: Any, output_tokens: Any, calls: Any = 1.0) -> Any:
    """Dollars for ``calls`` calls that used these tokens in all: the one price formula.

    Prices are per 1M tokens and per call. Execution (actual tokens) and
    simulation (mean or sampled tokens; numpy arrays work too) both price
    calls here, so a fitted profile costs a run the way the run was charged.
    """
    return calls * prices.price_call + (input_tokens * prices.price_input + output_tokens * prices.price_output) / 1e6


@dataclass(frozen=True)
class Workflow:
    """A checked workflow: steps in file order, resources and models by id.

    ``fallback_owner`` maps a fallback step to the step it stands in for.
    """

    name: str
    steps: tuple[Step, ...]
    resources: Mapping[str, Resource] = field(default_factory=lambda: _frozen_map(None))
    models: Mapping[str, ModelEndpoint] = field(default_factory=lambda: _frozen_map(None))
    description: str = ""
    source: str | None = None
    tools: Mapping[str, ToolDecl] = field(default_factory=lambda: _frozen_map(None))

    @cached_property
    def _by_id(self) -> dict[str, Step]:
        return {s.id: s for s in self.steps}

    @cached_property
    def _routers(self) -> dict[str, tuple[str, ...]]:
        """What ``routers_of`` gives, for every step in one pass (a scan per call is O(steps^2) over a workflow)."""
        routers: dict[str, dict[str, None]] = {}
        for r in self.steps:
            for b in r.route:
                routers.setdefault(b.to, {})[r.id] = None
        return {k: tuple(v) for k, v in routers.items()}

    @cached_property
    def _fallback_owner(self) -> Mapping[str, str]:
        return MappingProxyType({s.fallback: s.id for s in self.steps if s.fallback})

    @cached_property
    def _successors(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {s.id: [] for s in self.steps}
        routers = self._routers
        for s in self.steps:  # file order of the waiting step, as users read it
            for u in dict.fromkeys((*s.inputs, *routers.get(s.id, ()))):
                if u in out:
                    out[u].append(s.id)
        return {k: tuple(v) for k, v in out.items()}

    def step(self, step_id: str) -> Step:
        return self._by_id[step_id]

    @property
    def step_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.steps)

    @property
    def fallback_owner(self) -> Mapping[str, str]:
        return self._fallback_owner

    @property
    def failure_handlers(self) -> frozenset[str]:
        """The steps named by some ``on_failure``: they run only after a failure, and end the case."""
        return frozenset(s.on_failure for s in self.steps if s.on_failure)

    def handler_of(self, step_id: str) -> str | None:
        """The failure handler of ``step_id``, or of the step it (as a fallback) stands in for."""
        return self.step(self.root_of(step_id)).on_failure

    def root_of(self, step_id: str) -> str:
        """The step a fallback (or a fallback of a fallback) finally stands in for; itself otherwise."""
        owner = self.fallback_owner
        while step_id in owner:
            step_id = owner[step_id]
        return step_id

    def routers_of(self, step_id: str) -> tuple[str, ...]:
        """The steps whose route has a branch to ``step_id``, file order."""
        return self._routers.get(step_id, ())

    def successors(self, step_id: str) -> tuple[str, ...]:
        """Steps that wait on ``step_id`` (by after/after_any or as a route target), file order."""
        self.step(step_id)  # KeyError for an unknown step, as before
        return self._successors[step_id]

    def loop_region(self, step_id: str) -> tuple[str, ...]:
        """The steps a loop on ``step_id`` repeats: on some path from its target to it, file order."""
        loop = self.step(step_id).loop
        if loop is None:
            return ()
        down, todo = {loop.to}, [loop.to]
        while todo:
            for v in self.successors(todo.pop()):
                if v not in down:
                    down.add(v)
                    todo.append(v)
        up, todo = {step_id}, [step_id]
        routed_from = {b.to: s.id for s in self.steps for b in s.route}
        while todo:
            cur = self.step(todo.pop())
            for u in (*cur.inputs, *([routed_from[cur.id]] if cur.id in routed_from else [])):
                if u not in up:
                    up.add(u)
                    todo.append(u)
        region = down & up
        return tuple(s.id for s in self.steps if s.id in region)

    def downstream(self, step_id: str) -> frozenset[str]:
        """``step_id`` and every step that (indirectly) waits on it or is routed to from it."""
        seen, todo = {step_id}, [step_id]
        while todo:
            for v in self.successors(todo.pop()):
                if v not in seen:
                    seen.add(v)
                    todo.append(v)
        return frozenset(seen)

    def exclusive_by(self, a: str, b: str) -> str | None:
        """A route step whose different branches lead to ``a`` and ``b`` only, so both never run in one case."""
        for r in self.steps:
            reach = [self.downstream(br.to) for br in r.route]
            holds_a = [i for i, d in enumerate(reach) if a in d]
            holds_b = [i for i, d in enumerate(reach) if b in d]
            if holds_a and holds_b and not set(holds_a) & set(holds_b):
                return r.id
        return None

    def ends_exclusive(self) -> bool:
        """Whether the workflow ends in exactly one of its terminal steps (each in its own route branch)."""
        ends = self.terminal_steps()
        return len(ends) > 1 and all(self.exclusive_by(a, b) for i, a in enumerate(ends) for b in ends[i + 1:])

    def initial_steps(self) -> tuple[str, ...]:
        """Steps that start when the workflow starts (no inputs, not a route target or fallback)."""
        routed = {b.to for s in self.steps for b in s.route}
        fallbacks = set(self.fallback_owner)
        return tuple(s.id for s in self.steps if not s.inputs and s.id not in routed | fallbacks | self.failure_handlers)

    def terminal_steps(self) -> tuple[str, ...]:
        """Steps nothing waits on: the workflow ends when all of them have finished."""
        skip = set(self.fallback_owner) | self.failure_handlers
        return tuple(s.id for s in self.steps if s.id not in skip and not self.successors(s.id))
