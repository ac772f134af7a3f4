"""The seam to the worst-case cost bound: ``cost_bound(wf) -> CostBound(usd, path, reason)``.

The bound is verification's (``petriflow.verify.cost``, the ``sem`` work);
until it is on this branch, :func:`cost_bound` falls back to a coarser bound
that is still an upper bound: every model step on one path (the sum over all
of them, not the most expensive branch), each at its attempts, its loop's
passes and its map's maximum, each call at its ``max_tokens`` and an input
of at most :data:`INPUT_TOKENS` tokens beyond its own template. The gate
only calls :func:`cost_bound`, so swapping the owner changes one import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from petriflow.spec.model import Workflow, price_of

__all__ = ["INPUT_TOKENS", "CostBound", "cost_bound"]

INPUT_TOKENS = 1024
"""The fallback's allowance for what a template's variables expand to (case text, upstream outputs)."""


@dataclass(frozen=True)
class CostBound:
    """Dollars a case can cost at most (None: no bound exists, ``reason`` says why) and the path that costs it."""

    usd: float | None
    path: tuple[str, ...]
    reason: str | None = None


def cost_bound(wf: Workflow, profile: Any = None) -> CostBound:
    """The worst-case dollars per case of ``wf``: verification's bound when available, else the fallback."""
    try:
        from petriflow.verify import cost as owner  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        owner = None
    if owner is not None and hasattr(owner, "cost_bound"):
        got = owner.cost_bound(wf, profile)
        return CostBound(got.usd, tuple(got.path), got.reason)
    return _fallback(wf)


def _passes(wf: Workflow, step_id: str) -> int:
    """How many times a step can run in one case: 1 + the passes of every loop whose body holds it."""
    n = 1
    for s in wf.steps:
        if s.loop is not None and step_id in wf.loop_region(s.id):
            n *= s.loop.max + 1
    return n


def _fallback(wf: Workflow) -> CostBound:
    total, path = 0.0, []
    for s in wf.steps:
        if s.kind not in ("chat", "embed", "classify"):
            continue
        model = wf.models.get(s.model or "")
        if model is None:
            return CostBound(None, (s.id,), f"step '{s.id}' uses model '{s.model}', which has no declared price")
        out = int(s.config.get("max_tokens", 256)) if s.kind == "chat" else 0
        text = len((s.prompt or "") + (s.system or ""))
        examples = sum(len(t) for v in s.labels.values() for t in v) if s.kind == "classify" else 0
        inp = (text + examples) // 3 + INPUT_TOKENS
        calls = s.retry.max_attempts * _passes(wf, s.id) * (s.map.max if s.map else 1)
        total += float(price_of(model, inp * calls, out * calls, calls))
        path.append(s.id)
    return CostBound(total, tuple(path))
