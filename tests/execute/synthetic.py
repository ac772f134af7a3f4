"""The fault server's stochastic side: latencies, token counts, failures and replies drawn from distributions.

The scripted faults of :mod:`tests.execute.fault_answers` say exactly what the
next matching request gets; a :class:`Behaviour` says what a step or a model
does *on average*, request after request: how long it takes, how many tokens
it reports, how often it fails and how, and (for a route or the list a map
runs over) what it answers. The contract tests (``tests/contract``) give the
server the very same :class:`~petriflow.profile.distributions.Dist` objects
they build the simulator's profile from, so execution and simulation draw
from one description.

Every request draws, from its key's own seeded generator and always in the
same order: the failure (one uniform against the cumulative ``errors``), the
latency, the input and output tokens, the route label, the number of items.
Drawing everything every time keeps the sequence of a key reproducible
whatever the outcomes. A request's key is its ``X-Petriflow-Step`` header
when a behaviour is given for that step, else the request's ``model``
(:func:`behaviour_for` is that one rule, for the server and its readers).

>>> b = Behaviour.from_doc({"latency": {"dist": "exponential", "mean": 0.05}, "errors": {"500": 0.1}})
>>> s = Synthetic({"answer": b}, seed=1)
>>> d = s.draw("answer", None)
>>> d.fault in ("ok", "500") and d.delay > 0
True
>>> Behaviour.from_doc(b.to_doc()) == b
True
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from petriflow.profile.distributions import ZERO, Dist, parse_dist

__all__ = ["Behaviour", "Draw", "Synthetic", "behaviour_for"]


def _ro(m: Mapping[str, float] | None) -> Mapping[str, float]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True, eq=False)
class Behaviour:
    """What one step or model does per request (see the module docstring).

    ``errors`` maps a fault of the fault server's vocabulary (``"500"``,
    ``"400"``, ``"429:0.3"`` with its ``Retry-After``, ``"hang"``, ...) to its
    probability per request; the rest of the requests succeed. ``latency`` is
    the time before any answer, a failure's too (a hang never answers).
    ``input_tokens``/``output_tokens`` are what ``usage`` reports (None: the
    server counts words). ``choices`` makes the answer one label, drawn with
    these probabilities; ``items`` makes it a JSON list of
    ``clip(rint(draw), 1, max_items)`` strings, as the simulator draws a map's
    item count; ``scores`` makes it the JSON object ``{"score": draw}``, for
    a route whose conditions test ``output.score`` (drawn after everything
    else, so the other draws of a key are the same with or without it).
    """

    latency: Dist = ZERO
    input_tokens: Dist | None = None
    output_tokens: Dist | None = None
    errors: Mapping[str, float] = field(default_factory=lambda: _ro(None))
    choices: Mapping[str, float] = field(default_factory=lambda: _ro(None))
    items: Dist | None = None
    max_items: int = 1
    scores: Dist | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "errors", _ro(self.errors))
        object.__setattr__(self, "choices", _ro(self.choices))
        if sum(self.errors.values()) > 1 or any(p < 0 for p in self.errors.values()):
            raise ValueError(f"error probabilities must be >= 0 and add up to at most 1: {dict(self.errors)}")
        if self.choices and abs(sum(self.choices.values()) - 1) > 1e-9:
            raise ValueError(f"choice probabilities must add up to 1: {dict(self.choices)}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Behaviour) and self.to_doc() == other.to_doc()

    __hash__ = None  # type: ignore[assignment]

    def share(self, *faults: str) -> float:
        """The probability per request of any of ``faults`` (a bare name covers its ``:arg`` forms)."""
        return sum(p for f, p in self.errors.items() if f in faults or f.partition(":")[0] in faults)

    def to_doc(self) -> dict[str, Any]:
        """The JSON form :meth:`from_doc` reads back (and ``/control/behaviours`` takes)."""
        doc: dict[str, Any] = {"latency": self.latency.to_doc()}
        for key in ("input_tokens", "output_tokens", "items", "scores"):
            d = getattr(self, key)
            if d is not None:
                doc[key] = d.to_doc()
        if self.errors:
            doc["errors"] = dict(self.errors)
        if self.choices:
            doc["choices"] = dict(self.choices)
        if self.items is not None:
            doc["max_items"] = self.max_items
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Behaviour:
        def dist(key: str) -> Dist | None:
            return parse_dist(doc[key], where=f"behaviour.{key}") if doc.get(key) is not None else None

        return cls(latency=dist("latency") or ZERO, input_tokens=dist("input_tokens"),
                   output_tokens=dist("output_tokens"), errors={str(k): float(v) for k, v in
                                                                (doc.get("errors") or {}).items()},
                   choices={str(k): float(v) for k, v in (doc.get("choices") or {}).items()},
                   items=dist("items"), max_items=int(doc.get("max_items", 1)), scores=dist("scores"))


def behaviour_for(behaviours: Mapping[str, Behaviour], step: str | None, model: str | None) -> Behaviour | None:
    """The behaviour a request gets: its step's, else its model's, else none."""
    if step is not None and step in behaviours:
        return behaviours[step]
    return behaviours.get(model) if model is not None else None


@dataclass(frozen=True)
class Draw:
    """What one request gets: a fault string, the delay before it, the reply text and the usage to report."""

    fault: str
    delay: float
    reply: str | None
    input_tokens: int | None
    output_tokens: int | None


class Synthetic:
    """Behaviours by step or model, one seeded generator per key, and a log of every draw.

    Not thread-safe by itself: the fault server calls :meth:`draw` under its state's lock.
    """

    def __init__(self, behaviours: Mapping[str, Behaviour], *, seed: int = 0) -> None:
        self.behaviours = dict(behaviours)
        self.seed = seed
        self._rngs: dict[str, np.random.Generator] = {}
        self.log: list[dict[str, Any]] = []

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Synthetic:
        """``{"seed": int, "behaviours": {key: behaviour document}}``."""
        return cls({str(k): Behaviour.from_doc(v) for k, v in (doc.get("behaviours") or {}).items()},
                   seed=int(doc.get("seed", 0)))

    def to_doc(self) -> dict[str, Any]:
        return {"seed": self.seed, "behaviours": {k: b.to_doc() for k, b in self.behaviours.items()}}

    def _rng(self, key: str) -> np.random.Generator:
        rng = self._rngs.get(key)
        if rng is None:
            rng = self._rngs[key] = np.random.default_rng([self.seed, zlib.crc32(key.encode())])
        return rng

    def draw(self, step: str | None, model: str | None) -> Draw | None:
        """The next request's draw for this step or model (None when neither has a behaviour)."""
        b = behaviour_for(self.behaviours, step, model)
        if b is None:
            return None
        key = step if step is not None and step in self.behaviours else str(model)
        rng = self._rng(key)
        u = float(rng.random())
        fault, acc = "ok", 0.0
        for f, p in b.errors.items():
            acc += p
            if u < acc:
                fault = f
                break
        delay = float(b.latency.sample(rng, 1)[0])
        n_in = _count(b.input_tokens, rng)
        n_out = _count(b.output_tokens, rng)
        reply = None
        pick = float(rng.random())
        if b.choices:
            labels = list(b.choices)
            cum = np.cumsum([b.choices[k] for k in labels])
            reply = labels[min(int(np.searchsorted(cum, pick, side="right")), len(labels) - 1)]
        n_items = _count(b.items, rng)
        if n_items is not None:
            reply = json.dumps([f"item {i + 1}" for i in range(min(max(n_items, 1), b.max_items))])
        if b.scores is not None:
            reply = json.dumps({"score": float(b.scores.sample(rng, 1)[0])})
        self.log.append({"key": key, "step": step, "model": model, "fault": fault, "delay": delay,
                         "input_tokens": n_in, "output_tokens": n_out})
        return Draw(fault, delay, reply, n_in, n_out)


def _count(d: Dist | None, rng: np.random.Generator) -> int | None:
    """A whole, non-negative number drawn from ``d`` (rounded to nearest, as the simulator rounds items)."""
    if d is None:
        return None
    return max(0, int(np.rint(d.sample(rng, 1)[0])))
