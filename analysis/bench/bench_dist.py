"""A batch on Ray against the local backend, and the run store's commits per second (issue 14).

    .venv/bin/python analysis/bench/bench_dist.py [--cases 10000] [--delay 0.02] [--workers 1 2 4]

The QA router (``models/qa_router.yaml``, its models pointed at the fault
server, a subprocess on 127.0.0.1 answering every call after a fixed
``--delay``; its ``llm`` resource widened to ``--capacity`` calls in flight and
its rate limit dropped, so the figure is the executor's, not the limit's) runs
``--cases`` cases in one run: first on the local backend (one asyncio
executor, ``--concurrency`` cases at once, after 50 untimed cases that warm
up the server and the classifier), then on Ray with 1, 2 and 4
workers (each ``--concurrency`` cases at once; the ``llm`` capacity is held
across all of them by the limiter actor). Each batch has its own SQLite
store; the Ray time counts the workers' start (actors, imports) but not
``ray.init``. Printed: cases/s of each and its ratio to local (target: Ray on
1 worker within 1.2x of local). Then the store alone: ``--commits``
checkpoints with their trace records, one transaction each, on SQLite (WAL,
``synchronous=NORMAL``) and on a private PostgreSQL server (Unix socket,
``synchronous_commit=on``), commits/s of each.

Ray's servers listen on every interface, so the script runs itself again
inside ``../shared/tools/in-netns.sh`` (loopback only) when it can (as
root, the wrapper present); otherwise the Ray rows are left out and it says why.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WRAPPER = ROOT.parent / "shared" / "tools" / "in-netns.sh"
TARGET = 1.2
SMOKE_ARGS = ["--cases", "40", "--workers", "1", "--commits", "50"]
QUESTIONS = ["hi, how are you?", "how do I reverse a list in python?", "who won the 2018 world cup?",
             "tell me a joke", "fix this TypeError", "what is the population of France?"]


def _workflow(base_url: str, capacity: int, out: Path) -> Path:
    text = (ROOT / "models" / "qa_router.yaml").read_text()
    text = text.replace("base_url: local", f'base_url: "{base_url}"')
    text = re.sub(r"capacity: \d+", f"capacity: {capacity}", text)
    text = re.sub(r"\n\s*requests_per_minute: \d+", "", text)
    out.write_text(text)
    return out


def _batches(args: argparse.Namespace, ray_ok: bool) -> None:
    from petriflow.execute import Executor, SqliteStore, plan
    from petriflow.spec import load
    from tests.execute.fault_server import spawn

    tmp = Path(tempfile.mkdtemp(prefix="pf-bench-dist-"))
    values = [QUESTIONS[i % len(QUESTIONS)] + f" #{i}" for i in range(args.cases)]
    with spawn(delay=args.delay) as server:
        wf_path = _workflow(server.base_url, args.capacity, tmp / "qa_router.yaml")
        dag = plan(load(wf_path))

        async def local() -> float:
            async with Executor(dag, store=SqliteStore(tmp / "local.sqlite")) as ex:
                await ex.run_many(values[:50], run_id="warm", concurrency=args.concurrency)  # first calls, untimed
                t0 = time.perf_counter()
                res = await ex.run_many(values, run_id="local", concurrency=args.concurrency)
                wall = time.perf_counter() - t0
            assert all(r.ok for r in res), next(r.error for r in res if not r.ok)
            return wall

        base = args.cases / asyncio.run(local())
        print(f"| backend | workers | cases/s | local/this |\n|---|---|---|---|\n| local | - | {base:.1f} | 1.00x |")
        if not ray_ok:
            return
        import ray

        from petriflow.execute.distributed import run_on_ray

        ratios: list[float] = []

        ray.init(address="local", num_cpus=max(max(args.workers), os.cpu_count() or 1), include_dashboard=False,
                 log_to_driver=False)
        try:
            for n in args.workers:
                db = tmp / f"ray{n}.sqlite"
                ex = Executor(dag, store=SqliteStore(db))

                async def on_ray(ex: Executor = ex, n: int = n, db: Path = db) -> float:
                    rid = f"ray{n}"
                    ex.open_run(rid, values)
                    t0 = time.perf_counter()
                    res = await run_on_ray(ex, str(wf_path), str(db), rid, list(enumerate(values)), workers=n,
                                           concurrency=args.concurrency)
                    wall = time.perf_counter() - t0
                    assert len(res) == args.cases and all(r.ok for r in res)
                    return wall

                rate = args.cases / asyncio.run(on_ray())
                print(f"| ray | {n} | {rate:.1f} | {base / rate:.2f}x |")
                if n == 1:
                    ratios.append(base / rate)
        finally:
            ray.shutdown()
        for r in ratios:
            print(f"\ntarget (issue 14): Ray on 1 worker within {TARGET}x of local: "
                  f"{'met' if r <= TARGET else 'missed'} ({r:.2f}x)")
    shutil.rmtree(tmp, ignore_errors=True)


def _commits(n: int) -> None:
    from petriflow.execute.store import Checkpoint, PostgresStore, SqliteStore
    from petriflow.trace import TraceRecord
    from tests.execute.pg_server import PgServer, missing

    def rate(store: object) -> float:
        rec = TraceRecord(run_id="R", case=0, step="a", start=0.0, end=0.0, attempt=1, outcome="ok")
        t0 = time.perf_counter()
        for i in range(n):
            store.save_step("R", i, "a#1", Checkpoint("a", "", {"answer": "x" * 200}), trace=rec)  # type: ignore[attr-defined]
        return n / (time.perf_counter() - t0)

    tmp = Path(tempfile.mkdtemp(prefix="pf-bench-store-"))
    print(f"\n| store | commits/s ({n} checkpoints, each with its trace record) |\n|---|---|")
    print(f"| SQLite (WAL, synchronous=NORMAL) | {rate(SqliteStore(tmp / 's.sqlite')):.0f} |")
    why = missing()
    if why:
        print(f"| PostgreSQL | left out: {why} |")
    else:
        server = PgServer().start()
        try:
            print(f"| PostgreSQL 15 (Unix socket, synchronous_commit=on) | {rate(PostgresStore(server.database())):.0f} |")
        finally:
            server.remove()
    shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--delay", type=float, default=0.02, help="the server's fixed delay per call, seconds")
    ap.add_argument("--concurrency", type=int, default=64, help="cases in flight per executor")
    ap.add_argument("--capacity", type=int, default=64, help="the llm resource's calls in flight, across workers")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--commits", type=int, default=2000)
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import importlib.util

    no_ray = ("ray is not installed" if importlib.util.find_spec("ray") is None else None)
    if not args.inside and no_ray is None:
        if WRAPPER.exists() and os.geteuid() == 0:
            proc = subprocess.run([str(WRAPPER), sys.executable, *sys.argv, "--inside"], stdin=subprocess.DEVNULL)
            sys.exit(proc.returncode)
        no_ray = f"Ray runs only in a loopback-only namespace and {WRAPPER} is missing or needs root"
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.cases} cases of the QA router, server delay "
          f"{args.delay * 1000:.0f} ms, concurrency {args.concurrency} per executor, llm capacity {args.capacity}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
          + (f"; Ray left out: {no_ray}" if no_ray else "")
          + f"; target: Ray on 1 worker within {TARGET}x of local's cases/s\n")
    _batches(args, ray_ok=no_ray is None)
    _commits(args.commits)
    if args.inside:  # Ray's native atexit handlers sometimes abort an exiting process; what it printed is complete
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
