"""Screenshots of every page of the console, for docs/ui/*.png (run: python analysis/ui_screenshots.py).

Real runs of ``tests/data/ui/review_flow.yaml`` (one answered case by
case, approve, reject and escalate; one still waiting, its post holding a
``<script>``), the real ``petriflow ui`` and Debian's chromium, as in the
tests. Writes review.png, runs.png, run.png, net.png, compare.png and metrics.png.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.ui.harness import browser, console, finish, petriflow, start_run, wait_waiting

OUT = ROOT / "docs" / "ui"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "runs.sqlite"
        done = start_run(db, "20261202T101500-moderation", "buy cheap watches at example.com!!!",
                         "What a lovely photo of the harbour", "I will find where you live")
        wait_waiting(db, "20261202T101500-moderation", 3)
        for case, verdict in ((0, "reject"), (1, "approve"), (2, "escalate")):
            petriflow("answer", "20261202T101500-moderation", "review", verdict, "--case", str(case), "--db", str(db))
        finish(done)
        waiting = start_run(db, "20261202T103000-moderation", "Great post <script>alert('hi')</script> thanks",
                            "Is this a scam? send 0.1 BTC to win")
        try:
            wait_waiting(db, "20261202T103000-moderation", 2)
            with console(db) as ui, browser() as ctx:
                page = ctx.new_page()
                page.goto(f"{ui.url}/review?token={ui.token}")
                page.screenshot(path=OUT / "review.png", full_page=True)
                page.goto(f"{ui.url}/runs")
                page.screenshot(path=OUT / "runs.png", full_page=True)
                page.goto(f"{ui.url}/runs/20261202T101500-moderation")
                page.screenshot(path=OUT / "run.png", full_page=True)
                page.goto(f"{ui.url}/runs/20261202T103000-moderation/net")
                page.wait_for_function("document.getElementById('net').naturalWidth > 0", timeout=120_000)
                page.screenshot(path=OUT / "net.png", full_page=True)
                page.goto(f"{ui.url}/compare")
                page.wait_for_function("document.querySelector('img.plot').naturalWidth > 0", timeout=120_000)
                page.screenshot(path=OUT / "compare.png", full_page=True)
                page.goto(f"{ui.url}/metrics")
                page.set_viewport_size({"width": 1100, "height": 700})
                page.screenshot(path=OUT / "metrics.png")
        finally:
            waiting.kill()
    print("wrote", ", ".join(sorted(p.name for p in OUT.glob("*.png"))), "to", OUT)


if __name__ == "__main__":
    main()
