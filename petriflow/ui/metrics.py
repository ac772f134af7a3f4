"""``/metrics``: Prometheus' text format from the same trace records the pages read.

The feed reads only the trace lines committed since its last scrape
(:meth:`~petriflow.execute.store.SqliteStore.trace_since`), so a scrape of
a store with a million attempts costs what the new ones cost. Per workflow
and step: an attempt-latency histogram, attempts by outcome, failures,
tokens and dollars; per human step the review queue's length; runs by status.
Written by ``prometheus_client``'s exposition code, so a quote or newline in
a name is escaped in its label instead of forging a line.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from petriflow.execute.store import SqliteStore
from petriflow.execute.trace import record_of

__all__ = ["BUCKETS", "MetricsFeed"]

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Upper bounds (seconds) of the latency histogram's buckets; ``+Inf`` follows."""
RUN_STATUSES = ("running", "ok", "failed")


@dataclass
class _Step:
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    seconds: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


class MetricsFeed:
    """Running totals over the store's trace, brought up to date at each scrape."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self._seq = 0
        self._steps: dict[tuple[str, str], _Step] = {}
        self._workflow_of: dict[str, str] = {}
        self._lock = threading.Lock()

    def _workflow(self, run_id: str) -> str:
        name = self._workflow_of.get(run_id)
        if name is None:
            row = self.store.get_run(run_id)
            name = self._workflow_of[run_id] = Path(row.workflow).stem if row is not None else "?"
        return name

    @property
    def seq(self) -> int:
        """The position of the last trace line folded in: it grows exactly when the store has new attempts."""
        return self._seq

    def update(self) -> None:
        """Fold in the trace lines committed since the last call."""
        with self._lock:
            while batch := self.store.trace_since(self._seq, limit=50_000):
                for seq, line in batch:
                    rec = record_of(line)
                    st = self._steps.setdefault((self._workflow(rec.run_id), rec.step), _Step())
                    took = rec.end - rec.start
                    st.buckets[next((i for i, b in enumerate(BUCKETS) if took <= b), len(BUCKETS))] += 1
                    st.seconds += took
                    st.outcomes[rec.outcome] = st.outcomes.get(rec.outcome, 0) + 1
                    st.input_tokens += rec.input_tokens
                    st.output_tokens += rec.output_tokens
                    st.cost += rec.cost
                    self._seq = seq

    def render(self) -> bytes:
        """The exposition text of every family, brought up to date first."""
        from prometheus_client import CollectorRegistry, generate_latest

        self.update()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self))
        return bytes(generate_latest(registry))


class _Collector:
    def __init__(self, feed: MetricsFeed) -> None:
        self.feed = feed

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        labels = ("workflow", "step")
        steps = sorted(self.feed._steps.items())
        latency = HistogramMetricFamily("petriflow_step_latency_seconds", "seconds one step attempt took",
                                        labels=labels)
        attempts = CounterMetricFamily("petriflow_step_attempts", "step attempts by outcome",
                                       labels=(*labels, "outcome"))
        failures = CounterMetricFamily("petriflow_step_failures", "attempts that did not succeed", labels=labels)
        tin = CounterMetricFamily("petriflow_step_input_tokens", "input tokens", labels=labels)
        tout = CounterMetricFamily("petriflow_step_output_tokens", "output tokens", labels=labels)
        cost = CounterMetricFamily("petriflow_step_cost_dollars", "dollars spent", labels=labels)
        for key, st in steps:
            cumulative, running = [], 0
            for bound, n in zip((*map(str, BUCKETS), "+Inf"), st.buckets, strict=True):
                running += n
                cumulative.append((bound, float(running)))
            latency.add_metric(key, cumulative, st.seconds)
            for outcome, n in sorted(st.outcomes.items()):
                attempts.add_metric((*key, outcome), float(n))
            failures.add_metric(key, float(sum(n for o, n in st.outcomes.items() if o != "ok")))
            tin.add_metric(key, float(st.input_tokens))
            tout.add_metric(key, float(st.output_tokens))
            cost.add_metric(key, st.cost)
        yield from (latency, attempts, failures, tin, tout, cost)
        queue = GaugeMetricFamily("petriflow_review_queue_length", "human steps waiting for an answer",
                                  labels=labels)
        waiting: dict[tuple[str, str], int] = {}
        for w in self.feed.store.waiting():
            k = (self.feed._workflow(w.run_id), w.step)
            waiting[k] = waiting.get(k, 0) + 1
        for k, n in sorted(waiting.items()):
            queue.add_metric(k, float(n))
        yield queue
        runs = GaugeMetricFamily("petriflow_runs", "runs in the store by status", labels=("status",))
        for status in RUN_STATUSES:
            runs.add_metric((status,), float(self.feed.store.run_page(status=status, limit=0)[1]))
        yield runs
