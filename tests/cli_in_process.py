"""Run the ``petriflow`` command in this process, as a user's shell would, and hand back what it said.

``petriflow.cli.main`` is called, not the click group, so the one-line error
printer and the exit codes are the ones a user gets; running in-process keeps
the hostile-input and fuzz tests fast enough for every CI run.
"""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from petriflow.cli import main

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str

    @property
    def refusal(self) -> str:
        """The one line that says what is wrong, when the command refused its input as a user's mistake.

        Empty unless the exit code is 2 and stderr has no trace of a bug: either
        petriflow's own ``petriflow: error: ...`` line alone, or click's usage
        error (``Usage: ...`` then ``Error: ...``).
        """
        lines = [line for line in self.err.splitlines() if line.strip()]
        if self.code != 2 or "internal error" in self.err or "Traceback" in self.err:
            return ""
        if len(lines) == 1 and lines[0].startswith("petriflow: error: "):
            return lines[0]
        return lines[-1] if lines and lines[0].startswith("Usage:") and lines[-1].startswith("Error: ") else ""


def petriflow(*args: str | os.PathLike[str]) -> Outcome:
    """``petriflow ARGS...``: its exit code, stdout and stderr (``PETRIFLOW_DEBUG`` must be unset)."""
    assert not os.environ.get("PETRIFLOW_DEBUG"), "the tests check what users see"
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Outcome(code, out.getvalue(), err.getvalue())
