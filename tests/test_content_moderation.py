"""The shipped content moderation workflow without models: it is sound, its broken variant is caught
with a witness told in steps, it simulates, and its tools refuse what they cannot moderate.

(The run on the local models and the real OCR is ``tests/execute/test_content_moderation_local.py``.)
"""

from __future__ import annotations

import json
import math
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli_in_process import petriflow

FLOW = Path(__file__).resolve().parents[1] / "models" / "content_moderation"
WF = FLOW / "content_moderation.yaml"


@pytest.fixture
def tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.syspath_prepend(str(FLOW))
    monkeypatch.setenv("MODERATION_AUDIT_DB", str(tmp_path / "audit.sqlite"))
    sys.modules.pop("tools", None)
    import tools as mod

    yield mod
    sys.modules.pop("tools", None)


def test_the_workflow_is_sound() -> None:
    res = petriflow("check", WF, "--json")
    assert res.code == 0, res.out
    assert json.loads(res.out)["sound"] is True


def test_the_broken_variant_never_audits_and_check_says_which_step_waits() -> None:
    res = petriflow("check", FLOW / "content_moderation_broken.yaml")
    assert res.code == 1
    assert "`decide` finishes and chooses" in res.out
    assert "-> `audit` waits for" in res.out and "which can no longer run" in res.out


def test_it_simulates_with_the_profile_beside_it() -> None:
    res = petriflow("simulate", WF, "--cases", "300", "--seed", "2", "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["cases"] == 300 and doc["failed"] == 0 and doc["unfinished"] == 0
    assert all(math.isfinite(doc["latency"][q]) for q in ("mean", "p50", "p95", "p99"))
    # a quarter of the posts wait for a moderator (ten minutes on average): the tail is the review
    assert doc["latency"]["p50"] < 5 < 60 < doc["latency"]["p95"]


def test_ingest_refuses_an_empty_post_and_a_file_that_is_no_image(tools: Any) -> None:
    with pytest.raises(ValueError, match="neither text nor an image"):
        tools.ingest({}, {"id": "x", "text": "  "})
    with pytest.raises(ValueError, match="is not an image"):
        tools.ingest({}, {"id": "x", "image": {"path": str(FLOW / "data" / "not_an_image.png")}})
    ok = tools.ingest({}, {"id": "x", "text": "hi", "image": {"path": str(FLOW / "data" / "truncated.png")}})
    assert ok["image"].endswith("truncated.png")  # the header is fine: OCR is where it fails


def test_keywords_ignore_case_and_punctuation_but_not_word_boundaries(tools: Any) -> None:
    assert tools.keywords("FREE-MONEY!!! Click   here.") == ["free money", "click here"]
    assert tools.keywords("carefree moneybags") == []


def test_the_reviewer_answer_must_be_approve_or_reject(tools: Any) -> None:
    held = {"risk": 0.5, "confidence": 0.7}
    assert tools.reviewed({"hold": held, "review": " Reject "})["verdict"] == "rejected"
    assert tools.reviewed({"hold": held, "review": "approve"})["by"] == "human"
    with pytest.raises(ValueError, match="neither approve nor reject"):
        tools.reviewed({"hold": held, "review": "maybe"})


def test_each_audit_call_is_one_row(tools: Any, tmp_path: Path) -> None:
    tools.audit({"after_any": {"verdict": "approved", "by": "rules", "risk": 0.1}, "after_any_step": "approve"},
                case={"id": "a"})
    tools.audit_failure({"failure": {"step": "ingest", "error": "boom"}}, case={"id": "b"})
    rows = sqlite3.connect(tmp_path / "audit.sqlite").execute("SELECT post, verdict, by, error FROM audit").fetchall()
    assert sorted(rows) == [("a", "approved", "rules", None), ("b", "failed", "petriflow", "boom")]
