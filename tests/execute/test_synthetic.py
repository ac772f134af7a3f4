"""The fault server's behaviours: what it draws is what it says, over real HTTP through the openai client.

No timing is asserted: latencies are drawn and logged, and the tests read the
log. Shares are checked within binomial bounds of four standard deviations.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from typing import Any

import pytest

from petriflow.errors import FatalCallError, RetryableCallError
from petriflow.execute.client import ModelClient
from petriflow.execute.servers import Endpoint
from petriflow.profile.distributions import Empirical, Fixed, parse_dist

from .fault_server import MODEL, FaultServer, spawn
from .synthetic import Behaviour, Synthetic, behaviour_for

N = 400


def _calls(fs: Any, n: int, *, step: str | None = "s", model: str = MODEL) -> list[Any]:
    """``n`` chat calls, each a result or the exception it raised."""
    ep = Endpoint(base_url=fs.base_url, model=model, api_key="x")

    async def main() -> list[Any]:
        async with ModelClient() as mc:
            async def one(i: int) -> Any:
                try:
                    return await mc.chat(ep, [{"role": "user", "content": f"q {i}"}], step=step, timeout=5,
                                         max_tokens=1000)
                except (RetryableCallError, FatalCallError) as exc:
                    return exc
            return list(await asyncio.gather(*(one(i) for i in range(n))))

    return asyncio.run(main())


def _within(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 4 * math.sqrt(n * p * (1 - p)) + 1


def test_faults_tokens_and_delays_follow_the_behaviour(fault_server: FaultServer) -> None:
    b = Behaviour(latency=Fixed(0.001), input_tokens=parse_dist(30), output_tokens=Empirical((5, 50, 500)),
                  errors={"500": 0.2, "400": 0.1, "429:0.5": 0.1})
    fault_server.set_behaviours({"s": b}, seed=3)
    results = _calls(fault_server, N)
    draws = fault_server.draws()
    assert len(draws) == N and all(d["delay"] == 0.001 for d in draws)
    faults = Counter(d["fault"] for d in draws)
    for fault, p in b.errors.items():
        assert _within(faults[fault], N, p), (fault, faults)
    seen = Counter(type(r).__name__ for r in results)
    assert seen["FatalCallError"] == faults["400"]
    assert seen["RetryableCallError"] == faults["500"] + faults["429:0.5"]
    assert {r.retry_after for r in results if getattr(r, "status", None) == 429} == {0.5}
    ok = [r for r in results if not isinstance(r, Exception)]
    assert {r.input_tokens for r in ok} == {30}
    assert sorted(r.output_tokens for r in ok) == sorted(d["output_tokens"] for d in draws if d["fault"] == "ok")
    assert {r.output_tokens for r in ok} == {5, 50, 500}


def test_usage_never_exceeds_max_tokens(fault_server: FaultServer) -> None:
    fault_server.set_behaviours({"s": Behaviour(output_tokens=parse_dist(5000))})
    assert {r.output_tokens for r in _calls(fault_server, 3)} == {1000}


def test_a_route_answers_a_drawn_label_and_a_map_source_a_drawn_list(fault_server: FaultServer) -> None:
    fault_server.set_behaviours({"s": Behaviour(choices={"a": 0.7, "b": 0.3}),
                                 "split": Behaviour(items=Empirical((0, 2, 9)), max_items=4)})
    labels = Counter(r.text for r in _calls(fault_server, N))
    assert set(labels) == {"a", "b"} and _within(labels["a"], N, 0.7)
    lists = {len(json.loads(r.text)) for r in _calls(fault_server, 60, step="split")}
    assert lists == {1, 2, 4}  # 0 becomes 1, 9 becomes max_items: as the simulator clips a map's items


def test_a_model_behaviour_applies_to_steps_without_their_own(fault_server: FaultServer) -> None:
    fault_server.set_behaviours({"s": Behaviour(choices={"by-step": 1.0}),
                                 "m2": Behaviour(choices={"by-model": 1.0})})
    assert {r.text for r in _calls(fault_server, 2, step="other", model="m2")} == {"by-model"}
    assert {r.text for r in _calls(fault_server, 2, step="s", model="m2")} == {"by-step"}
    assert {d["key"] for d in fault_server.draws()} == {"m2", "s"}
    assert behaviour_for({"x": Behaviour()}, "y", None) is None


def test_rules_come_before_behaviours_and_reset_removes_them(fault_server: FaultServer) -> None:
    fault_server.set_behaviours({"s": Behaviour(choices={"drawn": 1.0})})
    fault_server.add_rule("s", ["500"])  # the scripted fault first, then the rule is spent
    assert isinstance(_calls(fault_server, 1)[0], RetryableCallError)
    assert [r.text for r in _calls(fault_server, 1)] == ["drawn"]
    assert len(fault_server.draws()) == 1
    fault_server.reset()
    assert _calls(fault_server, 1)[0].text.startswith("echo:") and fault_server.draws() == []


def test_the_same_seed_draws_the_same_sequence() -> None:
    b = Behaviour(latency=parse_dist({"dist": "exponential", "mean": 0.05}), errors={"500": 0.3},
                  output_tokens=parse_dist({"dist": "gamma", "shape": 2, "mean": 100}))

    def seq(seed: int) -> list[tuple[str, float, int | None]]:
        s = Synthetic({"k": b}, seed=seed)
        return [(d.fault, d.delay, d.output_tokens) for d in (s.draw("k", None) for _ in range(50)) if d]

    assert seq(7) == seq(7) != seq(8)


def test_behaviours_cross_process_as_documents() -> None:
    b = Behaviour(latency=parse_dist({"dist": "lognormal", "mean": 0.01, "sigma": 0.2}), errors={"hang": 0.0},
                  choices={"x": 1.0})
    assert Behaviour.from_doc(json.loads(json.dumps(b.to_doc()))) == b
    with spawn() as fc:
        fc.set_behaviours({"s": b}, seed=1)
        assert [r.text for r in _calls(fc, 2)] == ["x", "x"]
        assert [d["key"] for d in fc.draws()] == ["s", "s"]


@pytest.mark.parametrize("doc", [{"errors": {"500": 0.7, "400": 0.4}}, {"choices": {"a": 0.5}}])
def test_impossible_behaviours_are_refused(doc: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Behaviour.from_doc(doc)
