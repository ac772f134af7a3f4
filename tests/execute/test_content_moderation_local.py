"""The content moderation workflow end to end on the REAL local models and the real OCR, through the CLI.

One run over the sample posts, from another directory (the tools are found
next to the workflow). The oracles are independent of the models' numbers:

* the words OCR reads are the words ``data/make_images.py`` rendered;
* the decision record agrees with the classifiers' own stored outputs;
* the route each case took is the one the decision rule (written here again,
  in Python) gives for its record, and the trace names that branch;
* every case the rule sends to review waits for a person (``runs pending``)
  and is finished by ``petriflow answer``; no other case waits;
* every post has exactly one audit row, whose verdict is the route's, the
  person's answer, or ``failed`` for the post whose image is no image (its
  ``on_failure`` handler wrote it) — and the truncated image, on which OCR
  raises, is audited too, through the OCR step's fallback and a person.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from petriflow.trace import read_traces
from tests.cli_in_process import petriflow

ROOT = Path(__file__).resolve().parents[2]
FLOW = ROOT / "models" / "content_moderation"
WF = FLOW / "content_moderation.yaml"
POSTS = FLOW / "data" / "posts.jsonl"
RUN = "moderation-e2e"

pytestmark = [pytest.mark.local_models, pytest.mark.timeout(300)]


def _rule(d: dict[str, Any]) -> str:
    """The decision rule of the workflow's route conditions, restated."""
    if d["keywords"] or d["risk"] >= 0.8:
        return "reject"
    if d["risk"] >= 0.4 or d["confidence"] < 0.6:
        return "review"
    return "approve"


def _harm(out: dict[str, Any], bad: str) -> float:
    return float(out["score"]) if out["label"] == bad else 1.0 - float(out["score"])


def _cli(*args: str | int | Path) -> Any:
    """``petriflow ARGS`` in this process (the store is the run's SQLite file; the run is another process)."""
    return petriflow(*map(str, args))


def _show(db: Path) -> dict[str, Any]:
    res = _cli("runs", "show", RUN, "--db", db, "--json")
    if res.code == 2 and f"no run '{RUN}'" in res.err:  # the run has not recorded itself yet
        return {"cases": []}
    assert res.code == 0, res.err
    return dict(json.loads(res.out))


def _signs() -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("make_images", FLOW / "data" / "make_images.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return {name: text for name, (text, _, _) in mod.SIGNS.items()}


def test_every_post_is_routed_by_the_rule_reviewed_when_unsure_and_audited_once(
        local_models: Any, tmp_path: Path) -> None:
    db, trace, audit_db = tmp_path / "runs.sqlite", tmp_path / "trace.jsonl", tmp_path / "audit.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MODERATION_AUDIT_DB": str(audit_db)}
    posts = [json.loads(line) for line in POSTS.read_text().splitlines() if line.strip()]
    proc = subprocess.Popen(
        [sys.executable, "-m", "petriflow", "run", str(WF), "--inputs", str(POSTS), "--db", str(db),
         "--trace", str(trace), "--run-id", RUN, "--json"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # wait until every case has finished or waits for a person (held, not yet reviewed)
        deadline = time.monotonic() + 120
        while True:
            shown = _show(db) if db.exists() else {"cases": []}
            held = {c["case"] for c in shown["cases"] if "hold#1" in c["steps"] and "review#1" not in c["steps"]}
            settled = [c for c in shown["cases"] if c["status"] in ("ok", "failed") or c["case"] in held]
            if len(shown["cases"]) == len(posts) and len(settled) == len(posts):
                break
            assert proc.poll() is None and time.monotonic() < deadline, (shown, proc.poll())
            time.sleep(0.5)
        pending = _cli("runs", "pending", RUN, "--db", db)
        waiting = {int(line.split(" case ")[1].split()[0]) for line in pending.out.splitlines()
                   if " step 'review' " in line}
        assert waiting == held  # what `runs pending` lists is what waits
        outputs = {c["case"]: c["steps"] for c in shown["cases"]}
        decided = {k: o["decide#1"] for k, o in outputs.items() if "decide#1" in o}
        routes = {k: _rule(d) for k, d in decided.items()}
        assert waiting == {k for k, r in routes.items() if r == "review"}  # exactly the unsure ones wait
        assert set(routes.values()) == {"approve", "reject", "review"}  # the sample data takes every branch
        # a person answers: one case by its number, the others all at once
        first = min(waiting)
        said = _cli("answer", RUN, "review", "reject", "--case", first, "--db", db)
        assert said.code == 0, said.err
        said = _cli("answer", RUN, "review", "approve", "--db", db)
        assert said.code == 0, said.err
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, err  # one post fails (its image is no image), and still is audited
    doc = json.loads(out)
    cases = {c["case"]: c for c in doc["cases"]}
    ids = {k: p["id"] for k, p in enumerate(posts)}

    # the audit log: one row per post, whatever path it took
    rows = sqlite3.connect(audit_db).execute("SELECT post, verdict, by, record, error FROM audit").fetchall()
    assert sorted(r[0] for r in rows) == sorted(ids.values())
    audit = {r[0]: r for r in rows}
    records = read_traces(trace)
    for k, post in enumerate(posts):
        _, verdict, by, record, error = audit[post["id"]]
        ran = {r.step for r in records if r.case == k and r.outcome == "ok"}
        if k not in decided:  # the post whose image is no image: ingest failed, the handler audited it
            assert post["image"]["path"] == "not_an_image.png"
            assert not cases[k]["ok"] and verdict == "failed" and ran == {"audit_failed"}
            assert json.loads(record) == {"step": "ingest"} and "is not an image" in error  # told why
            continue
        d, route = decided[k], routes[k]
        # the record agrees with the classifiers' stored outputs
        o = outputs[k]
        assert d["toxicity"] == pytest.approx(_harm(o["toxicity#1"], "toxic"), abs=1e-4)
        assert d["spam"] == pytest.approx(_harm(o["spam#1"], "spam"), abs=1e-4)
        harms = [d["toxicity"], d["spam"]] + ([d["image_toxicity"]] if d["image_toxicity"] is not None else [])
        assert d["risk"] == pytest.approx(max(harms), abs=1e-4)
        chosen = [r.branch for r in records if r.case == k and r.step == "decide" and r.outcome == "ok"]
        assert chosen == [route]
        assert cases[k]["ok"], cases[k]["error"]
        if route == "review":
            assert verdict == ("rejected" if k == first else "approved") and by == "human" and "review" in ran
        else:
            assert (verdict, by) == ({"approve": "approved", "reject": "rejected"}[route], "rules")
            assert "review" not in ran
        assert json.loads(record)["risk"] == d["risk"]

    # the image branch read what was drawn, and the truncated picture went to a person
    signs = _signs()
    for k, post in enumerate(posts):
        name = (post.get("image") or {}).get("path")
        if name in signs:
            assert outputs[k]["ocr#1"]["text"].lower() == signs[name].lower()
        if name == "truncated.png":
            ocr = [r.outcome for r in records if r.case == k and r.step == "ocr"]
            assert ocr[-1] == "fallback" and decided[k]["unreadable"] and routes[k] == "review"
    spam_sign = next(k for k, p in enumerate(posts) if (p.get("image") or {}).get("path") == "sign_spam.png")
    assert "free money" in decided[spam_sign]["keywords"] and routes[spam_sign] == "reject"
