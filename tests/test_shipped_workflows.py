"""Every workflow shipped in a folder of ``models/`` is what the README promises, through the CLI.

A folder ``models/NAME/`` holds ``NAME.yaml`` (sound: ``check`` exits 0),
``NAME_broken.yaml`` (``check`` exits 1 and tells the failing run in steps),
``NAME.profile.yaml`` (``simulate`` reads it) and its own sample data. The
research assistant's own tools are tested here too, without models.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from petriflow.execute.documents import chunk_pages, load_pdf

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = sorted(p.parent for p in (ROOT / "models").glob("*/*.yaml") if p.name == f"{p.parent.name}.yaml")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "petriflow", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)


def test_the_research_assistant_is_shipped() -> None:
    assert ROOT / "models" / "research_assistant" in FOLDERS


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_a_shipped_workflow_is_sound_and_its_broken_variant_fails_with_a_witness_in_steps(folder: Path) -> None:
    name = folder.name
    ok = _cli("check", str(folder / f"{name}.yaml"), "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["sound"] is True
    broken = _cli("check", str(folder / f"{name}_broken.yaml"))
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "Traceback" not in broken.stderr
    assert re.search(r"^\s+1\. ", broken.stdout, re.M) and re.search(r"`[a-z_0-9]+`", broken.stdout)
    sim = _cli("simulate", str(folder / f"{name}.yaml"), "--cases", "200", "--seed", "1", "--json")
    assert sim.returncode == 0, sim.stdout + sim.stderr
    assert (folder / f"{name}.profile.yaml").is_file()
    assert (folder / "data").is_dir() or any(folder.glob("*.sqlite")) or any(folder.glob("*.jsonl")), \
        f"{folder} ships no sample data (a data/ folder, an .sqlite or a .jsonl file)"


def _tools() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ra_tools", ROOT / "models" / "research_assistant" / "tools.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_committed_search_cache_is_the_corpus_snapshot() -> None:
    tools = _tools()
    cache = json.loads(tools.CACHE.read_text())
    assert cache == tools.build_cache()
    assert len(tools.corpus()) >= 24 and len({d["id"] for d in tools.corpus()}) == len(tools.corpus())


def test_the_research_tools_ground_search_and_check_citations() -> None:
    tools = _tools()
    chunks = chunk_pages({"load": load_pdf({}, case={"pdf": str(tools.DATA / "sample.pdf")})}, size=400)
    ids = {c["id"] for c in chunks["chunks"]}
    points = ["A workflow net is sound when every run can finish", "BM25 ranking weights rare terms higher"]
    items = tools.ground({"chunk": chunks, "key_points": {"points": points}})
    assert [i["point"] for i in items] == points and all(i["chunk"] in ids for i in items)
    by_id = {c["id"]: c["text"] for c in chunks["chunks"]}
    assert "sound" in by_id[items[0]["chunk"]] and "BM25" in by_id[items[1]["chunk"]]
    found = [tools.search_corpus(p) for p in points]
    cached = [tools.cached_search({"item": i}) for i in items]
    docs = {d["id"] for d in tools.corpus()}
    for f in found + cached:
        assert len(f["hits"]) == 3 and {h["id"] for h in f["hits"]} <= docs
    assert found[1]["hits"][0]["title"] == "BM25 ranking"  # the document that is about the query's rare term
    agg = tools.aggregate({"chunk": chunks, "ground": items, "search": found})
    assert set(agg["sources"]) <= ids | docs and agg["searched"] == ["bm25", "bm25"]
    good = sorted(agg["sources"])[0]
    out = tools.check_citations({"synthesize": {"summary": "s", "citations": [good, "d99", f"[{good}]"]},
                                 "aggregate": agg})
    assert [c["id"] for c in out["citations"]] == [good] and out["unresolved"] == ["d99"]
    with pytest.raises(ValueError, match="no citation names"):
        tools.check_citations({"synthesize": {"summary": "s", "citations": ["p9c9"]}, "aggregate": agg})


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_python3_dev_py_demo_runs_each_shipped_workflow_once(folder: Path) -> None:
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    lines = [args for args in dev.demo_steps() if len(args) > 1 and args[1].startswith(f"models/{folder.name}/")]
    wf = f"models/{folder.name}/{folder.name}.yaml"
    assert [a[0] for a in lines if a[1] == wf].count("run") == 1
    assert ["check", wf] in lines and ["check", f"models/{folder.name}/{folder.name}_broken.yaml"] in lines
