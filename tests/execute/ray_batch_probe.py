"""Inside a loopback-only namespace: one batch run locally and on Ray, a Ray worker killed mid-case.

``python -m tests.execute.ray_batch_probe DB_LOCAL DB_RAY DB_DRIVER OUT.json``
is what ``test_ray_batch.py`` runs under ``in-netns.sh`` (the fault servers
must live in the namespace, where the Ray workers can reach them). It only
gathers the facts and writes them to OUT.json; the test makes every
assertion. The third batch has its *driver* killed mid-run and is then
picked up with ``--resume`` on Ray.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.execute.fault_server import FaultServer
from tests.execute.test_durability import _committed, _workflow, rows

ROOT = Path(__file__).resolve().parents[2]
CASES = 120
CAPACITY = 3  # `llm` calls in flight across all workers: below the 2 workers x 4 cases they would start


def _limited(base_url: str) -> str:
    """The durability workflow with both steps on one `llm` resource of CAPACITY units."""
    doc = _workflow(base_url).replace("steps:", f"resources:\n  llm: {{capacity: {CAPACITY}}}\nsteps:", 1)
    return doc.replace("model: m,", "model: m, uses: [llm],")


def _cli(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "petriflow", "run", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _facts(proc: subprocess.Popen[str], fs: FaultServer, db: str, trace: Path) -> dict[str, object]:
    """What a finished CLI batch left: its exit, output, calls at the server, trace file and stored records."""
    stdout, stderr = proc.communicate(timeout=300)
    return {"rc": proc.returncode, "stdout": stdout, "stderr": stderr[-3000:],
            "counts": dict(fs.counts()["prompts"]), "peak": fs.counts()["peak_in_flight"],
            "trace": trace.read_text().splitlines() if trace.exists() else [],
            "stored": [r[0] for r in rows(db, "SELECT line FROM trace WHERE run_id='R'")],
            "steps": [list(k) + [v] for k, v in _committed(db).items()]}


def _driver_killed(tmp: Path, inputs: Path, db: str) -> dict[str, object]:
    """A Ray batch whose driver is killed (SIGKILL) once half the steps are saved, then ``--resume`` d on Ray."""
    with FaultServer(delay=0.02) as fs:
        wf, trace = tmp / "driver.yaml", tmp / "driver.trace.jsonl"
        wf.write_text(_limited(fs.base_url))
        ray = ["--backend", "ray", "--workers", "2", "--concurrency", "4", "--json", "--trace", str(trace)]
        proc = _cli(str(wf), "--inputs", str(inputs), "--db", db, "--run-id", "R", *ray)
        while len(_committed(db)) < CASES // 2 and proc.poll() is None:
            time.sleep(0.01)
        facts: dict[str, object] = {"killed_while_running": proc.poll() is None}
        proc.kill()
        proc.communicate(timeout=60)
        facts["saved_at_kill"] = [list(k) for k in _committed(db)]
        facts["counts_at_kill"] = dict(fs.counts()["prompts"])
        facts["resumed"] = _facts(_cli("--resume", "R", "--db", db, *ray), fs, db, trace)
        return facts


def main(db_local: str, db_ray: str, db_driver: str, out: str) -> None:
    tmp = Path(out).parent
    inputs = tmp / "in.jsonl"
    inputs.write_text("".join(json.dumps(f"case-{i}") + "\n" for i in range(CASES)))
    facts: dict[str, object] = {}
    for name, db in (("local", db_local), ("ray", db_ray)):
        with FaultServer(delay=0.02) as fs:
            wf = tmp / f"{name}.yaml"
            wf.write_text(_limited(fs.base_url))
            args = [str(wf), "--inputs", str(inputs), "--db", db, "--run-id", "R", "--concurrency", "4", "--json",
                    "--trace", str(tmp / f"{name}.trace.jsonl")]
            if name == "ray":
                args += ["--backend", "ray", "--workers", "2"]
            proc = _cli(*args)
            if name == "ray":  # kill worker 0 once some of its steps are committed, mid-run
                assert proc.stderr is not None
                pids = []
                while len(pids) < 2:
                    line = proc.stderr.readline()
                    if not line:
                        break
                    if line.startswith("ray worker "):
                        pids.append(int(line.rsplit(" ", 1)[1]))
                while len(_committed(db)) < CASES // 2 and proc.poll() is None:
                    time.sleep(0.01)
                os.kill(pids[0], signal.SIGKILL)
                facts["saved_at_kill"] = [list(k) for k in _committed(db)]
                facts["counts_at_kill"] = dict(fs.counts()["prompts"])
                facts["killed_while_running"] = proc.poll() is None
            facts[name] = _facts(proc, fs, db, tmp / f"{name}.trace.jsonl")
    facts["driver"] = _driver_killed(tmp, inputs, db_driver)
    Path(out).write_text(json.dumps(facts))


if __name__ == "__main__":
    main(*sys.argv[1:5])
