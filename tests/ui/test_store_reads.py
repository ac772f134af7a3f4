"""The store's read methods the console uses, against what the store's other methods say (no browser)."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from petriflow.execute.store import Checkpoint, MemoryStore, SqliteStore
from petriflow.execute.trace import record_of
from petriflow.trace import TraceRecord


def _fill(store: MemoryStore, seed: int, n: int) -> None:
    rng = random.Random(seed)
    for i in range(n):
        rid = f"r{i}"
        store.create_run(rid, workflow=rng.choice(["a.yaml", "b.yaml"]))
        for case in range(rng.randint(0, 3)):
            store.add_case(rid, case, f"in {case}")
            for k in range(rng.randint(0, 3)):
                ok = rng.random() < 0.7
                rec = TraceRecord(rid, case, f"s{k}", 10.0 * i + k, 10.0 * i + k + rng.random(), 1,
                                  "ok" if ok else "error", input_tokens=rng.randint(0, 9),
                                  output_tokens=rng.randint(0, 9), cost=rng.random() / 100)
                if ok:
                    store.save_step(rid, case, f"s{k}#1", Checkpoint(f"s{k}", "", k), trace=rec)
                else:
                    store.add_trace(rec)
            if rng.random() < 0.5:
                store.finish_case(rid, case, status=rng.choice(["ok", "failed"]), output=None, error=None)
            elif rng.random() < 0.5:
                store.start_waiting(rid, case, "review", 1)
        store.set_run_status(rid, rng.choice(["running", "ok", "failed"]))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 12))
def test_run_totals_and_pages_agree_with_the_rows_they_sum(seed: int, n: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "s.sqlite")
        _fill(store, seed, n)
        ids = [r.run_id for r in store.runs()]
        totals = store.run_totals(ids)
        for rid in ids:
            recs = [record_of(line) for line in store.trace_lines(rid)]
            cases = store.cases(rid)
            t = totals[rid]
            assert (t.cases, t.ok, t.failed) == (len(cases), sum(c.status == "ok" for c in cases),
                                                 sum(c.status == "failed" for c in cases))
            assert t.waiting == len(store.waiting(rid))
            assert (t.attempts, t.failures, t.tokens) == (len(recs), sum(r.outcome != "ok" for r in recs),
                                                          sum(r.input_tokens + r.output_tokens for r in recs))
            assert abs(t.cost - sum(r.cost for r in recs)) < 1e-12
            assert t.first_start == (min(r.start for r in recs) if recs else None)
        for status in (None, "running", "ok"):
            for text in (None, "a.yaml", "r1"):
                want = [r for r in store.runs() if status in (None, r.status)
                        and (text is None or text in r.run_id or text in r.workflow)]
                page, total = store.run_page(status=status, text=text, limit=3, offset=1)
                assert total == len(want) and [r.run_id for r in page] == [r.run_id for r in want[1:4]]
        seen = store.trace_since(0)
        assert [line for _, line in seen] == [line for rid in sorted(ids, key=lambda r: int(r[1:]))
                                              for line in store.trace_lines(rid)]
        assert store.trace_since(seen[-1][0]) == [] if seen else True
        store.close()
