"""``petriflow runs list | show | pending`` and ``petriflow answer`` (issue 9 item 6, the humans' half).

A real run waits for its human step in a subprocess; the test reads its
stderr until it says which step waits and how to answer, then answers it
with exactly that command, after the wrong answers have been refused.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
WF = """name: review
steps:
  - {id: draft, kind: python, function: 'petriflow.execute.builtins:echo', config: {kwargs: {value: drafted}}}
  - {id: review, kind: human, after: [draft], config: {poll: 0.02}}
"""


def _pf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "petriflow", *args], capture_output=True, text=True, cwd=ROOT,
                          env=ENV, timeout=60)


def test_a_waiting_run_says_how_to_answer_and_bad_answers_are_refused(tmp_path: Path) -> None:
    wf, db = tmp_path / "review.yaml", str(tmp_path / "r.sqlite")
    wf.write_text(WF)
    proc = subprocess.Popen([sys.executable, "-m", "petriflow", "run", str(wf), "--input", "q", "--run-id", "R",
                             "--db", db], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stderr is not None
        line = ""
        while "waits for step" not in line:
            line = proc.stderr.readline()
            assert line, "the run ended without saying it waits"
        assert "run R case 0 waits for step 'review'; answer it with: petriflow answer R review VALUE" in line
        command = shlex.split(line.partition("answer it with: ")[2])
        pending = _pf("runs", "pending", "--db", db)
        assert pending.returncode == 0 and "R case 0 step 'review' pass 1" in pending.stdout
        nosuch = _pf("answer", "R", "nosuchstep", "x", "--db", db)
        assert nosuch.returncode == 2 and "has no human step 'nosuchstep'" in nosuch.stderr
        assert "'review'" in nosuch.stderr and "Traceback" not in nosuch.stderr
        badpass = _pf("answer", "R", "review", "x", "--pass", "3", "--db", db)
        assert badpass.returncode == 2 and "passes 1 to 1, not 3" in badpass.stderr
        assert _pf("answer", "R", "review", "x", "--db", db, "--case", "7").returncode == 2
        assert _pf("run", "--answer", "R", "nosuchstep", "x", "--db", db).returncode == 2
        ok = _pf(*command[1:-3], "approved", *command[-2:])
        assert ok.returncode == 0, ok.stderr
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0 and out.startswith("approved")
    shown = _pf("runs", "show", "R", "--db", db)
    assert "[0] ok: q" in shown.stdout and "draft#1: drafted" in shown.stdout and "=> approved" in shown.stdout
    listed = _pf("runs", "list", "--db", db)
    assert listed.stdout.startswith("R ") and "1/1 ok" in listed.stdout
    assert "nothing is waiting" in _pf("runs", "pending", "--db", db).stdout
    assert _pf("runs", "show", "nope", "--db", db).returncode == 2
