"""The workflows of the contract, each with the behaviours of its steps or models and its load.

Latencies are tens of milliseconds (50-150 ms means) so the executor's own
per-call time is a small share; cases are a few hundred so a test takes
seconds. Every case is written to the executor's semantics (the reference);
the simulator follows each of them from the profile alone (a 429's
``Retry-After`` included, as the profile's ``retry_after``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from petriflow.profile.distributions import Dist, Empirical, parse_dist
from petriflow.simulate import Load
from petriflow.spec import WorkflowBuilder
from petriflow.spec.model import Workflow
from tests.execute.synthetic import Behaviour

from .harness import ContractCase

__all__ = ["CASES", "by_name"]

ECHO = "petriflow.execute.builtins:echo"
FIRST = "petriflow.execute.builtins:first_answer"
CHAT: dict[str, Any] = {"kind": "chat", "prompt": "{question}", "config": {"max_tokens": 4096}}
"""A chat step; ``max_tokens`` far above every output distribution's tail, so the server never cuts one."""


def lognormal(mean: float, sigma: float = 0.3) -> Dist:
    return parse_dist({"dist": "lognormal", "mean": mean, "sigma": sigma})


def gamma(mean: float, shape: float) -> Dist:
    return parse_dist({"dist": "gamma", "mean": mean, "shape": shape})


IN, OUT = gamma(40, 8), gamma(120, 8)
"""Input and output tokens of an ordinary call (shape 8: a coefficient of variation of 0.35, so a mean cost
over 2,000 cases is known to about 1.5%)."""


def _builder(name: str, base_url: str) -> WorkflowBuilder:
    """A workflow with three priced models, all served by the synthetic server at ``base_url``."""
    return (WorkflowBuilder(f"contract-{name}")
            .model("fast", name="fast-model", base_url=base_url, price_input=0.5, price_output=1.5,
                   price_call=0.0001)
            .model("big", name="big-model", base_url=base_url, price_input=2.5, price_output=10.0)
            .model("small", name="small-model", base_url=base_url, price_input=0.1, price_output=0.3))


def _chat(model: str, **options: Any) -> dict[str, Any]:
    return {**CHAT, "model": model, **options}


def sequence(base_url: str) -> Workflow:
    return (_builder("sequence", base_url).step("a", **_chat("fast")).step("b", after=["a"], **_chat("big"))
            .step("c", after=["b"], **_chat("small")).build())


def fanout(base_url: str) -> Workflow:
    b = _builder("fanout", base_url).resource("llm", capacity=3).step("plan", **_chat("fast"))
    for i in range(4):
        b.step(f"part{i}", after=["plan"], uses={"llm": 1}, **_chat("fast"))
    return b.step("join", kind="python", function=ECHO, after=[f"part{i}" for i in range(4)],
                  config={"kwargs": {"value": 1}}).build()


def route(base_url: str) -> Workflow:
    branches = [{"to": t, "p": p, "when": t} for t, p in (("simple", 0.5), ("code", 0.3), ("search", 0.2))]
    return (_builder("route", base_url).step("classify", route=branches, **_chat("fast"))
            .step("simple", **_chat("small")).step("code", **_chat("fast")).step("search", **_chat("fast"))
            .step("answer", kind="python", function=FIRST, after_any=["simple", "code", "search"]).build())


LOW, HIGH = -math.log(0.7), -math.log(0.3)
"""Thresholds on an exponential score of mean 1: P(score < LOW) = 0.3, P(LOW <= score < HIGH) = 0.4."""


def condition(base_url: str) -> Workflow:
    branches = [{"to": "human", "p": 0.3, "when": f"output.score < {LOW!r}", "name": "low"},
                {"to": "cheap", "p": 0.4, "when": f"output.score >= {LOW!r} and output.score < {HIGH!r}"},
                {"to": "thorough", "p": 0.3, "when": f"output.score >= {HIGH!r}"}]
    return (_builder("condition", base_url).step("score", route=branches, **_chat("fast"))
            .step("human", **_chat("small")).step("cheap", **_chat("small")).step("thorough", **_chat("big"))
            .step("answer", kind="python", function=FIRST, after_any=["human", "cheap", "thorough"]).build())


def map_retries(base_url: str) -> Workflow:
    return (_builder("map", base_url)
            .step("split", **_chat("fast", output_schema={"type": "array", "items": {"type": "string"}}))
            .step("answer", after=["split"], map={"over": "split", "max": 4}, prompt="{item}",
                  retry={"max_attempts": 3, "backoff": 0.05, "backoff_max": 1.0},
                  **{k: v for k, v in _chat("fast").items() if k != "prompt"})
            .build())


def token_limit(base_url: str) -> Workflow:
    return (_builder("tokens", base_url).resource("api", capacity=8, tokens_per_minute=60_000)
            .step("ask", uses={"api": 1}, **_chat("fast")).build())


def fallback(base_url: str) -> Workflow:
    return (_builder("fallback", base_url)
            .step("draft", timeout=0.3, retry={"max_attempts": 2, "backoff": 0.05}, fallback="backup",
                  **_chat("big"))
            .step("backup", **_chat("small"))
            .step("final", after=["draft"], **_chat("fast")).build())


def fatal(base_url: str) -> Workflow:
    return (_builder("fatal", base_url).step("ask", retry={"max_attempts": 3, "backoff": 0.05}, **_chat("fast"))
            .step("polish", after=["ask"], **_chat("small")).build())


def retry_after(base_url: str) -> Workflow:
    return (_builder("retry-after", base_url).step("ask", retry={"max_attempts": 4, "backoff": 0.02},
                                                   **_chat("fast")).build())


def loop(base_url: str) -> Workflow:
    again = {"to": "draft", "max": 2, "p": 0.3, "when": f"output.score < {LOW!r}"}
    return (_builder("loop", base_url).step("draft", **_chat("fast"))
            .step("review", after=["draft"], loop=again, **_chat("small")).build())


def on_failure(base_url: str) -> Workflow:
    return (_builder("on-failure", base_url).step("ask", on_failure="audit", **_chat("fast"))
            .step("polish", after=["ask"], **_chat("small"))
            .step("audit", kind="python", function=ECHO, config={"kwargs": {"value": 1}}).build())


def _ok(mean: float, *, sigma: float = 0.3, out: Dist = OUT, **extra: Any) -> Behaviour:
    """A step or model that answers after a lognormal latency with ordinary token counts."""
    return Behaviour(latency=lognormal(mean, sigma), input_tokens=IN, output_tokens=out, **extra)


CLOSED = Load.closed(users=8, think={"dist": "exponential", "mean": 0.05})
"""Eight users, each thinking 50 ms (exponential) between one case and the next."""

_CASES: tuple[tuple[str, str, Callable[[str], Workflow], dict[str, Behaviour], Load, int], ...] = (
    ("sequence", "a -> b -> c on three models; lognormal and gamma latencies", sequence,
     {"a": _ok(0.06), "b": Behaviour(latency=gamma(0.08, 4), input_tokens=IN, output_tokens=gamma(300, 8)),
      "c": _ok(0.05, sigma=0.2)}, CLOSED, 300),
    ("fanout", "plan -> 4 parts -> join; the parts share a resource of capacity 3 (queues)", fanout,
     {"plan": _ok(0.05), **{f"part{i}": _ok(0.05) for i in range(4)}}, Load.closed(users=4), 160),
    ("route", "classify -> one of simple (50%), code (30%), search (20%) -> answer; Poisson arrivals", route,
     {"classify": _ok(0.05, choices={"simple": 0.5, "code": 0.3, "search": 0.2}),
      "simple": _ok(0.05), "code": _ok(0.15, sigma=0.4, out=gamma(400, 8)), "search": _ok(0.08)},
     Load.poisson(40.0), 300),
    ("condition", "score -> `output.score` against two thresholds picks human (30%), cheap (40%) or "
     "thorough (30%, big-model) -> answer; the server's score is exponential, the simulator draws `p`",
     condition, {"score": _ok(0.05, scores=parse_dist({"dist": "exponential", "mean": 1.0})),
                 "human": _ok(0.05), "cheap": _ok(0.05), "thorough": _ok(0.12, sigma=0.4, out=gamma(400, 8))},
     Load.poisson(40.0), 300),
    ("map_retries", "split into 1-4 items -> answer each; 15% 500s retried (3 attempts, pooled budget)",
     map_retries, {"split": _ok(0.05, items=Empirical((1, 2, 2, 3, 4)), max_items=4),
                   "answer": _ok(0.06, errors={"500": 0.15})}, CLOSED, 300),
    ("token_limit", "one call of ~100 tokens under 60,000 tokens/min: a minute's tokens at once, then "
     "10 calls/s",
     token_limit, {"ask": Behaviour(latency=lognormal(0.05), input_tokens=parse_dist(20),
                                    output_tokens=gamma(80, 4))}, CLOSED, 640),
    ("fallback", "draft on big-model hangs 10% (timeout 0.3 s) or fails 10%, 2 attempts, then backup on "
     "small-model; behaviours per model", fallback,
     {"big-model": _ok(0.08, errors={"hang": 0.1, "500": 0.1}), "small-model": _ok(0.05),
      "fast-model": _ok(0.05)}, CLOSED, 300),
    ("fatal", "ask fails 10% with 400 (fatal: given up at once) and 10% with 500 (retried)", fatal,
     {"ask": _ok(0.06, errors={"400": 0.1, "500": 0.1}), "polish": _ok(0.05)}, CLOSED, 300),
    ("loop", "draft -> review, which sends the case back to draft while `output.score` is low (30% a pass, "
     "at most 2 passes back); the server's score is exponential, the simulator draws `p`", loop,
     {"draft": _ok(0.05), "review": _ok(0.04, scores=parse_dist({"dist": "exponential", "mean": 1.0}))},
     CLOSED, 300),
    ("on_failure", "ask fails 10% with 400 (fatal): its on_failure handler audit runs and the case fails; "
     "else polish", on_failure, {"ask": _ok(0.06, errors={"400": 0.1}), "polish": _ok(0.05)}, CLOSED, 300),
    ("retry_after", "20% of calls get 429 with Retry-After 0.25 s (the executor waits it; back-off is "
     "20 ms); the profile's retry_after carries it", retry_after,
     {"ask": _ok(0.06, errors={"429:0.25": 0.2})}, CLOSED, 300),
)

CASES: tuple[ContractCase, ...] = tuple(ContractCase(n, s, b, beh, load, k) for n, s, b, beh, load, k in _CASES)


def by_name(name: str) -> ContractCase:
    return next(c for c in CASES if c.name == name)
