"""A long-lived process (the web console) draws many pictures: the second drawing must work like the first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_draw_stays_the_function_after_the_first_drawing(tmp_path: Path) -> None:
    """Importing ``petriflow.viz.draw`` (the submodule) once used to rebind the package's ``draw`` to it."""
    code = (f"import petriflow as pf; from petriflow.viz import draw; net = pf.lower(pf.load({str(ROOT / 'models' / 'qa_router.yaml')!r})); "
            f"draw(net, {str(tmp_path / 'a.svg')!r}); from petriflow.viz import draw as again; "
            f"again(net, {str(tmp_path / 'b.svg')!r}); print(again is draw)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}).stdout.strip()
    assert out == "True"
    assert (tmp_path / "a.svg").read_bytes()[:5] == b"<?xml" and (tmp_path / "b.svg").stat().st_size > 1000
