"""The deadlock overlay that `petriflow draw` and the console's live net share."""

from __future__ import annotations

from pathlib import Path

import petriflow as pf
from petriflow.viz.witness import deadlock_overlay

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_a_deadlocking_workflow_has_its_witness_and_a_sound_one_none() -> None:
    broken = pf.lower(pf.load(MODELS / "qa_router_broken.yaml"))
    overlay = deadlock_overlay(broken)
    assert overlay is not None and "DEADLOCK" in overlay.title
    report = pf.check(broken)
    assert overlay.trail == tuple(report.deadlock_trace or ())
    assert (overlay.marking == broken.replay(list(overlay.trail))).all()
    assert set(overlay.highlight) <= set(broken.places) | set(broken.transitions) and overlay.highlight
    assert deadlock_overlay(pf.lower(pf.load(MODELS / "qa_router.yaml"))) is None
