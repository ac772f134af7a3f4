"""The research assistant end to end on the REAL local models, through the CLI, as the README shows it.

Asserted for shape and invariants, never for facts: every citation of the
final output names a chunk of the PDF (cut again here, independently of the
run) or a document of the corpus, and quotes its text exactly; every map item
ends in exactly one successful record, of the search or of its cached
fallback; with the search service down for one call per query every item is
retried and then found by BM25, with it down for good every item falls back
to the cache; the case's cost is the sum of its trace records.

The second run shares the first one's response cache, so only a model call
whose prompt changed (the evidence from the cache differs) is made again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from petriflow.execute.documents import chunk_pages, load_pdf
from petriflow.spec import load
from petriflow.trace import TraceRecord, read_traces

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "models" / "research_assistant"
WORKFLOW = FOLDER / "research_assistant.yaml"
SAMPLE = FOLDER / "data" / "sample.pdf"

pytestmark = [pytest.mark.local_models, pytest.mark.timeout(600)]


def _run(tmp_path: Path, tag: str, outage: int) -> tuple[dict[str, Any], dict[str, Any], list[TraceRecord]]:
    trace = tmp_path / f"{tag}.jsonl"
    db = tmp_path / f"{tag}.sqlite"
    env = {**os.environ, "RESEARCH_SEARCH_OUTAGE": str(outage), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "petriflow", "run", str(WORKFLOW.relative_to(ROOT)), "--input", "pdf=data/sample.pdf",
         "--trace", str(trace), "--db", str(db), "--cache", str(tmp_path / "responses.sqlite"), "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=540, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    shown = subprocess.run([sys.executable, "-m", "petriflow", "runs", "show", doc["run_id"], "--db", str(db),
                            "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
    return doc, json.loads(shown.stdout)["cases"][0]["steps"], read_traces(trace)


def _sources() -> dict[str, str]:
    chunks = chunk_pages({"load": load_pdf({}, case={"pdf": str(SAMPLE)})}, size=400)["chunks"]
    corpus = [json.loads(line) for line in (FOLDER / "data" / "corpus.jsonl").read_text().splitlines()]
    return {**{c["id"]: c["text"] for c in chunks}, **{d["id"]: d["text"] for d in corpus}}


def _check_case(doc: dict[str, Any], records: list[TraceRecord]) -> dict[str, Any]:
    (case,) = doc["cases"]
    assert case["ok"], case["error"]
    out = case["output"]
    jsonschema.validate(out, dict(load(WORKFLOW).step("cite").output_schema or {}))
    sources = _sources()
    assert out["citations"]
    for c in out["citations"]:  # every citation names a chunk or a document that exists, and quotes it
        assert c["id"] in sources and c["text"] == sources[c["id"]]
    assert case["cost"] == pytest.approx(sum(r.cost for r in records)) and case["cost"] >= 0
    return out


def _items(steps: dict[str, Any]) -> list[dict[str, str]]:
    items = steps["ground#1"]
    assert isinstance(items, list) and 1 <= len(items) <= load(WORKFLOW).step("search").map.max  # type: ignore[union-attr]
    chunk_ids = {c["id"] for c in steps["chunk#1"]["chunks"]}
    assert all(i["chunk"] in chunk_ids for i in items)  # every key point is grounded on a chunk that exists
    return items


def _finals(records: list[TraceRecord], n: int) -> dict[int, TraceRecord]:
    """The one successful record of each map item (search or its fallback), keyed by item."""
    ok = [r for r in records if r.step in ("search", "search_cached") and r.outcome == "ok"]
    assert sorted(r.item for r in ok if r.item is not None) == list(range(n)) and len(ok) == n
    return {r.item: r for r in ok if r.item is not None}


def test_the_research_assistant_retries_then_falls_back_and_cites_what_exists(local_models: Any,
                                                                              tmp_path: Path) -> None:
    doc, steps, records = _run(tmp_path, "retry", outage=1)
    out = _check_case(doc, records)
    items = _items(steps)
    finals = _finals(records, len(items))
    assert {r.step for r in finals.values()} == {"search"}  # the pooled retries cover one failure per item
    for i in range(len(items)):
        mine = sorted((r for r in records if r.step == "search" and r.item == i), key=lambda r: r.attempt)
        assert [(r.attempt, r.outcome, r.error) for r in mine] == [(1, "error", "retryable"), (2, "ok", None)]
        assert steps[f"search#1/{i}"]["source"] == "bm25" and steps[f"search#1/{i}"]["query"] == items[i]["point"]
    for r in records:
        if r.step in ("key_points", "synthesize") and r.outcome == "ok":
            assert r.model and r.input_tokens > 0 and r.output_tokens > 0
    assert not set(out["unresolved"]) & {c["id"] for c in out["citations"]}

    doc2, steps2, records2 = _run(tmp_path, "down", outage=99)
    _check_case(doc2, records2)
    items2 = _items(steps2)
    finals2 = _finals(records2, len(items2))
    assert {r.step for r in finals2.values()} == {"search_cached"}
    retries = load(WORKFLOW).step("search").retry.max_attempts
    for i in range(len(items2)):
        mine = [r.outcome for r in records2 if r.step == "search" and r.item == i]
        assert mine == ["error"] * (retries - 1) + ["fallback"]  # every attempt tried, then the cache
        assert steps2[f"search#1/{i}"]["source"] == "cache"
