"""Built-in callables for workflows: the QA router's note search and answer aggregation.

``search_notes`` is a keyword search over :data:`NOTES`, a small local list
shipped with petriflow, so the QA router's search branch runs with no network.
``first_answer`` is the aggregation step after an XOR-join: exactly one
answerer ran, and it reports which one.

>>> search_notes("reverse a list in python", k=1)[0][:30]
'In Python, reverse a list in p'
>>> first_answer({"code": "use reversed()"})
{'answer': 'use reversed()', 'route': 'code'}
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["NOTES", "echo", "first_answer", "pause", "scripted", "search_notes"]

NOTES: tuple[str, ...] = (
    "In Python, reverse a list in place with lst.reverse(), or get a reversed copy with lst[::-1] or list(reversed(lst)).",
    "A Python dict keeps insertion order since Python 3.7; iterate items with for k, v in d.items().",
    "SQL: an INNER JOIN returns rows that match in both tables; a LEFT JOIN keeps every row of the left table.",
    "France won the 2018 FIFA World Cup, beating Croatia 4-2 in the final in Moscow.",
    "France has a population of about 68 million people (2024 estimate).",
    "NASA's Perseverance rover landed in Jezero crater on Mars in February 2021 and collects rock samples.",
    "Curiosity has explored Gale crater on Mars since August 2012.",
    "The Eiffel Tower in Paris is about 330 metres tall and was finished in 1889.",
    "Python's TypeError means an operation got a value of the wrong type, e.g. adding a str to an int.",
    "A Petri net is sound when every run can finish, finishes cleanly, and every transition can occur.",
    "Mount Everest, at 8,849 metres, is the highest mountain above sea level.",
    "Water boils at 100 degrees Celsius at sea level; at altitude it boils at a lower temperature.",
)

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(["a", "an", "the", "of", "in", "on", "at", "to", "is", "are", "was", "what", "who", "how", "do", "does", "i", "my", "me", "you", "your", "and", "or", "for", "with", "about", "this", "that", "it", "be", "by", "from"])


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def search_notes(query: str, k: int = 3) -> list[str]:
    """The ``k`` notes sharing most keywords with ``query`` (ties in list order); never empty."""
    q = _words(query)
    scored = sorted(range(len(NOTES)), key=lambda i: (-len(q & _words(NOTES[i])), i))
    hits = [NOTES[i] for i in scored[:k] if q & _words(NOTES[i])]
    return hits or [NOTES[scored[0]]]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        for key in ("answer", "text", "content"):
            text = value.get(key)
            if isinstance(text, str):
                return text
    return json.dumps(value, default=str)


def first_answer(inputs: Mapping[str, Any]) -> dict[str, str]:
    """``{"answer": text of the answerer that ran, "route": its step id}`` (after an XOR-join).

    The join's ``after_any``/``after_any_step`` inputs name it; without them (a call by hand), the first
    input that is not None.
    """
    if "after_any_step" in inputs:
        return {"answer": _text(inputs.get("after_any")), "route": str(inputs["after_any_step"])}
    for step, value in inputs.items():
        if value is not None:
            return {"answer": _text(value), "route": step}
    return {"answer": "", "route": ""}


async def pause(inputs: Mapping[str, Any], seconds: float = 0.05, value: Any = None) -> Any:
    """Wait ``seconds`` and return ``value`` (or the inputs): a stand-in step for benchmarks and tests."""
    await asyncio.sleep(seconds)
    return dict(inputs) if value is None else value


def echo(inputs: Mapping[str, Any], value: Any = None) -> Any:
    """Return ``value`` (or the inputs) at once: a no-op step that measures executor overhead."""
    return dict(inputs) if value is None else value


_PLAYED: dict[str, int] = {}


def scripted(inputs: Mapping[str, Any], *, key: str, script: list[Any]) -> Any:
    """Play ``script`` one entry per call under ``key`` (the last entry repeats): a chaos step.

    ``"!retryable"`` raises a retryable call error, ``"!fatal"`` a fatal one,
    ``"!timeout"`` a timeout; any other entry is returned as the output. Tests
    use it to inject faults into workflows of Python steps; demos to show
    retries and fallbacks without a model.
    """
    n = _PLAYED.get(key, 0)
    _PLAYED[key] = n + 1
    entry = script[min(n, len(script) - 1)]
    if entry == "!retryable":
        from petriflow.errors import RetryableCallError

        raise RetryableCallError("scripted failure", kind="server")
    if entry == "!fatal":
        from petriflow.errors import FatalCallError

        raise FatalCallError("scripted fatal failure")
    if entry == "!timeout":
        raise TimeoutError("scripted timeout")
    return entry
