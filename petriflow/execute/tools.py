"""How steps call out: registered tools (an allow-list with argument schemas) and every step kind.

A ``tool`` step names a tool; only registered tools can run (a workflow file
cannot import arbitrary code through a tool step). Arguments are checked
against the tool's JSON Schema before the call. A tool that declares an
``idempotency_key`` parameter receives one: the same key for the same step
execution of the same case in the same run, so a tool with side effects can
deduplicate a call that is repeated after a crash or a retry; the executor
also remembers each keyed result in the checkpoint store and never repeats a
call whose result it already has.

:class:`KindRunner` makes one attempt of a step of any kind (chat, classify,
embed, tool, python, human): it renders prompt templates over the case's
variables and upstream outputs (:func:`render`), resolves endpoints and
Python callables once, and caches classifier centroids. Policies (retries,
timeouts, fallbacks, budgets) are the executor's, not this module's.

>>> reg = ToolRegistry()
>>> @reg.tool(schema={"type": "object", "required": ["x"], "properties": {"x": {"type": "integer"}}})
... def double(x: int) -> int:
...     return 2 * x
>>> import asyncio; asyncio.run(reg.call("double", {"x": 21}))
42
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from petriflow.errors import Escalated, InputError, SpecError
from petriflow.execute.attachments import part_kind
from petriflow.execute.imports import resolve, resolve_exceptions
from petriflow.execute.templates import as_text, render, render_content
from petriflow.rules import billed, output_limit, prompt_limit
from petriflow.spec.model import Retry

__all__ = [
    "DEFAULT_TOOLS",
    "KindResult",
    "KindRunner",
    "StepCall",
    "Tool",
    "ToolRegistry",
    "as_text",
    "idempotency_key",
    "label_of",
    "render",
    "render_content",
    "wants_loop",
]


from petriflow.execute.registry import (
    DEFAULT_TOOLS,
    Tool,
    ToolRegistry,
    idempotency_key,
    retryable,
)

# -- how each step kind calls out ---------------------------------------------------------

SCORE_TEMPERATURE = 0.05
"""The temperature of a classify step's score: a similarity lead of 0.05 over another label is e:1 odds."""

_INJECTED = ("case", "workflow_dir")
"""Parameters of a python step's callable that the executor fills: the case variables, the workflow file's folder."""

_RESERVED = ("kwargs", "args", "max_tokens", "temperature", "stream", "step_timeout", "route_field",
             "loop_field", "thread", "poll", "cache", "input_type", "score_temperature")


@dataclass(frozen=True)
class StepCall:
    """What one step execution sees: the case's variables, the outputs so far, its map item, its loop pass.

    ``outputs`` holds what the step sees (:meth:`~petriflow.execute.plan.StepPlan.view`): the
    steps finished on every path to it, and after an XOR-join ``after_any``
    and ``after_any_step``.
    ``loop_pass`` counts this step's runs in the case (1 on the first; the
    n-th pass round a loop is pass n); ``previous`` holds, for every step of
    a loop body, its output on the pass before (empty on the first pass),
    while ``outputs`` has the latest output of each step. Templates read
    them as ``{loop_pass}`` and ``{previous[STEP]}``; Python steps inside a
    loop get them as ``inputs["loop_pass"]`` and ``inputs["previous"]``.
    An ``on_failure`` handler is told what failed: ``failure`` is
    ``{"step": STEP, "error": TEXT}`` (``inputs["failure"]``, ``{failure[error]}``).
    """

    run_id: str
    case: int
    key: str
    vars: Mapping[str, Any]
    outputs: Mapping[str, Any]
    item: Any = None
    index: int | None = None  # the map item's position, for the trace
    loop_pass: int = 1
    previous: Mapping[str, Any] = field(default_factory=dict)
    failure: Mapping[str, str] | None = None  # in an on_failure handler: {"step", "error"} of the step that failed


@dataclass(frozen=True)
class KindResult:
    """A step's output with the usage of the calls that made it."""

    output: Any
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


def _with_declared_cost(sp: Any, out: KindResult) -> KindResult:
    """``out`` billed the step's ``cost:`` on top of its calls' usage (:func:`petriflow.rules.billed`)."""
    return replace(out, cost=billed(out.cost, sp.step.cost)) if sp.step.cost else out


def _pick(output: Any, config: Mapping[str, Any], key: str, default: tuple[str, ...]) -> Any:
    if isinstance(output, Mapping):
        field_ = config.get(key)
        for k in ((field_,) if field_ else default):
            if k in output:
                return output[k]
        return None
    return output


def label_of(output: Any, labels: tuple[str, ...], config: Mapping[str, Any]) -> str | None:
    """The route label an output names: exactly, ignoring case, or as the one label its text mentions."""
    value = _pick(output, config, "route_field", ("label", "route", "intent", "choice", "decision"))
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text in labels:
        return text
    low = {lab.lower(): lab for lab in labels}
    if text.lower() in low:
        return low[text.lower()]
    words = set(re.findall(r"[a-z0-9_-]+", text.lower()))
    hits = [lab for lab in labels if lab.lower() in words]
    return hits[0] if len(hits) == 1 else None


def wants_loop(output: Any, when: str, config: Mapping[str, Any]) -> bool:
    """Whether the output asks to go round the loop: it names ``when``, or its field ``when`` is true."""
    if isinstance(output, Mapping):
        flag = output.get(config.get("loop_field") or when)
        if isinstance(flag, bool):
            return flag
    return label_of(output, (when,), config) == when


class KindRunner:
    """Runs one attempt of a step of any kind. Endpoints, functions and centroids are resolved once."""

    def __init__(self, dag: Any, *, client: Any, tools: ToolRegistry, store: Any,
                 endpoints: Mapping[str, Any] | None = None) -> None:
        self.dag, self._client, self.store = dag, client, store
        self.tools = self._with_declared(tools, dag.workflow)
        self.on_wait: Callable[[str, int, str, int], None] | None = None  # told once when a human step waits
        self.endpoints: dict[str, Any] = dict(endpoints or {})
        self._functions: dict[str, tuple[Callable[..., Any], bool, frozenset[str]]] = {}
        self._retry_on: dict[str, tuple[type[BaseException], ...]] = {}
        self._centroids: dict[str, tuple[tuple[str, ...], Any]] = {}
        self._building: dict[str, asyncio.Future[tuple[int, float]]] = {}
        for sp in dag.steps.values():
            if sp.step.kind == "python":
                self._function(sp.step)
                self.retry_on(sp.step)
            elif sp.step.kind == "tool":
                self.tools.get(sp.step.tool or "", step=sp.id)
                self.retry_on(sp.step)

    @staticmethod
    def _with_declared(tools: ToolRegistry, wf: Any) -> ToolRegistry:
        """``tools`` plus the workflow file's ``tools:``, each imported relative to the file
        (:class:`SpecError` at the declaration's line if one cannot be imported or called)."""
        if not wf.tools:
            return tools
        reg = tools.copy()
        for t in wf.tools.values():
            try:
                fn = resolve(t.function, wf.source)
                kinds = resolve_exceptions(t.retry_on, wf.source)
            except (ImportError, AttributeError, ValueError) as exc:
                raise SpecError(f"tool '{t.name}': cannot import '{t.function}': {exc}", file=wf.source,
                                line=t.line, hint="write module:callable; modules are looked up in the "
                                "workflow file's directory first") from None
            if not callable(fn):
                raise SpecError(f"tool '{t.name}': '{t.function}' is not callable", file=wf.source, line=t.line,
                                hint="name a function") from None
            reg.register(t.name, fn, schema=t.schema, description=t.description, retry_on=kinds)
        return reg

    def retry_on(self, step: Any) -> tuple[type[BaseException], ...]:
        """The exceptions of a python step that another attempt may fix (its ``retry.on``)."""
        got = self._retry_on.get(step.id)
        if got is None:
            try:
                got = self._retry_on[step.id] = resolve_exceptions(step.retry.on, self.dag.workflow.source)
            except (ImportError, AttributeError, ValueError) as exc:
                raise SpecError(f"`retry.on`: {exc}", file=self.dag.workflow.source, line=step.line, step=step.id,
                                hint="name builtin exceptions (ConnectionError) or module:Name") from None
        return got

    def _step_retry_on(self, step: Any) -> tuple[type[BaseException], ...]:
        """A tool step's ``retry.on`` when it sets one (the tool's own ``retry_on`` applies in any case)."""
        return self.retry_on(step) if tuple(step.retry.on) != Retry().on else ()

    @property
    def client(self) -> Any:
        if self._client is None:
            from petriflow.execute.client import ModelClient

            self._client = ModelClient()
        return self._client

    def needs_models(self) -> bool:
        return any(sp.step.kind in ("chat", "embed", "classify") for sp in self.dag.steps.values())

    def endpoint(self, step: Any) -> Any:
        mid = step.model or ("default-embedding" if step.kind in ("embed", "classify") else "default")
        ep = self.endpoints.get(mid)
        if ep is None and step.model is None:  # no model named: the local server of the step's kind
            from petriflow.execute.servers import ensure_local

            kind = "embedding" if step.kind in ("embed", "classify") else "chat"
            ep = self.endpoints[mid] = ensure_local(chat=kind == "chat", embed=kind == "embedding")[kind]
        elif ep is None:
            from petriflow.execute.client import resolve_endpoint

            ep = self.endpoints[mid] = resolve_endpoint(self.dag.workflow, mid)
        return ep

    def prepare(self) -> None:
        """Resolve every endpoint now (this may start the local servers), not in the middle of a run."""
        for sp in self.dag.steps.values():
            if sp.step.kind in ("chat", "embed", "classify"):
                self.endpoint(sp.step)

    def model_name(self, sp: Any) -> str | None:
        if sp.step.kind not in ("chat", "embed", "classify"):
            return None
        ep = self.endpoints.get(sp.step.model or "")
        name: str | None = ep.model if ep is not None else sp.step.model
        return name

    def _function(self, step: Any) -> tuple[Callable[..., Any], bool, frozenset[str]]:
        got = self._functions.get(step.id)
        if got is None:
            spec = step.function or ""
            try:
                fn = resolve(spec, self.dag.workflow.source)
            except (ImportError, AttributeError, ValueError) as exc:
                raise SpecError(f"cannot import function '{spec}': {exc}", file=self.dag.workflow.source,
                                line=step.line, step=step.id, hint="write it as module:callable; modules are "
                                "looked up in the workflow file's directory first") from None
            try:
                wants = frozenset(_INJECTED) & frozenset(inspect.signature(fn).parameters)
            except (TypeError, ValueError):
                wants = frozenset()
            got = self._functions[step.id] = (fn, inspect.iscoroutinefunction(fn), wants)
        return got

    def _messages(self, step: Any, call: StepCall) -> list[dict[str, Any]]:
        msgs: list[dict[str, Any]] = []
        if step.system:
            msgs.append({"role": "system", "content": render_content(step.system, call, step.id)})
        msgs.append({"role": "user", "content": render_content(step.prompt or "{question}", call, step.id)})
        return msgs

    @staticmethod
    def _check_accepts(step: Any, ep: Any, messages: list[dict[str, Any]]) -> None:
        """Refuse to send a part the model is declared unable to read, rather than let it be dropped."""
        accepts = getattr(ep, "accepts", None)
        if accepts is None:
            return
        for m in messages:
            for part in m["content"] if isinstance(m["content"], list) else ():
                kind = part_kind(part)
                if kind not in accepts:
                    raise InputError(
                        f"the prompt carries {'an image' if kind == 'image' else 'a file'}, but model "
                        f"'{ep.model}' is declared to read only {', '.join(accepts)}",
                        where=f"step '{step.id}'",
                        hint="give the step a model that reads it (models: NAME: {base_url: ..., accepts: "
                             "[text, image]}), or turn it into text first (an OCR python step)")

    def worst_cost(self, sp: Any, call: StepCall) -> float:
        """The most the next attempt can cost (0 for steps that call no model)."""
        from petriflow.execute.pricing import estimate_cost

        step = sp.step
        declared = float(step.cost or 0.0)
        if step.kind == "chat":
            return declared + estimate_cost(self.endpoint(step), self._messages(step, call),
                                            max_tokens=output_limit(step.config))
        if step.kind in ("embed", "classify"):
            extra = sum(len(v) for v in step.labels.values()) if step.id not in self._centroids else 0
            return declared + estimate_cost(self.endpoint(step), self._query(step, call) * (1 + extra), max_tokens=0)
        return declared

    def _query(self, step: Any, call: StepCall) -> str:
        if step.prompt:
            return render(step.prompt, call, step.id)
        v = call.item if call.item is not None else call.vars.get("question", call.vars.get("input", ""))
        return as_text(v)

    async def run(self, sp: Any, call: StepCall, timeout: float | None) -> KindResult:
        kind = sp.step.kind
        limit = prompt_limit(sp.step.config)
        if limit is not None and kind in ("chat", "embed", "classify"):
            self._check_prompt(sp.step, call, limit)
        out: KindResult = await getattr(self, f"_{kind}")(sp, call, timeout)
        if kind != "chat":
            self._check_output(sp, out)
        return _with_declared_cost(sp, out)

    def _check_prompt(self, step: Any, call: StepCall, limit: int) -> None:
        """Refuse a call whose prompt passes the step's ``max_input_tokens`` (a fatal failure: no request is
        made), so a worst-case cost that counts the limit holds (:func:`petriflow.rules.prompt_limit`)."""
        from petriflow.execute.pricing import estimate_tokens

        n = estimate_tokens(self._messages(step, call) if step.kind == "chat" else self._query(step, call))
        if n > limit:
            raise ValueError(f"step '{step.id}': the prompt is about {n} tokens, more than its max_input_tokens "
                             f"({limit}); shorten the input or raise config.max_input_tokens")

    @staticmethod
    def _check_output(sp: Any, out: KindResult) -> None:
        schema = sp.step.output_schema
        if schema is not None:
            import jsonschema

            try:
                jsonschema.validate(out.output, dict(schema))
            except jsonschema.ValidationError as exc:
                raise InputError(f"the output does not match output_schema: {exc.message}",
                                 where=f"step '{sp.id}'", hint="fix the function or the schema") from None

    def inline_ok(self, sp: Any) -> bool:
        """Whether a step can run its first attempt right in the case loop: a plain synchronous Python call."""
        step = sp.step
        return (step.kind == "python" and not self._function(step)[1] and not step.config.get("thread")
                and not step.uses and step.timeout is None and "step_timeout" not in step.config
                and sp.map is None and sp.owner is None)

    def run_python_sync(self, sp: Any, call: StepCall) -> KindResult:
        fn, _, wants = self._function(sp.step)
        with retryable(self.retry_on(sp.step), f"function '{sp.step.function}'"):
            out = KindResult(fn(self._inputs(sp, call), **self._kwargs(sp, call, wants)))
        self._check_output(sp, out)
        return _with_declared_cost(sp, out)

    @staticmethod
    def _inputs(sp: Any, call: StepCall) -> dict[str, Any]:
        inputs = dict(call.outputs)  # what the step sees (StepPlan.view): the same rule as its templates
        if call.item is not None:
            inputs["item"] = call.item
        if sp.in_loop:
            inputs["loop_pass"], inputs["previous"] = call.loop_pass, dict(call.previous)
        if call.failure is not None and sp.handler:
            inputs["failure"] = dict(call.failure)
        return inputs

    def _kwargs(self, sp: Any, call: StepCall, wants: frozenset[str]) -> dict[str, Any]:
        kwargs = dict(sp.step.config.get("kwargs", {}))
        if "case" in wants:
            kwargs["case"] = dict(call.vars)
        if "workflow_dir" in wants:
            src = self.dag.workflow.source
            kwargs["workflow_dir"] = str(Path(src).resolve().parent) if src and not src.startswith("<") else None
        return kwargs

    async def _python(self, sp: Any, call: StepCall, timeout: float | None) -> KindResult:
        fn, is_async, wants = self._function(sp.step)
        inputs, kwargs = self._inputs(sp, call), self._kwargs(sp, call, wants)
        with retryable(self.retry_on(sp.step), f"function '{sp.step.function}'"):
            if is_async:
                return KindResult(await fn(inputs, **kwargs))
            if sp.step.config.get("thread"):
                return KindResult(await asyncio.to_thread(fn, inputs, **kwargs))
            return KindResult(fn(inputs, **kwargs))

    async def _tool(self, sp: Any, call: StepCall, timeout: float | None) -> KindResult:
        name = sp.step.tool or ""
        raw = sp.step.config.get("args")
        if raw is None:
            args: dict[str, Any] = {"query": self._query(sp.step, call)}
        else:
            args = {k: render(v, call, sp.id) if isinstance(v, str) else v for k, v in dict(raw).items()}
        key = idempotency_key(call.run_id, call.case, call.key, args)
        hit, value = self.store.tool_result(key)
        if hit:
            return KindResult(value)
        with retryable(self._step_retry_on(sp.step), f"tool '{name}'"):  # the step's own retry.on, too
            out = await self.tools.call(name, args, idempotency_key=key, case=call.vars)
        self.store.save_tool_result(key, out)
        return KindResult(out)

    async def _chat(self, sp: Any, call: StepCall, timeout: float | None) -> KindResult:
        step, ep = sp.step, await self._endpoint_async(sp.step)
        cfg, messages = step.config, self._messages(step, call)
        self._check_accepts(step, ep, messages)
        res = await self.client.chat(
            ep, messages, json_schema=dict(step.output_schema) if step.output_schema else None,
            max_tokens=output_limit(cfg), temperature=float(cfg.get("temperature", 0.0)),
            timeout=timeout, stream=bool(cfg.get("stream", False)), step=sp.id,
            use_cache=bool(cfg.get("cache", True)))
        out = res.parsed if step.output_schema else res.text
        return KindResult(out, res.model, res.input_tokens, res.output_tokens, res.cost)

    async def _embed(self, sp: Any, call: StepCall, timeout: float | None) -> KindResult:
        ep = await self._endpoint_async(sp.step)
        res = await self.client.embed(ep, [self._query(sp.step, call)], timeout=timeout, step=sp.id,
                                      input_type=sp.step.config.get("input_type"))
        return KindResult([float(x) for x in res.vectors[0]], res.model, res.input_tokens, 0, res.cost)

    async def _classify(self, sp: Any, call: StepCall, timeout: float | None) -> KindResult:
        """Nearest centroid: the label whose examples' mean embedding is most similar (cosine) to the input.

        The output is ``{"label": LABEL, "score": S}``: ``S`` is the softmax of
        the cosine similarities to every label's centroid at temperature
        ``config.score_temperature`` (:data:`SCORE_TEMPERATURE`), the
        classifier's confidence in its label: ``1/n`` for ``n`` labels when
        all are equally near, towards 1 as the chosen one is nearer than
        the others.
        """
        import numpy as np

        step, ep = sp.step, await self._endpoint_async(sp.step)
        tokens, cost = 0, 0.0
        if step.id not in self._centroids:
            pending = self._building.get(step.id)
            if pending is None:  # the first case embeds the examples; concurrent cases wait for it
                pending = self._building[step.id] = asyncio.ensure_future(self._centroids_of(sp, ep, timeout))
                try:
                    tokens, cost = await asyncio.shield(pending)
                finally:
                    self._building.pop(step.id, None)
            else:
                await asyncio.shield(pending)
        labels, cents = self._centroids[step.id]
        res = await self.client.embed(ep, [self._query(step, call)], timeout=timeout, step=sp.id, input_type="query")
        v = np.asarray(res.vectors[0], dtype=np.float64)
        sims = cents @ (v / (np.linalg.norm(v) or 1.0))
        best = int(np.argmax(sims))
        z = np.exp((sims - sims[best]) / float(step.config.get("score_temperature", SCORE_TEMPERATURE)))
        out = {"label": labels[best], "score": round(float(z[best] / z.sum()), 6)}
        return KindResult(out, res.model, tokens + res.input_tokens, 0, cost + res.cost)

    async def _centroids_of(self, sp: Any, ep: Any, timeout: float | None) -> tuple[int, float]:
        import numpy as np

        step = sp.step
        labels = tuple(step.labels)
        texts = [t for lab in labels for t in step.labels[lab]]
        res = await self.client.embed(ep, texts, timeout=timeout, step=sp.id, input_type="query")
        vecs, rows, i = np.asarray(res.vectors, dtype=np.float64), [], 0
        for lab in labels:
            n = len(step.labels[lab])
            m = vecs[i:i + n].mean(axis=0)
            rows.append(m / (np.linalg.norm(m) or 1.0))
            i += n
        self._centroids[step.id] = (labels, np.vstack(rows))
        return res.input_tokens, res.cost

    async def _human(self, sp: Any, call: StepCall, timeout: float | None) -> KindResult:
        """Wait for an answer given through ``petriflow answer`` or ``store.answer``; the timeout escalates.

        So does a person (:meth:`~petriflow.execute.store.RunStore.escalate`): :class:`Escalated` is a timeout.
        The wait is recorded in the store (so ``petriflow runs pending`` lists it) and told once to
        ``on_wait`` (the CLI prints the command that answers it); answers are per loop pass.
        """
        poll = float(sp.step.config.get("poll", 0.25))
        npass, waiting = call.loop_pass, False
        while True:
            text = self.store.get_answer(call.run_id, sp.id, call.case, npass=npass)
            if text is not None or (waiting and self.store.escalated(call.run_id, call.case, sp.id, npass)):
                if waiting:
                    self.store.stop_waiting(call.run_id, call.case, sp.id, npass)
                if text is None:  # the wait ends as its deadline ends it, only sooner
                    raise Escalated("escalated by a person before its deadline")
                return KindResult(text)
            if not waiting:
                waiting = True
                self.store.start_waiting(call.run_id, call.case, sp.id, npass)
                if self.on_wait is not None:
                    self.on_wait(call.run_id, call.case, sp.id, npass)
            await asyncio.sleep(poll)

    async def _endpoint_async(self, step: Any) -> Any:
        mid = step.model or ("default-embedding" if step.kind in ("embed", "classify") else "default")
        if mid in self.endpoints:
            return self.endpoints[mid]
        return await asyncio.to_thread(self.endpoint, step)
