"""petriflow's executor vs LangGraph, side by side in one run, against one fixed-delay OpenAI server.

    .venv/bin/python analysis/bench/bench_execute.py [--runs 15] [--cases 1000]

The fault server (``tests/execute/fault_server.py``) runs as its own process
and answers every chat call after a fixed delay (50 ms; the step called ``B``
gets 100 ms). LangGraph runs in ``analysis/bench/.venv-peers`` (created here,
``pip install langgraph openai``), as a subprocess of this script, with the same
graphs and the same ``openai`` client settings (no retries, a 2048-connection
pool). Every scenario comes twice: nodes that call the server over HTTP, and
nodes that ``asyncio.sleep`` the same time (no HTTP), which separates the
framework from the HTTP client:

* per-step overhead: a chain of 20 no-op nodes, time per node;
* fan-out: start -> 8 nodes of 50 ms -> join (critical path 50 ms);
* asymmetric: A -> {B 100 ms || C 50 ms -> D 50 ms} -> join (critical path 100 ms;
  supersteps make it 150 ms);
* throughput: 1000 concurrent runs of a one-node graph.

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
from pathlib import Path
from typing import Annotated, Any, TypedDict

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PEERS = HERE / ".venv-peers"
DELAY, SLOW = 0.05, 0.10
CHAIN = 20


class S(TypedDict):
    """LangGraph's state: node outputs appended to one list."""

    out: Annotated[list, operator.add]


def _median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


# -- LangGraph (runs in the peers venv; imports nothing from petriflow) ---------------------

def peer_main(base_url: str, runs: int, cases: int) -> dict[str, Any]:
    import openai
    from langgraph.graph import END, START, StateGraph

    try:
        import httpx2 as httpx  # newer openai releases
    except ImportError:
        import httpx
    http = openai.DefaultAsyncHttpxClient(limits=httpx.Limits(max_connections=2048, max_keepalive_connections=2048))
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, http_client=http)

    def node(name: str, mode: str, seconds: float) -> Any:
        if mode == "noop":
            def f(_: S) -> dict[str, Any]:
                return {"out": [name]}
            return f
        if mode == "sleep":
            async def g(_: S) -> dict[str, Any]:
                await asyncio.sleep(seconds)
                return {"out": [name]}
            return g

        async def h(_: S) -> dict[str, Any]:
            r = await client.chat.completions.create(model="fault-model", max_tokens=8,
                                                     messages=[{"role": "user", "content": f"hi {name}"}],
                                                     extra_headers={"X-Petriflow-Step": name})
            return {"out": [r.choices[0].message.content]}
        return h

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

    async def timed(graph: Any, n: int) -> list[float]:
        await graph.ainvoke({"out": []})
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            await graph.ainvoke({"out": []})
            out.append(time.perf_counter() - t0)
        return out

    async def many(graph: Any) -> float:
        await graph.ainvoke({"out": []})
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            await asyncio.gather(*(graph.ainvoke({"out": []}) for _ in range(cases)))
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    async def main() -> dict[str, Any]:
        res: dict[str, Any] = {"step_overhead_us": _median_ms(await timed(chain(), runs * 10)) * 1000 / CHAIN}
        for mode in ("http", "sleep"):
            res[f"fanout_{mode}_ms"] = _median_ms(await timed(fanout(mode), runs))
            res[f"asym_{mode}_ms"] = _median_ms(await timed(asym(mode), runs))
            res[f"many_{mode}_s"] = await many(single(mode))
        await client.close()
        return res

    return asyncio.run(main())


# -- petriflow ------------------------------------------------------------------------------

def petriflow_main(base_url: str, runs: int, cases: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from petriflow.execute import Executor, plan
    from petriflow.execute.servers import Endpoint
    from petriflow.spec import WorkflowBuilder

    endpoints = {"m": Endpoint(base_url=base_url, model="fault-model", api_key="x")}
    noop = {"kind": "python", "function": "petriflow.execute.builtins:echo", "config": {"kwargs": {"value": 1}}}

    def work(mode: str, seconds: float) -> dict[str, Any]:
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
            b.step(f"f{i}", after=["start"], **work(mode, DELAY))
        return b.step("join", after=[f"f{i}" for i in range(8)], **noop).build()

    def asym(mode: str) -> Any:
        return (builder("asym").step("A", **noop).step("B", after=["A"], **work(mode, SLOW))
                .step("C", after=["A"], **work(mode, DELAY)).step("D", after=["C"], **work(mode, DELAY))
                .step("join", after=["B", "D"], **noop).build())

    def single(mode: str) -> Any:
        return builder("single").step("one", **work(mode, DELAY)).build()

    async def timed(ex: Any, n: int) -> list[float]:
        await ex.run("q")
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = await ex.run("q")
            out.append(time.perf_counter() - t0)
            assert r.ok, r.error
        return out

    async def many(ex: Any) -> float:
        await ex.run("q")
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            rs = await ex.run_many(["q"] * cases, concurrency=cases)
            times.append(time.perf_counter() - t0)
            assert all(r.ok for r in rs), next(r.error for r in rs if not r.ok)
        return statistics.median(times)

    async def main() -> dict[str, Any]:
        async with Executor(plan(chain()), endpoints=endpoints) as ex:
            res: dict[str, Any] = {"step_overhead_us": _median_ms(await timed(ex, runs * 10)) * 1000 / CHAIN}
        for mode in ("http", "sleep"):
            for key, wf in (("fanout", fanout(mode)), ("asym", asym(mode))):
                async with Executor(plan(wf), endpoints=endpoints) as ex:
                    # B's 100 ms: the server's per-step rule keys on the step header
                    res[f"{key}_{mode}_ms"] = _median_ms(await timed(ex, runs))
            async with Executor(plan(single(mode)), endpoints=endpoints) as ex:
                res[f"many_{mode}_s"] = await many(ex)
        return res

    return asyncio.run(main())


# -- driver ---------------------------------------------------------------------------------

def ensure_peers() -> Path:
    py = PEERS / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
    probe = subprocess.run([str(py), "-c", "import langgraph, openai"], capture_output=True, check=False)
    if probe.returncode != 0:
        subprocess.run([str(py), "-m", "pip", "install", "-q", "langgraph", "openai"], check=True)
    return py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--peer", help=argparse.SUPPRESS)
    ap.add_argument("--base-url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        print(json.dumps(peer_main(args.base_url, args.runs, args.cases)))
        return
    py = ensure_peers()
    sys.path.insert(0, str(ROOT))
    from tests.execute.fault_server import spawn

    with spawn(delay=DELAY) as fs:
        fs.add_rule("B", delay=SLOW)
        version = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('langgraph'))"],
                                 capture_output=True, text=True, check=False).stdout.strip()
        t0 = time.time()
        pf = petriflow_main(fs.base_url, args.runs, args.cases)
        peer = subprocess.run([str(py), __file__, "--peer", "langgraph", "--base-url", fs.base_url,
                               "--runs", str(args.runs), "--cases", str(args.cases)],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
        if peer.returncode != 0:
            sys.exit(f"LangGraph side failed:\n{peer.stderr}")
        lg = json.loads(peer.stdout.strip().splitlines()[-1])
        took = time.time() - t0
    print(f"petriflow vs LangGraph {version}; server delay {DELAY * 1000:.0f} ms (B: {SLOW * 1000:.0f} ms); "
          f"median of {args.runs} runs; {args.cases} concurrent runs; load {os.getloadavg()[0]:.1f}; {took:.0f} s")
    rows = [
        ("per-step overhead, no-op chain (us/step)", "step_overhead_us", None, "<= 0.1 x LangGraph"),
        ("fan-out 8 x 50 ms, HTTP (ms)", "fanout_http_ms", DELAY * 1000, "<= 52.5"),
        ("fan-out 8 x 50 ms, sleep (ms)", "fanout_sleep_ms", DELAY * 1000, "<= 52.5"),
        ("A->{B 100 || C 50->D 50}->join, HTTP (ms)", "asym_http_ms", SLOW * 1000, "<= 105"),
        ("A->{B 100 || C 50->D 50}->join, sleep (ms)", "asym_sleep_ms", SLOW * 1000, "<= 105"),
        (f"{args.cases} concurrent 1-step runs, HTTP (s)", "many_http_s", None, ">= 10 x throughput"),
        (f"{args.cases} concurrent 1-step runs, sleep (s)", "many_sleep_s", None, ">= 10 x throughput"),
    ]
    print(f"{'':46} {'petriflow':>10} {'LangGraph':>10} {'LG/pf':>7} {'pf/critical':>11}  target")
    for label, key, critical, target in rows:
        a, b = pf[key], lg[key]
        crit = f"{a / critical:.3f}" if critical else ""
        print(f"{label:46} {a:10.3f} {b:10.3f} {b / a:7.2f} {crit:>11}  {target}")
    print(json.dumps({"petriflow": pf, "langgraph": lg}))


if __name__ == "__main__":
    main()
