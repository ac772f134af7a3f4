"""The workflows of issue 10 (wide maps, a wide router, long chains, the schema's largest sizes), checked today.

    .venv/bin/python analysis/bench/bench_scale.py [--timeout 60] [--budget 5000000] [--repeat 5] [--quick] [--only chain]

Each workflow is generated with :class:`petriflow.spec.builder.WorkflowBuilder`
(the same checks as a file), lowered, and checked in a child process of its
own with a wall-clock ``--timeout`` and a ``--max-bytes`` cap, so that a case
that runs out of time or memory is reported as such and the run goes on.
Per workflow, side by side in the same run:

* ``reduced``: ``check(net, reduce=True)``, every property, on the net after
  the structural reductions of ``petriflow/net/reduce.py`` (what ``check``
  does by default for a workflow net too big for the quick plain search);
* ``full``: ``check(net, reduce=False)``, every property on the full state space;
* ``stubborn``: ``check(net, properties=("deadlock",), reduce=False)``, the
  stubborn-set reduced deadlock search on the unreduced net;
* ``bfs``: the plain-Python BFS over tuples of ``nets.py`` on the same net
  (the obvious way to write it), with the same state budget: the reference
  every petriflow time is divided by.

Times are the ``check`` call alone (lowering, from the built workflow to the net, is shown beside
the net's size), after
``python -m petriflow.verify.warm`` has filled numba's cache of this clone,
so that no case pays a compile; one run each: a case that takes seconds does not need a median on a shared
machine, and the ratios to the same-run BFS are what to read. The start-up
figure is the whole ``python -m petriflow check models/qa_router.yaml``
command in fresh processes (median of ``--repeat``) beside ``python -c
"import numpy"`` measured in the same run, the issue's reference for it.

The ``shared llm`` chains are the case found after the first targets were met: every step uses one
resource of capacity 1 and retries, which kept every place until the free-resource rule
(``petriflow/net/_invariant.py``).

Targets (issue 10): each of 3 parallel maps of 50 items with retries, a
60-way router, a chain of 3,000 steps and ``map.max: 1000`` checked in at
most 1 s; every size the schema accepts answered (a verdict or a clear
refusal, never a MemoryError); the QA-router command under 0.6 s and at
most 3x ``import numpy``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # this clone's petriflow, whatever the venv has
sys.path.insert(0, str(Path(__file__).resolve().parent))

SMOKE_ARGS = ["--quick", "--timeout", "20", "--repeat", "1"]
"""The smallest run, for tests/test_bench_scripts.py."""

MODES = ("reduced", "full", "stubborn", "bfs")


# -- the workflows ---------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One workflow of the issue's table: a generator name and its size arguments."""

    label: str
    kind: str
    args: tuple[int, ...]
    modes: tuple[str, ...] = MODES


def parallel_maps(maps: int, items: int, attempts: int = 2) -> Any:
    """``plan`` lists the items; ``maps`` map steps each run once per item with retries; ``merge`` joins them."""
    from petriflow.spec.builder import WorkflowBuilder

    b = WorkflowBuilder(f"maps_{maps}x{items}")
    b.step("plan", kind="tool", latency=0.1)
    for i in range(maps):
        b.step(f"m{i}", kind="chat", prompt="work on {item}", after=["plan"],
               map={"over": "plan", "max": items}, retry={"max_attempts": attempts}, latency=1.0)
    b.step("merge", kind="python", after=[f"m{i}" for i in range(maps)])
    return b.build()


def router(ways: int) -> Any:
    """A classifier routes to one of ``ways`` answerers (each with retries); ``merge`` takes whichever answered."""
    from petriflow.spec.builder import WorkflowBuilder

    b = WorkflowBuilder(f"router_{ways}")
    b.step("classify", kind="classify", route={f"a{i}": 1.0 / ways for i in range(ways)}, latency=0.01)
    for i in range(ways):
        b.step(f"a{i}", kind="chat", prompt="answer", retry={"max_attempts": 2}, latency=1.0)
    b.step("merge", kind="python", after_any=[f"a{i}" for i in range(ways)])
    return b.build()


def chain(n: int) -> Any:
    """``n`` plain steps one after another."""
    from petriflow.spec.builder import WorkflowBuilder

    b = WorkflowBuilder(f"chain_{n}")
    for i in range(n):
        b.step(f"s{i}", kind="tool", latency=0.1, **({"after": [f"s{i - 1}"]} if i else {}))
    return b.build()


def shared_chain(n: int, attempts: int = 3) -> Any:
    """``n`` steps one after another, each using one ``llm`` of capacity 1 and retrying (``max_attempts``)."""
    from petriflow.spec.builder import WorkflowBuilder

    b = WorkflowBuilder(f"shared_chain_{n}").resource("llm", capacity=1)
    for i in range(n):
        b.step(f"s{i}", kind="chat", prompt="x", uses=["llm"], retry={"max_attempts": attempts}, latency=1.0,
               **({"after": [f"s{i - 1}"]} if i else {}))
    return b.build()


def loop(passes: int) -> Any:
    """``draft`` then ``review``, which sends it back to ``draft`` at most ``passes`` times; then ``publish``."""
    from petriflow.spec.builder import WorkflowBuilder

    b = WorkflowBuilder(f"loop_{passes}")
    b.step("draft", kind="chat", prompt="draft", latency=1.0)
    b.step("review", kind="chat", prompt="review", after=["draft"], loop={"to": "draft", "max": passes, "p": 0.5})
    b.step("publish", kind="python", after=["review"])
    return b.build()


GENERATORS = {"maps": parallel_maps, "router": router, "chain": chain, "shared": shared_chain, "loop": loop}

CASES = (
    Case("2 maps x 4 items, retries", "maps", (2, 4)),
    Case("2 maps x 6 items, retries", "maps", (2, 6)),
    Case("2 maps x 8 items, retries", "maps", (2, 8)),
    Case("3 maps x 20 items, retries", "maps", (3, 20), ("reduced", "full", "stubborn")),
    Case("3 maps x 50 items, retries", "maps", (3, 50), ("reduced", "full", "stubborn")),
    Case("map.max 50", "maps", (1, 50), ("reduced", "full", "stubborn")),
    Case("map.max 1000", "maps", (1, 1000), ("reduced", "full", "stubborn")),
    Case("60-way router", "router", (60,)),
    Case("chain of 1,000 steps", "chain", (1000,)),
    Case("chain of 3,000 steps (MAX_STEPS)", "chain", (3000,), ("reduced", "full")),
    Case("shared llm chain of 5 steps, 3 attempts", "shared", (5,)),
    Case("shared llm chain of 10 steps, 3 attempts", "shared", (10,)),
    Case("shared llm chain of 50 steps, 3 attempts", "shared", (50,)),
    Case("shared llm chain of 400 steps, 3 attempts", "shared", (400,)),
    Case("shared llm chain of 3,000 steps, 3 attempts", "shared", (3000,), ("reduced", "full")),
    Case("loop.max 1000", "loop", (1000,)),
    Case("loop.max 100000", "loop", (100_000,)),
)
QUICK = (
    Case("2 maps x 2 items, retries", "maps", (2, 2)),
    Case("10-way router", "router", (10,)),
    Case("chain of 30 steps", "chain", (30,)),
    Case("chain of 3,000 steps", "chain", (3000,), ("reduced",)),
    Case("shared llm chain of 400 steps, 3 attempts", "shared", (400,), ("reduced",)),
    Case("map.max 50", "maps", (1, 50), ("reduced",)),
    Case("loop.max 20", "loop", (20,)),
)


# -- one case in a child process ---------------------------------------------------------
def child(kind: str, args: list[int], mode: str, budget: int, max_bytes: int, bfs_budget: int) -> dict[str, Any]:
    """Build, lower and check one workflow in this process; what the parent prints, as a dict."""
    from petriflow.errors import PetriflowError
    from petriflow.net.lower import lower

    try:
        wf = GENERATORS[kind](*args)
        t = time.perf_counter()  # lowering alone: the built workflow to its net
        net = lower(wf)
    except PetriflowError as e:
        return {"refused": f"{type(e).__name__}: {_short(str(e))}", "lowering_refused": True}
    except MemoryError:
        return {"refused": "MemoryError while lowering", "lowering_refused": True}
    lower_s = time.perf_counter() - t
    out: dict[str, Any] = {"places": len(net.places), "transitions": len(net.transitions), "lower_s": lower_s}
    t = time.perf_counter()
    try:
        if mode == "bfs":
            from nets import bfs

            reach = bfs(net, min(budget, bfs_budget))
            out |= {"states": len(reach.order), "complete": reach.complete,
                    "verdict": f"dead markings={len(reach.dead)}" if reach.complete else "budget"}
        else:
            from petriflow.verify import check

            props = ("deadlock",) if mode == "stubborn" else ("deadlock", "bounded", "sound", "live")
            rep = check(net, properties=props, max_states=budget, max_bytes=max_bytes, reduce=mode == "reduced")
            words = {"deadlock": rep.deadlock, "bounded": rep.bounded, "sound": rep.sound, "live": rep.live}
            out |= {"states": rep.states_reduced if mode != "full" and rep.states_reduced else rep.states_explored,
                    "complete": rep.complete, "reduced_net": rep.reduced_net,
                    "verdict": " ".join(f"{k}={_word(v)}" for k, v in words.items() if k in props)}
    except PetriflowError as e:
        out["refused"] = f"{type(e).__name__}: {_short(str(e))}"
    except MemoryError:
        out["refused"] = "MemoryError"
    out["check_s"] = time.perf_counter() - t
    return out


def _short(message: str) -> str:
    """An error's first line, without the middle of a long echoed value (the schema quotes the whole list)."""
    line = message.splitlines()[0]
    return line if len(line) <= 160 else f"{line[:60]} ... {line[-90:]}"


def _word(v: object) -> str:
    return "?" if v is None else "yes" if v is True else "no" if v is False else str(v)


def run_case(case: Case, mode: str, a: argparse.Namespace) -> dict[str, Any]:
    """``child`` in a fresh process with a wall-clock timeout: a case that hangs or dies is a row, not a crash."""
    cmd = [sys.executable, __file__, "--child", case.kind, ",".join(map(str, case.args)), mode,
           "--budget", str(a.budget), "--max-bytes", str(a.max_bytes), "--bfs-budget", str(a.bfs_budget)]
    t = time.perf_counter()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout, cwd=ROOT, env=_env())
    except subprocess.TimeoutExpired:
        return {"refused": f"no answer in {a.timeout:g} s", "wall_s": time.perf_counter() - t}
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        tail = (res.stderr.strip().splitlines() or ["?"])[-1][:120]
        return {"refused": f"exit {res.returncode}: {tail}", "wall_s": time.perf_counter() - t}
    return dict(json.loads(lines[-1]), wall_s=time.perf_counter() - t)


def _env() -> dict[str, str]:
    """The children's environment: this clone first, and .pyc files written and used as in an installation."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}


def wall(cmd: list[str], repeat: int) -> float:
    """Median wall time of ``cmd`` in fresh processes."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False, cwd=ROOT, env=_env() | {"PYTHONPATH": str(ROOT)})
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "-"
    if "refused" in r and "verdict" not in r:
        return f"{r['refused']}"
    net = f", net {r['reduced_net'][0]}x{r['reduced_net'][1]}" if r.get("reduced_net") else ""
    return f"{r['verdict']} ({r['states']:,} st{'' if r['complete'] else ', incomplete'}{net}) {r['check_s']:.3f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=60.0, help="wall-clock seconds per case and mode")
    ap.add_argument("--budget", type=int, default=5_000_000, help="state budget of every search")
    ap.add_argument("--bfs-budget", type=int, default=1_000_000, help="state budget of the plain BFS (tuples)")
    ap.add_argument("--max-bytes", type=int, default=1_500_000_000, help="check()'s memory cap")
    ap.add_argument("--repeat", type=int, default=5, help="fresh processes for the start-up figure")
    ap.add_argument("--quick", action="store_true", help="small cases only")
    ap.add_argument("--only", metavar="TEXT", help="only the cases whose label contains TEXT (e.g. chain)")
    ap.add_argument("--child", nargs=3, metavar=("KIND", "ARGS", "MODE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, args, mode = a.child
        print(json.dumps(child(kind, [int(x) for x in args.split(",")], mode, a.budget, a.max_bytes, a.bfs_budget)))
        return

    py = sys.executable
    t = time.perf_counter()  # numba's cache is per clone: compile (or load) it before any case is timed
    subprocess.run([py, "-m", "petriflow.verify.warm"], capture_output=True, check=False, cwd=ROOT,
                   env=_env() | {"PYTHONPATH": str(ROOT)})
    print(f"kernels warmed (python -m petriflow.verify.warm) in {time.perf_counter() - t:.1f} s, not counted below")
    numpy_s = wall([py, "-c", "import numpy"], a.repeat)
    qa_s = wall([py, "-m", "petriflow", "check", "models/qa_router.yaml"], a.repeat)
    print(f"start-up (median of {a.repeat}): `python -c \"import numpy\"` {numpy_s:.3f} s (reference); "
          f"`petriflow check models/qa_router.yaml` {qa_s:.3f} s = {qa_s / numpy_s:.1f}x numpy "
          f"(target <= 0.6 s and <= 3x: {'met' if qa_s <= 0.6 and qa_s <= 3 * numpy_s else 'not met'})")
    print(f"\nper case: verdict (states) check time; timeout {a.timeout:g} s, budget {a.budget:,} states ({a.bfs_budget:,} for the BFS); "
          "the plain BFS counts every dead marking, the final one included\n")
    print("| workflow | places x transitions (lowering) | reduced net (all properties) | full (all properties) "
          "| stubborn (deadlock) | plain BFS (reference) | full/BFS |")
    print("|---|---|---|---|---|---|---|")
    for case in [c for c in (QUICK if a.quick else CASES) if not a.only or a.only in c.label]:
        rows: dict[str, dict[str, Any]] = {}
        for m in case.modes:
            rows[m] = run_case(case, m, a)
            if rows[m].get("lowering_refused"):  # the spec refused it: the same for every mode, said once
                break
        any_r = next(iter(rows.values()))
        size = (f"{any_r['places']} x {any_r['transitions']} (lowered in {any_r['lower_s']:.3f} s)"
                 if "places" in any_r else "-")
        f, b = rows.get("full"), rows.get("bfs")
        ratio = (f"{f['check_s'] / b['check_s']:.2f}x" if f and b and "check_s" in f and "check_s" in b
                 and b.get("complete") else "-")
        print(f"| {case.label} | {size} | {cell(rows.get('reduced'))} | {cell(f)} | {cell(rows.get('stubborn'))} "
              f"| {cell(b)} | {ratio} |", flush=True)
    print("\ntargets (issue 10): 3 maps x 50, 60-way router, chain of 3,000, map.max 1000 each <= 1 s of check time; "
          "every schema size a verdict or a clear refusal; x = ratio of full to the same-run plain BFS")


if __name__ == "__main__":
    main()
