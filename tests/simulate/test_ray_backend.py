"""Real Ray: ``sweep --backend ray`` prints, byte for byte, what ``sweep --backend local`` prints.

Ray's servers (GCS, raylet, workers) listen on all network interfaces, so
this test starts Ray only inside a network namespace that has nothing but
loopback: ``../shared/tools/in-netns.sh`` beside the repository (it needs
root, as CI has) runs the Ray command in a fresh one and ends whatever the
command leaves behind. The rest of the suite runs outside, as usual; only
the one ``petriflow sweep --backend ray`` process goes in.

Where the wrapper is missing (a clone on its own) the test skips and says
why, unless ``PETRIFLOW_RAY_TESTS=1`` declares that Ray may start here as
it is (the suite already runs in such a namespace, or the machine is
private); then it runs without the wrapper. The orchestration itself (task
order, progress, shutdown) is tested without Ray in ``test_sweep_cli.py``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WRAPPER = ROOT.parent / "shared" / "tools" / "in-netns.sh"
SWEEP = ["sweep", "models/qa_router.yaml", "--vary", "code.model=smollm2,gpt4o_mini", "--vary", "res.llm.capacity=1,4",
         "--cases", "400", "--seed", "3", "--json"]


def _loopback_only() -> list[str]:
    """The command prefix under which Ray may start here, or a skip that says what is missing."""
    if WRAPPER.exists() and os.geteuid() == 0:
        return [str(WRAPPER)]
    if os.environ.get("PETRIFLOW_RAY_TESTS") == "1":
        return []
    why = (f"{WRAPPER} not found" if not WRAPPER.exists() else f"{WRAPPER} needs root (unshare --net)")
    pytest.skip(f"real Ray runs only in a loopback-only network namespace: {why}; "
                "set PETRIFLOW_RAY_TESTS=1 to start Ray on this machine's network anyway")


@pytest.fixture
def stale_ray_tmpdir() -> Iterator[Path]:
    """A Ray temp dir whose ``ray_current_cluster`` names a cluster that is long gone.

    That is what an earlier ``ray start`` leaves in ``/tmp/ray``; Ray's own
    discovery would try to join it, so the sweep must ask for a new local
    instance. ``mkdtemp`` under ``/tmp`` keeps the path short: Ray's unix
    sockets live below it and a socket path has at most 107 bytes.
    """
    tmp = Path(tempfile.mkdtemp(prefix="pf-ray-", dir="/tmp"))
    (tmp / "ray").mkdir()
    (tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:9\n")  # port 9 (discard): nothing listens
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


def _petriflow(*args: str, prefix: Sequence[str] = (), env: dict[str, str] | None = None,
               timeout: float = 400) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI; on a timeout the wrapper gets SIGTERM, which it passes on, and so ends what it started."""
    cmd = [*prefix, sys.executable, "-m", "petriflow", *args]
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            out, err = proc.communicate(timeout=60)
            pytest.fail(f"{' '.join(cmd)} did not end within {timeout} s:\n{err.decode(errors='replace')[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_sweep_on_ray_prints_what_the_local_sweep_prints(stale_ray_tmpdir: Path) -> None:
    prefix = _loopback_only()
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install -e '.[ray]'; python3 dev.py test installs it)")
    local = _petriflow(*SWEEP, "--backend", "local")
    assert local.returncode == 0, local.stderr.decode(errors="replace")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = str(stale_ray_tmpdir)
    on_ray = _petriflow(*SWEEP, "--backend", "ray", prefix=prefix, env=env)
    assert on_ray.returncode == 0, on_ray.stderr.decode(errors="replace")[-3000:]
    assert on_ray.stdout == local.stdout
    assert b'"points"' in local.stdout and local.stdout.count(b'"label"') == 4
