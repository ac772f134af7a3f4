"""Traces: one record per step execution attempt, as JSON lines and as OpenTelemetry spans.

The JSON-lines trace is the contract with ``petriflow fit``: its schema,
reader and line format are :mod:`petriflow.trace`, which both sides import.

When ``opentelemetry`` is installed and a tracer provider is configured (or
one is passed in), each record is also one span named ``petriflow.step
STEP`` carrying the GenAI semantic-convention attributes
(``gen_ai.request.model``, ``gen_ai.usage.input_tokens``,
``gen_ai.usage.output_tokens``) and ``petriflow.cost``/``attempt``/``outcome``.
With no provider configured no span is made, so tracing costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from petriflow.trace import TraceRecord, dumps

__all__ = ["StepStats", "TraceWriter", "record_of", "summary_table"]


@dataclass
class StepStats:
    """Totals for one step over a run: what the summary table prints."""

    attempts: int = 0
    ok: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    seconds: float = 0.0


@dataclass
class TraceWriter:
    """Writes records as JSON lines (when ``path`` is given), spans, and per-step totals.

    One writer may serve many concurrent cases: everything runs on one event
    loop, so no lock is needed. With a durable store as its ``sink`` (the
    executor sets it), each record is committed to the store first (a step's
    with its checkpoint) and then written to the file and flushed, so a
    ``kill -9`` loses at most the line of the last commit, which
    :meth:`catch_up` appends on resume: file and store agree.

    Writing the file never fails a run: the first ``OSError`` (disk full, an
    unwritable path) is kept in :attr:`error` and the file is given up; the
    caller reports it once the results are printed and stored.
    """

    path: str | Path | None = None
    tracer_provider: Any = None
    keep: bool = False
    stats: dict[str, StepStats] = field(default_factory=dict)
    records: list[TraceRecord] = field(default_factory=list)
    sink: Callable[[TraceRecord], None] | None = None
    error: str | None = None
    _file: IO[str] | None = field(default=None, repr=False)
    _tracer: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.path is not None:
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8", buffering=1 << 16)
            except OSError as exc:
                self._failed(exc)
        self._tracer = _tracer(self.tracer_provider)

    def _failed(self, exc: OSError) -> None:
        """Give the file up after its first error, keeping what went wrong for the caller to report."""
        self.error = self.error or f"cannot write the trace to {self.path}: {exc.strerror or exc}"
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    def _line(self, line: str) -> None:
        if self._file is not None:
            try:
                self._file.write(line + "\n")
                self._file.flush()
            except OSError as exc:
                self._failed(exc)

    def catch_up(self, lines: Iterable[str]) -> None:
        """Append the committed records (of a run being resumed) that the file lacks; count every one."""
        have: set[str] = set()
        if self.path is not None and self._file is not None:
            try:
                have = set(Path(self.path).read_text(encoding="utf-8").splitlines())
            except (OSError, UnicodeDecodeError):
                have = set()
        for line in lines:
            self._count(record_of(line))
            if line not in have:
                self._line(line)

    def write(self, rec: TraceRecord, *, stored: bool = False) -> None:
        """Record one attempt: in the store (unless ``stored``: it was committed with its checkpoint), the file,
        the totals and a span."""
        if self.sink is not None and not stored:
            self.sink(rec)
        self._count(rec)
        if self.keep:
            self.records.append(rec)
        self._line(dumps(rec))
        if self._tracer is not None:
            _span(self._tracer, rec)

    def _count(self, rec: TraceRecord) -> None:
        st = self.stats.get(rec.step)
        if st is None:
            st = self.stats[rec.step] = StepStats()
        st.attempts += 1
        st.ok += rec.outcome == "ok"
        st.failed += rec.outcome != "ok"
        st.input_tokens += rec.input_tokens
        st.output_tokens += rec.output_tokens
        st.cost += rec.cost
        st.seconds += rec.end - rec.start

    def flush(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as exc:
                self._failed(exc)

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                self._failed(exc)
            self._file = None

    def summary(self, *, wall_seconds: float | None = None) -> str:
        return summary_table(self.stats, wall_seconds=wall_seconds)

    def prometheus(self, *, workflow: str) -> str:
        """The totals in Prometheus' text format (for the node exporter's textfile collector; no server).

        Written by ``prometheus_client``'s exposition code, so a quote, a
        backslash or a newline in a workflow or step name is escaped in its
        label value instead of forging a line of its own.
        """
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.core import CounterMetricFamily

        stats = self.stats

        class Totals:
            def collect(self) -> Iterable[CounterMetricFamily]:
                for name, help_, attr in _METRICS:
                    family = CounterMetricFamily(f"petriflow_step_{name}", help_, labels=("workflow", "step"))
                    for step, st in stats.items():
                        family.add_metric((workflow, step), float(getattr(st, attr)))
                    yield family

        registry = CollectorRegistry(auto_describe=False)
        registry.register(Totals())
        return generate_latest(registry).decode("utf-8")


_METRICS = (("attempts", "step execution attempts", "attempts"), ("failures", "failed attempts", "failed"),
            ("input_tokens", "input tokens", "input_tokens"), ("output_tokens", "output tokens", "output_tokens"),
            ("cost_dollars", "dollars spent", "cost"), ("busy_seconds", "seconds spent in attempts", "seconds"))


def record_of(line: str) -> TraceRecord:
    """A trace line the store committed, read back (the store writes only what :func:`dumps` made)."""
    return TraceRecord(**json.loads(line))


def _tracer(provider: Any) -> Any:
    """An OpenTelemetry tracer when one is configured; None otherwise (spans would go nowhere)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    if provider is None:
        provider = trace.get_tracer_provider()
        if type(provider).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
            return None
    return provider.get_tracer("petriflow.execute")


def _span(tracer: Any, rec: TraceRecord) -> None:
    attrs: dict[str, Any] = {
        "petriflow.run_id": rec.run_id, "petriflow.case": rec.case, "petriflow.step": rec.step,
        "petriflow.attempt": rec.attempt, "petriflow.outcome": rec.outcome, "petriflow.cost": rec.cost,
        "gen_ai.usage.input_tokens": rec.input_tokens, "gen_ai.usage.output_tokens": rec.output_tokens,
    }
    if rec.model:
        attrs["gen_ai.request.model"] = rec.model
    if rec.branch:
        attrs["petriflow.branch"] = rec.branch
    span = tracer.start_span(f"petriflow.step {rec.step}", start_time=int(rec.start * 1e9), attributes=attrs)
    if rec.outcome != "ok":
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, rec.outcome))
    span.end(end_time=int(rec.end * 1e9))


def summary_table(stats: dict[str, StepStats] | Iterable[TraceRecord], *, wall_seconds: float | None = None) -> str:
    """A plain-text table: per step attempts, failures, tokens, cost and busy time, then totals."""
    if not isinstance(stats, dict):
        w = TraceWriter()
        for r in stats:
            w.write(r)
        stats = w.stats
    head = ("step", "attempts", "failed", "tokens in", "tokens out", "cost $", "busy s")
    rows = [(s, str(v.attempts), str(v.failed), str(v.input_tokens), str(v.output_tokens),
             f"{v.cost:.6f}", f"{v.seconds:.3f}") for s, v in stats.items()]
    tot = StepStats()
    for v in stats.values():
        tot.attempts += v.attempts
        tot.failed += v.failed
        tot.input_tokens += v.input_tokens
        tot.output_tokens += v.output_tokens
        tot.cost += v.cost
        tot.seconds += v.seconds
    rows.append(("total", str(tot.attempts), str(tot.failed), str(tot.input_tokens), str(tot.output_tokens),
                 f"{tot.cost:.6f}", f"{tot.seconds:.3f}"))
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    if wall_seconds is not None:
        lines.append(f"wall time {wall_seconds:.3f} s")
    return "\n".join(lines)
