"""The first ``petriflow check`` on a machine, and every later one, against processes that do nothing, in one run.

    .venv/bin/python analysis/bench/bench_startup.py [--repeat 5] [--skip-big]

Every figure is the wall time of a new process (``python -m petriflow check
... --json``), with numba's cache in a fresh ``NUMBA_CACHE_DIR``, so the
first run is a machine's first run. References measured in the same run:

* ``python -c pass``: the interpreter alone;
* ``python -c "import numpy"``: the floor of anything numerical;
* a plain-Python BFS over tuples of the same net, in its own process (the
  net read from a JSON file; no petriflow, no numpy): what the state space
  costs when written the obvious way;
* ``load + lower``: a process that reads and lowers the workflow and checks
  nothing, so that "check minus load" is what verifying costs.

Nets: the QA router (``models/qa_router.yaml``, 51 markings: small, so
checked without compiled code) and ``fork_join(8)`` from ``nets.py``
(65,538 markings, past the plain engine's cap: numba compiles on the cold
run and loads its cache on the warm ones). Warm figures are medians of
``--repeat``. Targets, as ratios (the issue's "first check 18-19 s" had
the small check at 8-15x its warm time): the small check with an empty
cache at most 1.5x the warm one; the small check at most 1.5x the process
that only loads the workflow (verifying adds at most half of what loading
costs); the big net with a warm cache (the kernels loaded, not compiled)
faster than the plain-BFS process; and (issue 10) the warm small check under
0.6 s wall and at most 3x ``python -c "import numpy"`` of the same run.
Children run with bytecode caching on (``PYTHONDONTWRITEBYTECODE`` unset),
as a user's installation has it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

SMOKE_ARGS = ["--repeat", "1", "--skip-big"]
"""The smallest run, for tests/test_bench_scripts.py."""

PLAIN_BFS = r"""
import json, sys
from collections import deque
spec = json.load(open(sys.argv[1]))
rows = [([(p, w) for p, w in enumerate(pre) if w], [(p, b - a) for p, (a, b) in enumerate(zip(pre, post)) if b != a])
        for pre, post in zip(spec["pre"], spec["post"])]
m0 = tuple(spec["initial"])
seen, queue, dead = {m0}, deque([m0]), 0
while queue:
    m = queue.popleft()
    fired = False
    for need, change in rows:
        if all(m[p] >= w for p, w in need):
            fired = True
            n = list(m)
            for p, d in change:
                n[p] += d
            n = tuple(n)
            if n not in seen:
                seen.add(n)
                queue.append(n)
    dead += not fired
print(len(seen), dead)
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall seconds of one process, and what it printed."""
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=900)
    return time.perf_counter() - t0, res


def median_of(repeat: int, cmd: list[str], env: dict[str, str]) -> float:
    return statistics.median(timed(cmd, env)[0] for _ in range(repeat))


def net_json(net: object, path: Path) -> Path:
    """The net's matrices as JSON, for the plain-BFS reference process."""
    path.write_text(json.dumps({"pre": net.pre.tolist(), "post": net.post.tolist(),  # type: ignore[attr-defined]
                                "initial": net.initial.tolist()}))  # type: ignore[attr-defined]
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="warm runs per figure (median)")
    ap.add_argument("--skip-big", action="store_true", help="skip fork_join(8) (its cold run compiles numba, ~15 s)")
    args = ap.parse_args(argv)
    import nets

    from petriflow.net.lower import lower
    from petriflow.net.pnml import write_pnml
    from petriflow.spec import load

    py = sys.executable
    qa = "models/qa_router.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "numba-cache"
        env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's install has its .pyc files
        subprocess.run([py, "-m", "compileall", "-q", str(ROOT / "petriflow")], env=env, check=False)
        check = [py, "-m", "petriflow", "check"]
        rows: list[tuple[str, float, str]] = []
        # cold: nothing compiled on this "machine" yet
        cold_small, res = timed([*check, qa, "--json"], env)
        assert res.returncode == 0, res.stdout + res.stderr
        cold_deadlock, _ = timed([*check, qa, "--json", "--property", "deadlock"], env)
        small_states = json.loads(res.stdout)["states"]
        small_json = net_json(lower(load(ROOT / qa)), Path(tmp) / "qa.json")
        big = None
        if not args.skip_big:
            big_net = nets.fork_join(8)
            big = write_pnml(big_net, Path(tmp) / "fork_join8.pnml")
            big_json = net_json(big_net, Path(tmp) / "fj8.json")
            cold_big, res_big = timed([*check, str(big), "--json", "--property", "bounded"], env)
            announced = "compiling the state-space kernels once" in res_big.stderr
        # warm: the cache is filled now (by the big net, if it ran)
        warm_small = median_of(args.repeat, [*check, qa, "--json"], env)
        warm_deadlock = median_of(args.repeat, [*check, qa, "--json", "--property", "deadlock"], env)
        ref_pass = median_of(args.repeat, [py, "-c", "pass"], env)
        ref_numpy = median_of(args.repeat, [py, "-c", "import numpy"], env)
        ref_bfs = median_of(args.repeat, [py, "-c", PLAIN_BFS, str(small_json)], env)
        load_only = f"from petriflow.cli.verify import load_net; load_net({qa!r})"
        ref_load = median_of(args.repeat, [py, "-c", load_only], env)
        rows += [
            (f"check QA router ({small_states} states), empty numba cache", cold_small, ""),
            ("check QA router, --property deadlock, empty cache", cold_deadlock, ""),
            ("check QA router, warm", warm_small, ""),
            ("check QA router, --property deadlock, warm", warm_deadlock, ""),
        ]
        if big is not None:
            warm_big = median_of(args.repeat, [*check, str(big), "--json", "--property", "bounded"], env)
            ref_bfs_big = median_of(max(1, args.repeat // 2), [py, "-c", PLAIN_BFS, str(big_json)], env)
            rows += [
                ("check fork_join(8) (65,538 states), empty cache: compiles", cold_big,
                 "announced on stderr" if announced else "NOT announced"),
                ("check fork_join(8), cache warm: loads the kernels", warm_big, ""),
            ]
    print(f"startup, new process each; python {sys.version.split()[0]}, {os.cpu_count()} cores "
          f"(load {os.getloadavg()[0]:.1f}); warm figures median of {args.repeat}")
    print(f"\n{'':58}{'seconds':>8}  {'/ pass':>7} {'/ numpy':>8} {'/ BFS':>7} {'/ load':>7}")
    refs = [("python -c pass", ref_pass), ("python -c 'import numpy'", ref_numpy),
            ("plain-Python BFS process, QA router net", ref_bfs),
            ("load + lower the QA router, no check", ref_load)]
    if big is not None:
        refs.append(("plain-Python BFS process, fork_join(8)", ref_bfs_big))
    for label, sec in refs:
        print(f"{'reference: ' + label:58}{sec:8.3f}")
    for label, sec, note in rows:
        bfs_ref = ref_bfs_big if "fork_join" in label else ref_bfs
        load = "" if "fork_join" in label else f"{sec / ref_load:6.2f}x"
        print(f"{label:58}{sec:8.3f}  {sec / ref_pass:6.1f}x {sec / ref_numpy:7.1f}x {sec / bfs_ref:6.1f}x "
              f"{load:>7}  {note}")
    yes = {True: "met", False: "NOT met"}
    cold = max(cold_small / warm_small, cold_deadlock / warm_deadlock)
    line = (f"\ntargets: small check with an empty cache <= 1.5x warm: {yes[cold <= 1.5]} ({cold:.2f}x); "
            f"small check <= 1.5x loading the workflow: {yes[warm_small <= 1.5 * ref_load]} "
            f"({warm_small / ref_load:.2f}x); small check < 0.6 s and <= 3x `import numpy`: "
            f"{yes[warm_small < 0.6 and warm_small <= 3 * ref_numpy]} ({warm_small:.3f} s, "
            f"{warm_small / ref_numpy:.2f}x)")
    if big is not None:
        line += (f"; fork_join(8) with a warm cache < the plain-BFS process: {yes[warm_big < ref_bfs_big]} "
                 f"({warm_big / ref_bfs_big:.2f}x); its compile announced: {yes[announced]}")
    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
