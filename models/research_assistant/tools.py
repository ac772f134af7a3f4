"""The research assistant's own steps and tools: prompt digests, grounding, BM25 search, citation checks.

Everything here is plain Python over the workflow's ``data/`` folder; the
workflow file names each function as ``tools:NAME`` (resolved next to the
file, whatever the current directory).

* ``digest`` turns the first chunks into a short prompt;
* ``ground`` ties each key point the model wrote to the chunk that supports it best (BM25
  over the chunks), so a point always cites a chunk that exists;
* ``search_corpus`` is the declared tool: BM25 (``rank-bm25``) over ``data/corpus.jsonl``.
  ``RESEARCH_SEARCH_OUTAGE=N`` makes the first N calls of each query raise
  ``ConnectionError`` (a search service that is down: the step retries, then falls back);
* ``cached_search`` is its fallback: the snapshot ``data/search_cache.json`` (each document's
  terms, written by ``python tools.py``), ranked by shared terms, no BM25 service needed;
* ``aggregate`` collects the evidence; ``check_citations`` keeps the citations that name an
  evidence chunk or document and fails the step when none does.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
CORPUS = DATA / "corpus.jsonl"
CACHE = DATA / "search_cache.json"
OUTAGE_ENV = "RESEARCH_SEARCH_OUTAGE"

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("a an and are as at be by can each for from has in is it its no not of on or so such that the "
                  "their them then there these this to was when which with".split())


def terms(text: str) -> list[str]:
    """Lower-case words without stop words: the tokens both searches use."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


@cache
def corpus() -> tuple[dict[str, str], ...]:
    """The documents of ``data/corpus.jsonl``: ``{"id": "d01", "title", "text"}``."""
    return tuple(json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip())


@cache
def _index() -> Any:
    from rank_bm25 import BM25Okapi

    return BM25Okapi([terms(d["title"] + " " + d["text"]) for d in corpus()])


def digest(inputs: Mapping[str, Any], *, chars: int = 120, chunks: int = 4) -> str:
    """The first ``chunks`` chunks, each cut to ``chars`` characters at a word end, one per line.

    No ids: SmolLM2 copies an id tag into every point instead of the text, so
    :func:`ground` ties each point to its chunk afterwards.
    """
    out = []
    for c in _chunks(inputs)[:chunks]:
        out.append(c["text"] if len(c["text"]) <= chars else c["text"][:chars].rsplit(" ", 1)[0])
    return "\n".join(out)


def _chunks(inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    for v in inputs.values():
        if isinstance(v, Mapping) and isinstance(v.get("chunks"), list):
            return list(v["chunks"])
    raise ValueError(f"no step output with `chunks` among the inputs {sorted(inputs)}")


def ground(inputs: Mapping[str, Any], *, most: int = 4) -> list[dict[str, str]]:
    """Each key point (at most ``most``) with the chunk whose text matches it best: the map's items."""
    from rank_bm25 import BM25Okapi

    chunks = _chunks(inputs)
    points = [p.strip() for p in inputs["key_points"]["points"] if isinstance(p, str) and p.strip()][:most]
    if not points:
        raise ValueError("the model gave no key points")
    bm25 = BM25Okapi([terms(c["text"]) or ["_"] for c in chunks])
    items = []
    for p in points:
        scores = bm25.get_scores(terms(p))
        best = max(range(len(chunks)), key=lambda i: (scores[i], -i))
        items.append({"point": p, "chunk": chunks[best]["id"]})
    return items


_CALLS: dict[str, int] = {}


def search_corpus(query: str, k: int = 3) -> dict[str, Any]:
    """BM25 over the corpus: the ``k`` best documents for ``query`` (``source: bm25``).

    Raises ``ConnectionError`` for the first ``$RESEARCH_SEARCH_OUTAGE`` calls of each query (0 by
    default): the outage the workflow's retries and cached fallback are there for.
    """
    _CALLS[query] = n = _CALLS.get(query, 0) + 1
    if n <= int(os.environ.get(OUTAGE_ENV, "0") or 0):
        raise ConnectionError(f"search service unavailable (call {n} of '{query[:40]}')")
    scores = _index().get_scores(terms(query))
    best = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    return {"query": query, "source": "bm25",
            "hits": [{"id": corpus()[i]["id"], "title": corpus()[i]["title"], "score": round(float(scores[i]), 4)}
                     for i in best]}


def build_cache() -> dict[str, list[str]]:
    """The snapshot the fallback reads: each document's distinct terms, sorted."""
    return {d["id"]: sorted(set(terms(d["title"] + " " + d["text"]))) for d in corpus()}


def cached_search(inputs: Mapping[str, Any], *, k: int = 3) -> dict[str, Any]:
    """The fallback of ``search``: rank the cached snapshot by terms shared with the item's point."""
    item = inputs.get("item") or {}
    query = str(item.get("point", "")) if isinstance(item, Mapping) else str(item)
    snapshot: dict[str, list[str]] = json.loads(CACHE.read_text(encoding="utf-8"))
    q = set(terms(query))
    ranked = sorted(snapshot, key=lambda d: (-len(q & set(snapshot[d])), d))[:k]
    titles = {d["id"]: d["title"] for d in corpus()}
    return {"query": query, "source": "cache",
            "hits": [{"id": d, "title": titles[d], "score": float(len(q & set(snapshot[d])))} for d in ranked]}


def aggregate(inputs: Mapping[str, Any], *, per_point: int = 1, chars: int = 100) -> dict[str, Any]:
    """The evidence for the synthesis: each point with its chunk, and its best documents, as tagged lines."""
    chunks = {c["id"]: c["text"] for c in _chunks(inputs)}
    docs = {d["id"]: d for d in corpus()}
    lines: list[str] = []
    sources: dict[str, str] = {}
    for item, found in zip(inputs["ground"], inputs["search"], strict=True):
        if item["chunk"] not in sources:
            sources[item["chunk"]] = chunks[item["chunk"]]
            lines.append(f"[{item['chunk']}] {item['point'][:chars]}")
        for hit in found["hits"][:per_point]:
            if hit["id"] not in sources:
                sources[hit["id"]] = docs[hit["id"]]["text"]
                lines.append(f"[{hit['id']}] {docs[hit['id']]['text'][:chars]}")
    return {"evidence": "\n".join(lines), "sources": sources,
            "searched": [f["source"] for f in inputs["search"]]}


def check_citations(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The synthesis with each citation resolved to its source text; unknown ids are listed, not kept.

    Raises ``ValueError`` (the step fails, fatally) when no citation names a chunk or document of the
    evidence: a synthesis that cites nothing real is not an answer.
    """
    syn, sources = inputs["synthesize"], inputs["aggregate"]["sources"]
    cited = list(dict.fromkeys(str(c).strip().strip("[]") for c in syn.get("citations", [])))
    good = [c for c in cited if c in sources]
    if not good:
        raise ValueError(f"no citation names a chunk or document of the evidence (cited: {cited}, "
                         f"evidence: {sorted(sources)})")
    return {"summary": syn["summary"], "citations": [{"id": c, "text": sources[c]} for c in good],
            "unresolved": [c for c in cited if c not in sources]}


if __name__ == "__main__":
    CACHE.write_text(json.dumps(build_cache(), indent=0, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {CACHE}")
