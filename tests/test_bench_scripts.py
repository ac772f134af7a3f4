"""Every benchmark under analysis/bench/ runs as its README says, with its smallest arguments.

Each ``bench_*.py`` declares ``SMOKE_ARGS`` (read here from its source, not
imported); it is run the way the README runs it, ``python
analysis/bench/<script> ...`` from the repository root with no
``PYTHONPATH``, so a script that imported an installed petriflow instead of
this clone's, or that lost a flag its README uses, fails here. Nothing is
timed: the benchmarks print their own figures. LangGraph's side of
``bench_execute.py`` needs the peer venv it creates from PyPI; without it
that part is skipped, and petriflow's side (with its bare-asyncio
reference) still runs.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "analysis" / "bench"
PEER_PYTHON = BENCH / ".venv-peers" / "bin" / "python"
SCRIPTS = sorted(BENCH.glob("bench_*.py"))


def smoke_args(script: Path) -> list[str] | None:
    """The script's ``SMOKE_ARGS`` list, or None if it declares none."""
    for node in ast.parse(script.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "SMOKE_ARGS" for t in targets):
            assert node.value is not None
            return [str(x) for x in ast.literal_eval(node.value)]
    return None


def run(script: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(script.relative_to(ROOT)), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def peer_ready() -> bool:
    if not PEER_PYTHON.exists():
        return False
    probe = subprocess.run([str(PEER_PYTHON), "-c", "import langgraph, openai"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_runs_with_its_smallest_arguments(script: Path) -> None:
    args = smoke_args(script)
    if args is None:
        pytest.skip(f"{script.name} declares no SMOKE_ARGS (the smallest arguments it runs with): add them")
    if script.name == "bench_execute.py":
        args = [*args, "--no-peer"]  # LangGraph's side has its own test below
    res = run(script, args)
    assert res.returncode == 0, f"{script.name} {' '.join(args)}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr
    out = res.stdout
    assert "target" in out, "every benchmark states its targets"
    assert "x" in out


@pytest.mark.skipif(not peer_ready(), reason="LangGraph peer venv analysis/bench/.venv-peers is absent (the full "
                    "bench_execute.py run creates it from PyPI); petriflow's side runs in the test above")
def test_bench_execute_with_langgraph_beside_it() -> None:
    script = BENCH / "bench_execute.py"
    res = run(script, smoke_args(script) or [])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "LangGraph targets: not measured" not in res.stdout and "LG/pf" in res.stdout


def test_every_script_declares_its_smallest_arguments_and_names_them_in_the_readme() -> None:
    readme = (BENCH / "README.md").read_text()
    for script in SCRIPTS:
        if smoke_args(script) is not None:
            assert f"`{script.name}`" in readme, f"analysis/bench/README.md does not document {script.name}"


def test_every_side_of_bench_execute_gets_petriflows_client_timeout() -> None:
    """The 1000-concurrent HTTP runs failed on LangGraph's side with openai's default 5 s connect timeout."""
    import importlib.util
    import inspect

    from petriflow.execute.client import ModelClient

    spec = importlib.util.spec_from_file_location("bench_execute", BENCH / "bench_execute.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ours = inspect.signature(ModelClient).parameters["default_timeout"].default
    assert bench.client_timeout() == ours == 120.0
    client = bench.make_client("http://127.0.0.1:9/v1", bench.client_timeout())  # what LangGraph's nodes call
    assert client.timeout == ours and client.max_retries == 0
    assert "make_client(base_url, timeout)" in inspect.getsource(bench.peer_main)
