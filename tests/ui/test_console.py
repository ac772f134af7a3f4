"""The console in a real browser (issue 13): review, runs with retries, the live net, escaping, tokens, metrics.

Every run is a real ``petriflow run`` process: of the shipped
``models/content_moderation`` workflow (its real classifiers, OCR and SQLite
audit table) for the review that ends in an audit row, else of
``tests/data/ui/review_flow.yaml`` (its ``fetch`` step fails once and is
retried; ``review`` is a human step that routes on approve / reject /
escalate, with a fallback at its deadline). The console is the real
``petriflow ui`` process, the browser Debian's chromium. The oracles are the
store itself (read through :class:`SqliteStore`) and the processes' exit codes.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from html import escape
from pathlib import Path
from typing import Any

import pytest

from petriflow.execute.store import SqliteStore
from petriflow.trace import TraceRecord
from tests.ui.harness import (
    MODERATION,
    WORKFLOW,
    approved_run,
    browser,
    console,
    finish,
    petriflow,
    start_run,
    wait_for,
    wait_waiting,
)

pytestmark = pytest.mark.browser
XSS = "hello <script>window.__xss = 1</script><img src=x onerror='window.__xss = 2'>"


def _records(db: Path, run_id: str) -> list[TraceRecord]:
    from petriflow.execute.trace import record_of

    store = SqliteStore(db)
    try:
        return [record_of(line) for line in store.trace_lines(run_id)]
    finally:
        store.close()


@pytest.mark.local_models
def test_a_moderation_run_waits_for_review_is_answered_in_the_page_and_audited(
        waiting: Any, embedding_server: Any, tmp_path: Path) -> None:
    """The shipped content_moderation workflow: a post whose image cannot be read is held for a person."""
    audit_db = tmp_path / "audit.sqlite"
    w = waiting("id=p8", "text=my holiday picture", f"image=@{MODERATION / 'data' / 'truncated.png'}",
                workflow=MODERATION / "content_moderation.yaml", env={"MODERATION_AUDIT_DB": str(audit_db)})
    page, ui = w.page, w.ui
    assert page.url == f"{ui.url}/review", "the token is traded for a cookie and dropped from the URL"
    card = page.locator("section.review")
    assert card.count() == 1
    assert "my holiday picture" in card.locator("pre.value").first.inner_text()
    assert "hold#1" in card.inner_text() and "the image could not be read" in card.inner_text()  # upstream
    assert "deadline" in card.inner_text() and "audit_failed" in card.inner_text()
    assert not audit_db.exists() or _audit_rows(audit_db) == []  # nothing is audited before the review
    card.locator("input[name=value]").fill("approve")
    card.locator("button", has_text="Answer").click()
    assert "answered step 'review' pass 1 of case 0 of run R" in page.locator("#message").inner_text()
    code, _, err = finish(w.run)
    assert code == 0, err
    page.goto(f"{ui.url}/review")
    assert page.locator("section.review").count() == 0
    store = SqliteStore(w.db)
    try:
        [case] = store.cases("R")
        steps = store.load_steps("R", 0)
        assert case.status == "ok" and steps["review#1"].output == "approve"
        assert steps["reviewed#1"].output["verdict"] == "approved" and "approve#1" not in steps
    finally:
        store.close()
    [(post, verdict, by)] = _audit_rows(audit_db)  # the audit row, in the workflow's own SQLite table
    assert (post, verdict, by) == ("p8", "approved", "human")


def _audit_rows(path: Path) -> list[tuple[str, str, str]]:
    import sqlite3

    with sqlite3.connect(path) as db:
        return [tuple(r) for r in db.execute("SELECT post, verdict, by FROM audit ORDER BY n")]


def test_escalate_in_the_page_hands_over_to_the_fallback_before_the_deadline(waiting: Any) -> None:
    w = waiting("an unsure post")
    card = w.page.locator("section.review")
    assert "escalating hands it to its fallback auto_escalate" in card.inner_text()
    card.locator("button.escalate").click()
    assert "escalated step 'review' pass 1 of case 0 of run R" in w.page.locator("#message").inner_text()
    code, _, err = finish(w.run)
    assert code == 0, err
    store = SqliteStore(w.db)
    try:
        steps = store.load_steps("R", 0)
        assert steps["review#1"].step == "auto_escalate" and steps["review#1"].label == "escalate"
        assert steps["audit#1"].output == {"audited": True, "decision": {"senior": "escalated"}}
        [review] = [r for r in _records(w.db, "R") if r.step == "review"]
        assert (review.outcome, review.error) == ("fallback", "timeout")  # what its deadline would have written
    finally:
        store.close()


def test_an_answer_is_recorded_once_and_validated(waiting: Any) -> None:
    w = waiting("a post")
    page, ui = w.page, w.ui
    form = page.locator("form.answer")
    csrf = form.locator("input[name=csrf]").get_attribute("value")
    post = {"csrf": csrf, "run_id": "R", "step": "review", "case": "0", "npass": "1"}
    bad = page.request.post(f"{ui.url}/review/answer", form={**post, "value": "maybe"})
    assert "answer one of approve, reject, escalate" in bad.text()
    first = page.request.post(f"{ui.url}/review/answer", form={**post, "value": "approve"})
    second = page.request.post(f"{ui.url}/review/answer", form={**post, "value": "escalate"})
    assert "answered step" in first.text() and "already answered" in second.text()
    code, _, err = finish(w.run)
    assert code == 0, err
    late = page.request.post(f"{ui.url}/review/escalate", form=post)  # answered and gone on: nothing waits
    assert "is not waiting" in late.text()
    store = SqliteStore(w.db)
    try:
        assert store.load_steps("R", 0)["review#1"].output == "approve"
    finally:
        store.close()


def test_the_run_page_shows_every_attempt_with_its_retries(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    approved_run(db, "R", "first post", "second post")
    recs = _records(db, "R")
    retried = [r for r in recs if r.attempt > 1]
    assert retried, "the workflow's fetch step fails once, so some attempt is a retry"
    with console(db) as ui, browser() as ctx:
        page = ctx.new_page()
        page.goto(f"{ui.url}/runs/R?token={ui.token}")
        rows = page.locator("tr.attempt")
        assert rows.count() == len(recs)
        shown = sorted((r.inner_text().split("\t")[0].strip(), r.locator("td").nth(1).inner_text().split()[0],
                        r.locator("td").nth(4).inner_text().split()[0]) for r in rows.all())
        assert shown == sorted((str(r.case), r.step, str(r.attempt)) for r in recs)
        assert page.locator("tr.attempt.retry").count() == len(retried)
        assert page.locator("tr.attempt.outcome-error").count() == sum(r.outcome == "error" for r in recs)
        page.goto(f"{ui.url}/runs")
        row = page.locator("tr", has=page.locator("a", has_text="R")).first
        assert f"{sum(r.outcome != 'ok' for r in recs)}" in row.locator("td").nth(8).inner_text()


def test_the_live_net_changes_while_the_run_goes_on(waiting: Any) -> None:
    w = waiting("a post", path="/runs/R/net")
    page = w.page
    img = page.locator("img#net")
    before = img.get_attribute("src")
    page.wait_for_function("document.getElementById('net').naturalWidth > 0", timeout=180_000)
    review = page.locator("tr[data-step=review] td")
    assert review.nth(3).inner_text() == "1", "review waits for a human"
    assert "waiting for a human" in page.locator("#title").inner_text()
    assert petriflow("answer", "R", "review", "approve", "--db", str(w.db)).returncode == 0
    page.wait_for_function(f"document.getElementById('net').getAttribute('src') !== {json.dumps(before)}",
                           timeout=180_000)
    page.wait_for_function("document.getElementById('title').textContent.includes('1/1 case(s) finished')",
                           timeout=180_000)
    assert page.locator("tr[data-step=audit] td").nth(5).inner_text() == "1"
    page.wait_for_function("document.getElementById('net').complete && "
                           "document.getElementById('net').naturalWidth > 0", timeout=180_000)
    code, _, err = finish(w.run)
    assert code == 0, err


def test_the_live_net_shows_the_resource_waits_the_executor_records(tmp_path: Path) -> None:

    db, gate = tmp_path / "runs.sqlite", tmp_path / "gate"
    run = start_run(db, "R", "a", "b", "c", workflow=WORKFLOW.with_name("resource_flow.yaml"),
                    env={"UI_GATE": str(gate)})
    try:
        wait_for(db, lambda store: len(store.queued("R")) == 2, "two cases never waited for the gpu")
        with console(db) as ui, browser() as ctx:
            page = ctx.new_page()
            page.goto(f"{ui.url}/runs/R/net?token={ui.token}")
            cells = "document.querySelectorAll('tr[data-step=work] td')"
            page.wait_for_function(f"{cells}.length && {cells}[2].textContent === '2'", timeout=180_000)
            work = page.locator("tr[data-step=work] td")
            assert (work.nth(1).inner_text(), work.nth(2).inner_text()) == ("1", "2")  # running, waiting for gpu
            store = SqliteStore(db)
            try:  # what the page shows is what the executor wrote
                waits = store.queued("R")
                assert [(q.step, q.resource) for q in waits] == [("work", "gpu")] * 2
            finally:
                store.close()
            gate.touch()
            page.wait_for_function("document.getElementById('title').textContent.includes('3/3 case(s) finished')",
                                   timeout=180_000)
            assert work.nth(2).inner_text() == "" and work.nth(5).inner_text() == "3"
        code, _, err = finish(run)
        assert code == 0, err
    finally:
        run.kill()


def test_a_script_in_a_step_output_is_shown_as_text(waiting: Any) -> None:
    w = waiting(XSS)
    page, ui = w.page, w.ui
    text = page.locator("section.review").inner_text()
    assert "<script>window.__xss = 1</script>" in text and "onerror=" in text
    page.goto(f"{ui.url}/runs/R")
    assert "<script>window.__xss = 1</script>" in page.locator("pre.step-output").first.inner_text() or \
        any("<script>" in p.inner_text() for p in page.locator("pre.value").all())
    assert page.evaluate("window.__xss") is None
    assert page.locator("main script, main img[src=x]").count() == 0


def _get(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_a_request_without_the_token_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    SqliteStore(db).close()
    with console(db) as ui:
        for path in ("/", "/review", "/runs", "/metrics", "/runs/R/net.svg", "/static/ui.css"):
            assert _get(ui.url + path)[0] == 401, path
        assert _get(ui.url + "/review?token=wrong")[0] == 401
        assert _get(ui.url + "/review", {"Cookie": "petriflow_ui=wrong"})[0] == 401
        assert _get(ui.url + "/review/answer", data=b"run_id=R&step=review&case=0&value=approve")[0] == 401
        cookie = {"Cookie": f"petriflow_ui={ui.token}"}
        assert _get(ui.url + "/review", cookie)[0] == 200
        status, body = _get(ui.url + "/review/answer", cookie, data=b"run_id=R&step=review&case=0&value=approve")
        assert status == 403 and "CSRF" in body
        assert _get(ui.url + "/review", {**cookie, "Host": "evil.example:80"})[0] == 403
        assert ui.token not in _get(ui.url + "/review", cookie)[1]


def test_a_workflow_that_fails_check_is_drawn_with_its_deadlock_witness(tmp_path: Path) -> None:
    """The shipped broken router (an AND-join after an exclusive route) drawn as ``petriflow draw`` draws it."""
    from petriflow.net.lower import lower
    from petriflow.spec import load
    from petriflow.viz.witness import deadlock_overlay

    broken = MODERATION.parent / "qa_router_broken.yaml"
    overlay = deadlock_overlay(lower(load(broken)))
    assert overlay is not None
    db = tmp_path / "runs.sqlite"
    store = SqliteStore(db)
    store.create_run("R", workflow=str(broken))
    store.close()
    with console(db) as ui:
        status, svg = _get(ui.url + "/runs/R/net.svg", {"Cookie": f"petriflow_ui={ui.token}"})
    assert status == 200 and "DEADLOCK" in svg and escape(overlay.title) in svg
    assert "aggregate" in svg


def test_metrics_parse_and_match_the_store(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    db = tmp_path / "runs.sqlite"
    approved_run(db, "A", "one", "two", "three")
    waiting = start_run(db, "B", "four", "five")
    try:
        wait_waiting(db, "B", 2)
        with console(db) as ui:
            status, text = _get(ui.url + "/metrics", {"Authorization": f"Bearer {ui.token}"})
        assert status == 200
    finally:
        waiting.kill()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    recs = _records(db, "A") + _records(db, "B")
    by_step: dict[str, list[TraceRecord]] = {}
    for r in recs:
        by_step.setdefault(r.step, []).append(r)
    attempts = {(s.labels["step"], s.labels["outcome"]): s.value for s in families["petriflow_step_attempts"].samples}
    assert attempts == {(step, o): float(sum(r.outcome == o for r in rs))
                        for step, rs in by_step.items() for o in {r.outcome for r in rs}}
    counts = {s.labels["step"]: s.value for s in families["petriflow_step_latency_seconds"].samples
              if s.name.endswith("_count")}
    assert counts == {step: float(len(rs)) for step, rs in by_step.items()}
    sums = {s.labels["step"]: s.value for s in families["petriflow_step_latency_seconds"].samples
            if s.name.endswith("_sum")}
    for step, rs in by_step.items():
        assert sums[step] == pytest.approx(sum(r.end - r.start for r in rs))
    failures = {s.labels["step"]: s.value for s in families["petriflow_step_failures"].samples}
    assert failures == {step: float(sum(r.outcome != "ok" for r in rs)) for step, rs in by_step.items()}
    assert failures["fetch"] >= 1
    queue = {s.labels["step"]: s.value for s in families["petriflow_review_queue_length"].samples}
    assert queue == {"review": 2.0}
    runs = {s.labels["status"]: s.value for s in families["petriflow_runs"].samples}
    assert runs == {"running": 1.0, "ok": 1.0, "failed": 0.0}


def test_predicted_against_measured_and_the_refit_button(tmp_path: Path) -> None:
    import numpy as np

    from petriflow.ui.compare import measured_cases

    db = tmp_path / "runs.sqlite"
    approved_run(db, "A", "one", "two", "three", "four")
    recs = _records(db, "A")
    spans: dict[int | str, list[float]] = {}
    for r in recs:
        spans.setdefault(r.case, []).extend([r.start, r.end])
    want = float(np.mean([max(v) - min(v) for v in spans.values()]))  # the oracle: the cases' spans, by hand
    store = SqliteStore(db)
    row = store.get_run("A")
    assert row is not None
    assert float(np.mean(measured_cases(store, [row])[0])) == pytest.approx(want)
    store.close()
    with console(db) as ui, browser() as ctx:
        page = ctx.new_page()
        page.goto(f"{ui.url}/compare?token={ui.token}")
        cells = page.locator("#gap-latency td")
        assert float(cells.nth(2).inner_text()) == pytest.approx(want, rel=1e-3)
        predicted, measured, gap = (float(cells.nth(i).inner_text()) for i in (1, 2, 3))
        assert gap == pytest.approx(measured - predicted, rel=1e-3, abs=1e-3)
        low, high = (float(x) for x in cells.nth(4).inner_text().strip("[]").split(","))
        assert low <= gap <= high
        page.wait_for_function("document.querySelector('img.plot').naturalWidth > 0", timeout=180_000)
        assert "annotations" in page.locator("p.meta").inner_text()
        page.locator("#refit").click()
        assert "refitted into" in page.locator("#message").inner_text()
        assert "refitted from the runs" in page.locator("p.meta").inner_text()
    assert (tmp_path / "review_flow.fitted.profile.yaml").is_file()
