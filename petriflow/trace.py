"""The trace schema: one record per step attempt, its JSON-lines reader and line writer.

The executor writes these records and ``petriflow fit`` reads them; both
import this module, so neither depends on the other and the schema is
defined once. A line of a trace file is a JSON object with exactly the keys
of :data:`TRACE_FIELDS`::

    {"run_id": "r1", "case": 17, "step": "code", "start": 1732572000.12, "end": 1732572002.31,
     "attempt": 1, "outcome": "ok", "model": "smollm2", "input_tokens": 61, "output_tokens": 144,
     "cost": 0.0000493, "branch": null, "error": null, "item": null, "loop_pass": 1, "retry_after": null}

``outcome`` is ``ok`` (the attempt produced the step's output), ``error``
(it failed and the step was retried or the run failed), ``timeout`` (it ran
out of time), or ``fallback`` (the last failed attempt of a step that then
handed over to its fallback step). ``error`` is the kind of a failed
attempt's error (:data:`petriflow.rules.ERROR_KINDS`: ``retryable``,
``fatal``, ``timeout``), null for an ``ok`` attempt and in traces written
before it existed. ``branch`` is the route label the output chose, ``loop``
when a loop went back, else null. ``item`` is the position of the map item
the attempt belongs to (null outside a map), ``loop_pass`` which run of the
step in its case it is (pass n round a loop is n). Null token counts and
costs (a record from another tool) read as 0, a missing ``loop_pass`` (a
trace written before it existed) as 1. ``retry_after`` is the wait in
seconds a failed attempt's server asked for (its ``Retry-After`` header),
null when it asked for none: ``fit`` turns it into the step's
``retry_after`` distribution, so the simulator waits what the executor
waited (:func:`petriflow.rules.backoff_delay`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from petriflow.errors import ProfileError
from petriflow.limits import MAX_COUNT, MAX_NUMBER, MAX_RECORDS_BYTES, check_name, failing, load_json, number, read_text

__all__ = ["OUTCOMES", "TRACE_FIELDS", "TraceRecord", "check_record", "dumps", "read_traces"]

OUTCOMES = ("ok", "error", "timeout", "fallback")


@dataclass(frozen=True)
class TraceRecord:
    """One attempt of one step in one case; ``start``/``end`` are unix seconds."""

    run_id: str
    case: int | str
    step: str
    start: float
    end: float
    attempt: int
    outcome: str
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    branch: str | None = None
    error: str | None = None
    item: int | None = None  # the map item's position in its list (None: not a map item)
    loop_pass: int = 1  # which run of the step in its case: pass n round a loop is n
    retry_after: float | None = None  # the server's Retry-After on a failed attempt, seconds (None: none asked)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_NONE = type(None)
TRACE_FIELDS: Mapping[str, tuple[type, ...]] = MappingProxyType({
    "run_id": (str,), "case": (str, int), "step": (str,), "start": (int, float), "end": (int, float),
    "attempt": (int,), "outcome": (str,), "model": (str, _NONE), "input_tokens": (int, _NONE),
    "output_tokens": (int, _NONE), "cost": (int, float, _NONE), "branch": (str, _NONE), "error": (str, _NONE),
    "item": (int, _NONE), "loop_pass": (int, _NONE), "retry_after": (int, float, _NONE),
})
"""The JSON types each key of a line may carry (a null count or cost reads as 0)."""
assert tuple(TRACE_FIELDS) == tuple(f.name for f in fields(TraceRecord)), "one schema: fields and types agree"
_DEFAULT_IF_NULL = {"input_tokens": 0, "output_tokens": 0, "cost": 0.0, "loop_pass": 1}  # older traces lack loop_pass
_RANGES = (("start", -MAX_NUMBER, MAX_NUMBER), ("end", -MAX_NUMBER, MAX_NUMBER), ("attempt", 1, MAX_COUNT),
           ("input_tokens", 0, MAX_COUNT), ("output_tokens", 0, MAX_COUNT), ("cost", 0, MAX_NUMBER), ("retry_after", 0, MAX_NUMBER),
           ("case", 0, MAX_COUNT))
"""What a number in a record may be: a negative token count or cost would give a profile ``simulate`` refuses."""


def dumps(rec: TraceRecord) -> str:
    """One trace line (without the newline)."""
    return json.dumps(rec.to_json(), separators=(",", ":"))


def read_traces(path: str | Path) -> list[TraceRecord]:
    """Read and check a JSONL trace file; a bad line raises :class:`ProfileError` naming ``file:line``."""
    p = Path(path)
    lines = read_text(p, what="traces", max_bytes=MAX_RECORDS_BYTES, fail=failing(ProfileError, str(p))).splitlines()
    records = []
    for i, line in enumerate(lines, 1):
        if line.strip():
            rec = load_json(line, fail=failing(ProfileError, f"{p}:{i}"), checked=False)  # check_record names the key
            records.append(check_record(rec, where=f"{p}:{i}"))
    if not records:
        raise ProfileError("the trace file has no records", where=str(p))
    return records


def check_record(rec: Any, *, where: str) -> TraceRecord:
    """One trace record, checked against :data:`TRACE_FIELDS` (missing optional fields become null)."""
    if isinstance(rec, TraceRecord):
        return rec
    if not isinstance(rec, dict):
        raise ProfileError("a trace record must be a JSON object", where=where)
    out: dict[str, Any] = {}
    for key, types in TRACE_FIELDS.items():
        value = rec.get(key)
        if key not in rec and _NONE not in types:
            raise ProfileError(f"trace record lacks `{key}`", where=where,
                               hint=f"fields: {', '.join(TRACE_FIELDS)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ProfileError(f"`{key}` is {value} (not a finite number)", where=where,
                               hint="drop or repair the record: NaN and Infinity cannot be fitted")
        if isinstance(value, bool) or not isinstance(value, types):
            raise ProfileError(f"`{key}` has the wrong type ({type(value).__name__})", where=where,
                               hint=f"expected {' or '.join(t.__name__ for t in types)}")
        out[key] = _DEFAULT_IF_NULL[key] if value is None and key in _DEFAULT_IF_NULL else value
    fail = failing(ProfileError, where)
    for key, value in out.items():
        if isinstance(value, str):
            check_name(value, what=f"`{key}`", fail=fail)
    for key, lo, hi in _RANGES:
        if isinstance(out[key], (int, float)):
            number(out[key], what=f"`{key}`", lo=lo, hi=hi, fail=fail)
    if out["outcome"] not in OUTCOMES:
        raise ProfileError(f"unknown outcome {out['outcome']!r}", where=where, hint=f"one of {', '.join(OUTCOMES)}")
    if out["end"] < out["start"]:
        raise ProfileError("record ends before it starts", where=where)
    return TraceRecord(**out)
