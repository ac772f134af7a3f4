"""petriflow's executor vs LangGraph and bare asyncio, side by side in one run, against one fixed-delay OpenAI server.

    .venv/bin/python analysis/bench/bench_execute.py [--runs 15] [--cases 1000] [--no-peer]

The fault server (``tests/execute/fault_server.py``) runs as its own process
and answers every chat call after a fixed delay (50 ms; the step called ``B``
gets 100 ms). LangGraph runs in ``analysis/bench/.venv-peers`` (created here,
``pip install langgraph openai``), as a subprocess of this script, with the same
graphs and the same ``openai`` client settings as petriflow's (no retries, a
2048-connection pool, and petriflow's client timeout, 120 s, passed to it:
the ``openai`` default of a 5 s connect timeout fails 1000 concurrent
connections on a loaded machine). Every scenario comes twice: nodes that
call the server over HTTP, and nodes that ``asyncio.sleep`` the same time
(no HTTP), which separates the framework from the HTTP client:

* per-step overhead: a chain of 20 no-op nodes, time per node;
* fan-out: start -> 8 nodes of 50 ms -> join (critical path 50 ms);
* asymmetric: A -> {B 100 ms || C 50 ms -> D 50 ms} -> join (critical path 100 ms;
  supersteps make it 150 ms);
* throughput: 1000 concurrent runs of a one-node graph.

The same-run reference of every scenario is **bare asyncio**: the same
calls (the same ``openai`` client settings, or the same sleeps) written as
plain coroutines with ``asyncio.gather`` and no framework, in this process;
for the per-step overhead, 20 no-op tasks awaited one after another. Targets
are ratios to it (and to LangGraph where it runs): per-step overhead <= 0.1x
LangGraph's; fan-out and asymmetric graph <= 1.05x bare asyncio; 1000
concurrent runs >= 10x LangGraph's throughput. ``--no-peer`` (or a peer
venv that cannot be made) runs petriflow and bare asyncio only.

Times are medians over ``--runs`` runs (3 for the 1000-run batches) after one warm-up; the machine is
shared, so absolute numbers drift between runs while the ratios hold better.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PEERS = HERE / ".venv-peers"
DELAY, SLOW = 0.05, 0.10
CHAIN = 20
SMOKE_ARGS = ["--runs", "1", "--cases", "20"]
"""The smallest run, for tests/test_bench_scripts.py (which adds --no-peer when the peer venv is absent)."""

Run = Callable[[], Awaitable[Any]]


class S(TypedDict):
    """LangGraph's state: node outputs appended to one list."""

    out: Annotated[list, operator.add]


def _median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


async def timed(run: Run, n: int) -> list[float]:
    """Seconds of ``n`` runs one after another, after one warm-up run."""
    await run()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await run()
        out.append(time.perf_counter() - t0)
    return out


async def many(run: Run, cases: int) -> float:
    """Median seconds of 3 batches of ``cases`` concurrent runs, after one warm-up run."""
    await run()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        await asyncio.gather(*(run() for _ in range(cases)))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_client(base_url: str, timeout: float) -> Any:
    """The ``openai`` client of LangGraph's nodes and of bare asyncio: no retries, 2048 connections, ``timeout``."""
    import openai

    try:
        import httpx2 as httpx  # newer openai releases
    except ImportError:
        import httpx
    http = openai.DefaultAsyncHttpxClient(limits=httpx.Limits(max_connections=2048, max_keepalive_connections=2048))
    return openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=timeout, http_client=http)


def work(client: Any, name: str, mode: str, seconds: float) -> Run:
    """One node's work, as a coroutine function: nothing, a sleep, or a chat call naming its step."""
    async def noop() -> str:
        return name

    async def sleep() -> str:
        await asyncio.sleep(seconds)
        return name

    async def http() -> str:
        r = await client.chat.completions.create(model="fault-model", max_tokens=8,
                                                 messages=[{"role": "user", "content": f"hi {name}"}],
                                                 extra_headers={"X-Petriflow-Step": name})
        return str(r.choices[0].message.content)

    return {"noop": noop, "sleep": sleep, "http": http}[mode]


# -- bare asyncio: the same work, no framework (runs in this process) -------------------------

def bare_main(base_url: str, runs: int, cases: int, timeout: float) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        client = make_client(base_url, timeout)
        noop = work(client, "n", "noop", 0)

        async def chain() -> None:
            for _ in range(CHAIN):
                await asyncio.create_task(noop())

        res: dict[str, Any] = {"step_overhead_us": _median_ms(await timed(chain, runs * 10)) * 1000 / CHAIN}
        for mode in ("http", "sleep"):
            fan = [work(client, f"f{i}", mode, DELAY) for i in range(8)]
            b, c, d = (work(client, x, mode, t) for x, t in (("B", SLOW), ("C", DELAY), ("D", DELAY)))

            async def fanout(fan: list[Run] = fan) -> None:
                await asyncio.gather(*(f() for f in fan))

            async def asym(b: Run = b, c: Run = c, d: Run = d) -> None:
                async def cd() -> None:
                    await c()
                    await d()
                await asyncio.gather(b(), cd())

            res[f"fanout_{mode}_ms"] = _median_ms(await timed(fanout, runs))
            res[f"asym_{mode}_ms"] = _median_ms(await timed(asym, runs))
            res[f"many_{mode}_s"] = await many(work(client, "one", mode, DELAY), cases)
        await client.close()
        return res

    return asyncio.run(main())


# -- LangGraph (runs in the peers venv; imports nothing from petriflow) ---------------------

def peer_main(base_url: str, runs: int, cases: int, timeout: float) -> dict[str, Any]:
    from langgraph.graph import END, START, StateGraph

    client = make_client(base_url, timeout)

    def node(name: str, mode: str, seconds: float) -> Any:
        call = work(client, name, mode, seconds)
        if mode == "noop":
            def f(_: S) -> dict[str, Any]:
                return {"out": [name]}
            return f

        async def g(_: S) -> dict[str, Any]:
            return {"out": [await call()]}
        return g

    def chain() -> Any:
        g = StateGraph(S)
        for i in range(CHAIN):
            g.add_node(f"n{i}", node(f"n{i}", "noop", 0))
        g.add_edge(START, "n0")
        for i in range(CHAIN - 1):
            g.add_edge(f"n{i}", f"n{i + 1}")
        g.add_edge(f"n{CHAIN - 1}", END)
        return g.compile()

    def fanout(mode: str) -> Any:
        g = StateGraph(S)
        g.add_node("start", node("start", "noop", 0))
        g.add_node("join", node("join", "noop", 0))
        names = [f"f{i}" for i in range(8)]
        for n in names:
            g.add_node(n, node(n, mode, DELAY))
            g.add_edge("start", n)
        g.add_edge(START, "start")
        g.add_edge(names, "join")
        g.add_edge("join", END)
        return g.compile()

    def asym(mode: str) -> Any:
        g = StateGraph(S)
        g.add_node("A", node("A", "noop", 0))
        g.add_node("B", node("B", mode, SLOW))
        g.add_node("C", node("C", mode, DELAY))
        g.add_node("D", node("D", mode, DELAY))
        g.add_node("join", node("join", "noop", 0))
        g.add_edge(START, "A")
        g.add_edge("A", "B")
        g.add_edge("A", "C")
        g.add_edge("C", "D")
        g.add_edge(["B", "D"], "join")
        g.add_edge("join", END)
        return g.compile()

    def single(mode: str) -> Any:
        g = StateGraph(S)
        g.add_node("one", node("one", mode, DELAY))
        g.add_edge(START, "one")
        g.add_edge("one", END)
        return g.compile()

    def invoke(graph: Any) -> Run:
        return lambda: graph.ainvoke({"out": []})

    async def main() -> dict[str, Any]:
        res: dict[str, Any] = {"step_overhead_us": _median_ms(await timed(invoke(chain()), runs * 10)) * 1000 / CHAIN}
        for mode in ("http", "sleep"):
            res[f"fanout_{mode}_ms"] = _median_ms(await timed(invoke(fanout(mode)), runs))
            res[f"asym_{mode}_ms"] = _median_ms(await timed(invoke(asym(mode)), runs))
            res[f"many_{mode}_s"] = await many(invoke(single(mode)), cases)
        await client.close()
        return res

    return asyncio.run(main())


# -- petriflow ------------------------------------------------------------------------------

def client_timeout() -> float:
    """petriflow's own client timeout (``ModelClient(default_timeout=...)``), which the other sides are given."""
    import inspect

    from petriflow.execute.client import ModelClient

    return float(inspect.signature(ModelClient).parameters["default_timeout"].default)


def petriflow_main(base_url: str, runs: int, cases: int) -> dict[str, Any]:
    from petriflow.execute import Executor, plan
    from petriflow.execute.servers import Endpoint
    from petriflow.spec import WorkflowBuilder

    endpoints = {"m": Endpoint(base_url=base_url, model="fault-model", api_key="x")}
    noop = {"kind": "python", "function": "petriflow.execute.builtins:echo", "config": {"kwargs": {"value": 1}}}

    def step(mode: str, seconds: float) -> dict[str, Any]:
        if mode == "sleep":
            return {"kind": "python", "function": "petriflow.execute.builtins:pause",
                    "config": {"kwargs": {"seconds": seconds, "value": 1}}}
        return {"kind": "chat", "model": "m", "prompt": "hi", "config": {"max_tokens": 8}}

    def builder(name: str) -> Any:
        return WorkflowBuilder(name).model("m", name="fault-model", base_url=base_url)

    def chain() -> Any:
        b = builder("chain")
        for i in range(CHAIN):
            b.step(f"n{i}", **noop, **({"after": [f"n{i - 1}"]} if i else {}))
        return b.build()

    def fanout(mode: str) -> Any:
        b = builder("fanout").step("start", **noop)
        for i in range(8):
            b.step(f"f{i}", after=["start"], **step(mode, DELAY))
        return b.step("join", after=[f"f{i}" for i in range(8)], **noop).build()

    def asym(mode: str) -> Any:
        return (builder("asym").step("A", **noop).step("B", after=["A"], **step(mode, SLOW))
                .step("C", after=["A"], **step(mode, DELAY)).step("D", after=["C"], **step(mode, DELAY))
                .step("join", after=["B", "D"], **noop).build())

    def single(mode: str) -> Any:
        return builder("single").step("one", **step(mode, DELAY)).build()

    def case(ex: Any) -> Run:
        async def run() -> None:
            r = await ex.run("q")
            assert r.ok, r.error
        return run

    async def main() -> dict[str, Any]:
        async with Executor(plan(chain()), endpoints=endpoints) as ex:
            res: dict[str, Any] = {"step_overhead_us": _median_ms(await timed(case(ex), runs * 10)) * 1000 / CHAIN}
        for mode in ("http", "sleep"):
            for key, wf in (("fanout", fanout(mode)), ("asym", asym(mode))):
                async with Executor(plan(wf), endpoints=endpoints) as ex:
                    # B's 100 ms: the server's per-step rule keys on the step header
                    res[f"{key}_{mode}_ms"] = _median_ms(await timed(case(ex), runs))
            async with Executor(plan(single(mode)), endpoints=endpoints) as ex:
                await case(ex)()
                times = []
                for _ in range(3):  # run_many, not gather: petriflow's own way to run a batch
                    t0 = time.perf_counter()
                    rs = await ex.run_many(["q"] * cases, concurrency=cases)
                    times.append(time.perf_counter() - t0)
                    assert all(r.ok for r in rs), next(r.error for r in rs if not r.ok)
                res[f"many_{mode}_s"] = statistics.median(times)
        return res

    return asyncio.run(main())


# -- driver ---------------------------------------------------------------------------------

def ensure_peers() -> Path | None:
    """The peers venv's python with langgraph and openai, made on first use; None (and why) if it cannot be."""
    py = PEERS / "bin" / "python"
    try:
        if not py.exists():
            print(f"creating {PEERS} with langgraph and openai (benchmark only) ...", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
        probe = subprocess.run([str(py), "-c", "import langgraph, openai"], capture_output=True, check=False)
        if probe.returncode != 0:
            subprocess.run([str(py), "-m", "pip", "install", "-q", "langgraph", "openai"], check=True)
    except (subprocess.CalledProcessError, OSError) as err:
        print(f"LangGraph side skipped: the peer venv could not be made ({err})", file=sys.stderr)
        return None
    return py


ROWS = [
    ("per-step overhead, no-op chain (us/step)", "step_overhead_us", None),
    ("fan-out 8 x 50 ms, HTTP (ms)", "fanout_http_ms", DELAY * 1000),
    ("fan-out 8 x 50 ms, sleep (ms)", "fanout_sleep_ms", DELAY * 1000),
    ("A->{B 100 || C 50->D 50}->join, HTTP (ms)", "asym_http_ms", SLOW * 1000),
    ("A->{B 100 || C 50->D 50}->join, sleep (ms)", "asym_sleep_ms", SLOW * 1000),
    ("{cases} concurrent 1-step runs, HTTP (s)", "many_http_s", None),
    ("{cases} concurrent 1-step runs, sleep (s)", "many_sleep_s", None),
]


def report(pf: dict[str, Any], bare: dict[str, Any], lg: dict[str, Any] | None, cases: int) -> list[str]:
    """The table (petriflow, bare asyncio, LangGraph; ratios) and the targets as ratios."""
    lines = [f"{'':46} {'petriflow':>10} {'bare':>9} {'pf/bare':>8} {'LangGraph':>10} {'LG/pf':>7} {'pf/critical':>11}"]
    for label, key, critical in ROWS:
        a, b = pf[key], bare[key]
        c = f"{lg[key]:10.3f} {lg[key] / a:7.2f}" if lg else f"{'n/a':>10} {'':>7}"
        crit = f"{a / critical:.3f}" if critical else ""
        lines.append(f"{label.replace('{cases}', str(cases)):46} {a:10.3f} {b:9.3f} {a / b:8.2f} {c} {crit:>11}")
    yes = {True: "met", False: "NOT met"}
    graphs = ["fanout_http_ms", "fanout_sleep_ms", "asym_http_ms", "asym_sleep_ms"]
    worst = max(pf[k] / bare[k] for k in graphs)
    out = [f"targets: fan-out and asymmetric graph <= 1.05x bare asyncio: {yes[worst <= 1.05]} (worst {worst:.3f}x)"]
    if lg:
        step = pf["step_overhead_us"] / lg["step_overhead_us"]
        out.append(f"per-step overhead <= 0.1x LangGraph's: {yes[step <= 0.1]} ({step:.3f}x)")
        for mode in ("sleep", "http"):
            tp = lg[f"many_{mode}_s"] / pf[f"many_{mode}_s"]
            out.append(f"{cases} concurrent runs ({mode}) >= 10x LangGraph's throughput: {yes[tp >= 10]} ({tp:.1f}x)")
    else:
        out.append("LangGraph targets: not measured (no peer)")
    return [*lines, "", "; ".join(out)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--no-peer", action="store_true", help="run petriflow and bare asyncio only (no LangGraph venv)")
    ap.add_argument("--peer", help=argparse.SUPPRESS)
    ap.add_argument("--base-url", help=argparse.SUPPRESS)
    ap.add_argument("--client-timeout", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        print(json.dumps(peer_main(args.base_url, args.runs, args.cases, args.client_timeout)))
        return
    sys.path.insert(0, str(ROOT))  # this clone's petriflow and tests, whatever the venv has installed
    py = None if args.no_peer else ensure_peers()
    from tests.execute.fault_server import spawn

    timeout = client_timeout()
    with spawn(delay=DELAY) as fs:
        fs.add_rule("B", delay=SLOW)
        t0 = time.time()
        pf = petriflow_main(fs.base_url, args.runs, args.cases)
        bare = bare_main(fs.base_url, args.runs, args.cases, timeout)
        lg, version = None, "not run"
        if py is not None:
            version = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('langgraph'))"],
                                     capture_output=True, text=True, check=False).stdout.strip()
            peer = subprocess.run([str(py), __file__, "--peer", "langgraph", "--base-url", fs.base_url,
                                   "--runs", str(args.runs), "--cases", str(args.cases),
                                   "--client-timeout", str(timeout)],
                                  capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
            if peer.returncode != 0:
                sys.exit(f"LangGraph side failed:\n{peer.stderr}")
            lg = json.loads(peer.stdout.strip().splitlines()[-1])
        took = time.time() - t0
    print(f"petriflow vs bare asyncio vs LangGraph {version}; server delay {DELAY * 1000:.0f} ms "
          f"(B: {SLOW * 1000:.0f} ms); client timeout {timeout:g} s on every side; median of {args.runs} runs; "
          f"{args.cases} concurrent runs; load {os.getloadavg()[0]:.1f}; {took:.0f} s")
    print("\n".join(report(pf, bare, lg, args.cases)))
    print(json.dumps({"petriflow": pf, "bare": bare, "langgraph": lg}))


if __name__ == "__main__":
    main()
