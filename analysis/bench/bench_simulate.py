"""Simulator speed against SimPy baselines, side by side in one process, and a 64-configuration sweep.

    .venv/bin/python analysis/bench/bench_simulate.py [--cases 50000] [--repeat 3] [--no-sweep]

The model is a fork-join of k=4 exponential branches (mean 1 s) under
Poisson arrivals (2 cases/s). Baselines, all without resources, routes or
costs (the cheapest they can be):

* ``simpy kernel``: bare ``env.timeout`` throughput, delays drawn ahead and
  drawn one by one with numpy;
* ``token game on simpy, a process per firing``: the lowered workflow net
  played the SimPy way, each firing a process yielding its timeout;
* ``generic token game``: the same net as a tuned plain token game
  (immediate transitions inline, timed ones as callbacks), on SimPy and on
  a bare heapq loop;
* ``hand-written simpy``: one process per case, one per branch, ``all_of``;
* ``hand-written heapq``: the model as the smallest possible event loop
  (an arrival pushes its 4 branch ends; a case is done when all 4 popped).

petriflow runs the same fork-join as a workflow with the branches holding a
shared resource (capacity 16) and token costs, and a variant with a route
on the fork (16 firings per case instead of 14). Best of ``--repeat`` runs.

Rates are per CPU second of this process (``time.process_time``): on a
machine shared with other work that is the one-core figure, and wall-clock
rates (last column) only say how busy the machine was. The baselines draw
all random numbers before their clock starts; petriflow's time covers the
whole ``simulate()`` call (tables, batched draws, statistics).
"""

from __future__ import annotations

import argparse
import heapq
import os
import sys
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np
import simpy

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from petriflow.net.lower import lower
from petriflow.profile import Profile
from petriflow.simulate import Load, simulate
from petriflow.simulate.sweep import parse_vary, sweep
from petriflow.spec import WorkflowBuilder, load

K, RATE, MEAN = 4, 2.0, 1.0
SMOKE_ARGS = ["--cases", "300", "--repeat", "1", "--no-sweep"]  # the smallest run, for tests/test_bench_scripts.py
KERNEL_DAY = 1_359_181  # SimPy kernel timeouts/s (delays drawn ahead) when issue 4's targets were set and met


class Clock:
    """Wall and CPU seconds of this process: on a shared machine CPU time is the one-core figure."""

    def __enter__(self) -> Clock:
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.w, time.process_time() - self.c


def fork_join(*, route: bool, resources: bool = True) -> object:
    b = WorkflowBuilder("fork_join4").model("m", price_input=0.15, price_output=0.6)
    if resources:
        b.resource("llm", capacity=16)
    extra = {"route": [{"when": "fast", "to": "x", "p": 0.7}, {"when": "slow", "to": "y", "p": 0.3}]} if route else {}
    b.step("fork", kind="python", latency=0.0, **extra)
    for i in range(K):
        b.step(f"b{i}", kind="chat", model="m", after=["fork"], latency={"dist": "exponential", "mean": MEAN},
               tokens={"input": 50, "output": {"dist": "exponential", "mean": 100}},
               **({"uses": ["llm"]} if resources else {}))
    joins: dict = {"after": [f"b{i}" for i in range(K)]}
    if route:
        b.step("x", kind="tool", latency=0.01)
        b.step("y", kind="tool", latency=0.05)
        joins["after_any"] = ["x", "y"]
    b.step("join", kind="python", latency=0.0, **joins)
    return b.build()


# -- baselines -----------------------------------------------------------------------------------------
def draws(cases: int, *, seed: int) -> tuple[Iterator[float], Iterator[float]]:
    """Branch delays and inter-arrival gaps for ``cases`` cases, drawn before a baseline starts its clock."""
    rng = np.random.default_rng(seed)
    return iter(rng.exponential(MEAN, cases * K + 10).tolist()), iter(rng.exponential(1 / RATE, cases + 10).tolist())


def token_game_tables() -> tuple[Any, list[tuple[tuple[int, int], ...]], list[tuple[tuple[int, int], ...]], list[bool],
                                 list[list[int]], int, int]:
    """The plain fork-join's lowered net as Python tables for the token-game baselines.

    ``(net, pre, post, timed, consumers, sink, begin)``: arcs as ``(place,
    weight)`` tuples per transition, whether a transition is timed (a branch
    finishing), the transitions that consume from each place, the sink place
    and the begin transition. Plain lists and tuples, so the baselines' inner
    loops stay as fast as a tuned generic implementation would be.
    """
    net = lower(fork_join(route=False, resources=False))
    pre = [tuple((p, w) for p, w in enumerate(row) if w) for row in net.pre.tolist()]
    post = [tuple((p, w) for p, w in enumerate(row) if w) for row in net.post.tolist()]
    timed = [net.origins[t].role == "finish" and net.origins[t].step.startswith("b") for t in net.transitions]
    consumers = [[t for t in range(len(pre)) if any(p == q for q, _ in pre[t])] for p in range(len(net.places))]
    return net, pre, post, timed, consumers, net.place_index(net.sink), net.transition_index("begin")


def simpy_kernel(n: int, *, ahead: bool) -> tuple[float, float]:
    """Timeouts per second: 100 processes each yielding n/100 exponential timeouts."""
    env = simpy.Environment()
    rng = np.random.default_rng(0)
    per = n // 100
    delays = rng.exponential(1.0, per).tolist()

    def proc(env: simpy.Environment) -> object:
        if ahead:
            for d in delays:
                yield env.timeout(d)
        else:
            for _ in range(per):
                yield env.timeout(rng.exponential(1.0))

    for _ in range(100):
        env.process(proc(env))
    with Clock() as clk:
        env.run()
    return per * 100 / clk.cpu, per * 100 / clk.wall


def generic_token_game(cases: int, *, kernel: str) -> tuple[float, float, float]:
    """(cases/s, firings/s, cases/s by wall clock) of the lowered net as a plain token game, no resources, routes or costs.

    Immediate transitions fire inline; a timed one (a branch finishing) is a
    callback on a SimPy timeout (``kernel="simpy"``) or a heapq entry
    (``kernel="heapq"``). Markings are lists, arcs int tuples: a fair,
    reasonably tuned generic implementation.
    """
    net, pre, post, timed, consumers, sink, begin = token_game_tables()
    delays, gaps = draws(cases, seed=1)
    done = [0, 0]
    env = simpy.Environment()
    heap: list[tuple] = []
    seq = count()
    clock = [0.0]

    def later(delay: float, m: list[int], t: int) -> None:
        if kernel == "simpy":
            env.timeout(delay).callbacks.append(lambda _e: fire(m, t))
        else:
            heapq.heappush(heap, (clock[0] + delay, next(seq), m, t))

    def offer(m: list[int], t: int) -> None:
        for q, w in pre[t]:
            if m[q] < w:
                return
        if timed[t]:
            for q, w in pre[t]:  # reserve the inputs while the delay runs
                m[q] -= w
            later(next(delays), m, t)
        else:
            for q, w in pre[t]:
                m[q] -= w
            fire(m, t)

    def fire(m: list[int], t: int) -> None:
        for p, w in post[t]:
            m[p] += w
        done[1] += 1
        if m[sink]:
            done[0] += 1
            return
        for p, _ in post[t]:
            for u in consumers[p]:
                offer(m, u)

    def arrive(i: int) -> None:
        m = net.initial.tolist()
        offer(m, begin)
        if i + 1 < cases:
            if kernel == "simpy":
                env.timeout(next(gaps)).callbacks.append(lambda _e: arrive(i + 1))
            else:
                heapq.heappush(heap, (clock[0] + next(gaps), next(seq), None, i + 1))

    with Clock() as clk:
        arrive(0)
        if kernel == "simpy":
            env.run()
        else:
            while heap:
                clock[0], _, m, t = heapq.heappop(heap)
                if m is None:
                    arrive(t)
                else:
                    fire(m, t)
    assert done[0] == cases
    return done[0] / clk.cpu, done[1] / clk.cpu, done[0] / clk.wall


def process_token_game(cases: int) -> tuple[float, float, float]:
    """The token game the SimPy way: every firing is a process that yields a timeout (0 when immediate)."""
    net, pre, post, timed, consumers, sink, begin = token_game_tables()
    delays, gaps = draws(cases, seed=1)
    env = simpy.Environment()
    done = [0, 0]

    def fire(m: list[int], t: int) -> object:
        for q, w in pre[t]:
            m[q] -= w
        yield env.timeout(next(delays) if timed[t] else 0.0)
        for p, w in post[t]:
            m[p] += w
        done[1] += 1
        if m[sink]:
            done[0] += 1
            return
        for p, _ in post[t]:
            for u in consumers[p]:
                if all(m[q] >= w for q, w in pre[u]):
                    env.process(fire(m, u))

    def arrivals() -> object:
        for _ in range(cases):
            env.process(fire(net.initial.tolist(), begin))
            yield env.timeout(next(gaps))

    env.process(arrivals())
    with Clock() as clk:
        env.run()
    assert done[0] == cases
    return done[0] / clk.cpu, done[1] / clk.cpu, done[0] / clk.wall


def handwritten_simpy(cases: int) -> tuple[float, float]:
    delays, gaps = draws(cases, seed=2)
    env = simpy.Environment()
    done = [0]

    def branch(env: simpy.Environment) -> object:
        yield env.timeout(next(delays))

    def case(env: simpy.Environment) -> object:
        yield env.all_of([env.process(branch(env)) for _ in range(K)])
        done[0] += 1

    def arrivals(env: simpy.Environment) -> object:
        for _ in range(cases):
            env.process(case(env))
            yield env.timeout(next(gaps))

    env.process(arrivals(env))
    with Clock() as clk:
        env.run()
    return done[0] / clk.cpu, done[0] / clk.wall


def bare_heapq(cases: int) -> tuple[float, float]:
    delays, gaps = draws(cases, seed=3)
    heap: list[tuple[float, int, int, int]] = []
    seq = count()
    left = [0] * cases
    done = 0
    clk = Clock().__enter__()
    heapq.heappush(heap, (0.0, next(seq), 0, 0))  # kind 0: arrival of case i
    while heap:
        now, _, kind, i = heapq.heappop(heap)
        if kind == 0:
            left[i] = K
            for _ in range(K):
                heapq.heappush(heap, (now + next(delays), next(seq), 1, i))
            if i + 1 < cases:
                heapq.heappush(heap, (now + next(gaps), next(seq), 0, i + 1))
        else:
            left[i] -= 1
            if left[i] == 0:
                done += 1
    clk.__exit__()
    return done / clk.cpu, done / clk.wall


def ours(cases: int, *, route: bool, backend: str = "fast") -> tuple[float, float, float]:
    """(cases/s, firings/s, cases/s by wall clock), timing the whole call: tables, draws, statistics."""
    wf = fork_join(route=route)
    with Clock() as clk:
        r = simulate(wf, cases=cases, load=Load.poisson(RATE), seed=1, backend=backend)
    assert r.cases == cases, "every case completes"
    return r.cases / clk.cpu, r.firings / clk.cpu, r.cases / clk.wall


def best(f, repeat: int):  # type: ignore[no-untyped-def]
    runs = [f() for _ in range(repeat)]
    return max(runs, key=lambda x: x[0] if isinstance(x, tuple) else x)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-sweep", action="store_true")
    a = ap.parse_args()
    n, rep = a.cases, a.repeat
    print(f"fork-join k={K}, Poisson {RATE}/s, {n} cases, best of {rep}; python {sys.version.split()[0]}, "
          f"simpy {simpy.__version__}, {os.cpu_count()} cores (load {os.getloadavg()[0]:.1f})")
    kt_ahead = best(lambda: simpy_kernel(10 * n, ahead=True), rep)
    kt_numpy = best(lambda: simpy_kernel(10 * n, ahead=False), rep)
    proc = best(lambda: process_token_game(n), rep)
    gen = best(lambda: generic_token_game(n, kernel="simpy"), rep)
    gen_heap = best(lambda: generic_token_game(n, kernel="heapq"), rep)
    hand = best(lambda: handwritten_simpy(n), rep)
    heap = best(lambda: bare_heapq(n), rep)
    plain = best(lambda: ours(n, route=False), rep)
    routed = best(lambda: ours(n, route=True), rep)
    kernel = best(lambda: ours(n, route=True, backend="simpy"), rep)
    print("rates per CPU second of this process (the one-core figure on a shared machine); wall-clock cases/s "
          "in the last column")
    print(f"\n{'':46}{'cases/s':>10} {'firings/s':>11} {'wall c/s':>10}")
    print(f"{'simpy kernel, delays drawn ahead':46}{'':>10} {kt_ahead[0]:>11,.0f}  timeouts/s (wall {kt_ahead[1]:,.0f})")
    print(f"{'simpy kernel, numpy draw per timeout':46}{'':>10} {kt_numpy[0]:>11,.0f}  timeouts/s (wall {kt_numpy[1]:,.0f})")
    print(f"{'token game on simpy, a process per firing':46}{proc[0]:>10,.0f} {proc[1]:>11,.0f} {proc[2]:>10,.0f}")
    print(f"{'generic token game on simpy (callbacks)':46}{gen[0]:>10,.0f} {gen[1]:>11,.0f} {gen[2]:>10,.0f}")
    print(f"{'generic token game on a bare heapq loop':46}{gen_heap[0]:>10,.0f} {gen_heap[1]:>11,.0f} {gen_heap[2]:>10,.0f}")
    print(f"{'hand-written simpy processes, all_of':46}{hand[0]:>10,.0f} {'':>11} {hand[1]:>10,.0f}")
    print(f"{'hand-written heapq loop (4 timeouts/case)':46}{heap[0]:>10,.0f} {'':>11} {heap[1]:>10,.0f}")
    print(f"{'petriflow: resources + costs (14 firings)':46}{plain[0]:>10,.0f} {plain[1]:>11,.0f} {plain[2]:>10,.0f}")
    print(f"{'petriflow: + route (16 firings)':46}{routed[0]:>10,.0f} {routed[1]:>11,.0f} {routed[2]:>10,.0f}")
    print(f"{'petriflow on the simpy kernel (+ route)':46}{kernel[0]:>10,.0f} {kernel[1]:>11,.0f} {kernel[2]:>10,.0f}")
    print("\nratios, CPU time (petriflow with resources, routes and costs / baseline without them):")
    print(f"  cases/s vs token game, process/firing   {routed[0] / proc[0]:5.2f}x   firings/s {routed[1] / proc[1]:5.2f}x")
    print(f"  cases/s vs generic token game on simpy  {routed[0] / gen[0]:5.2f}x   firings/s {routed[1] / gen[1]:5.2f}x")
    print(f"  cases/s vs generic token game on heapq  {routed[0] / gen_heap[0]:5.2f}x   firings/s {routed[1] / gen_heap[1]:5.2f}x")
    print(f"  cases/s vs hand-written simpy, all_of   {routed[0] / hand[0]:5.2f}x")
    print(f"  cases/s vs hand-written heapq           {routed[0] / heap[0]:5.2f}x")
    print(f"  fast clock vs simpy kernel (same engine) {routed[0] / kernel[0]:5.2f}x")
    # issue 4's absolute targets as ratios to the SimPy kernel of the run that set them (400,000 and 25,000
    # against 1,359,181 timeouts/s), applied to this run's kernel: a slower machine moves both sides alike
    fire_ratio, case_ratio = 4e5 / KERNEL_DAY, 2.5e4 / KERNEL_DAY
    yes = {True: "met", False: "NOT met"}
    print(f"  targets, as ratios to this run's SimPy kernel ({kt_ahead[0]:,.0f} timeouts/s, delays drawn ahead): "
          f"firings/s >= {fire_ratio:.3f}x: {yes[routed[1] >= fire_ratio * kt_ahead[0]]} "
          f"({routed[1] / kt_ahead[0]:.3f}x, {routed[1]:,.0f}/s); cases/s >= {case_ratio:.4f}x: "
          f"{yes[routed[0] >= case_ratio * kt_ahead[0]]} ({routed[0] / kt_ahead[0]:.4f}x, {routed[0]:,.0f}/s); "
          f"by wall clock {routed[2]:,.0f} cases/s")
    if a.no_sweep:
        return
    wf = load(ROOT / "models" / "qa_router.yaml")
    prof = Profile.load(ROOT / "models" / "qa_router.profile.yaml", workflow=wf)
    vary = [parse_vary(s) for s in ("general.model=smollm2,gpt4o_mini", "code.model=smollm2,gpt4o_mini",
                                    "search.model=smollm2,gpt4o", "res.llm.capacity=2,4",
                                    "code.timeout=10,60", "general.retry=1,3")]
    workers = os.cpu_count() or 1
    with Clock() as one:  # the same-run reference: one configuration, serially, in this process
        simulate(wf, prof, cases=10_000, load=Load.poisson(1.0), seed=1)
    with Clock() as clk:
        res = sweep(wf, prof, vary, cases=10_000, load=Load.poisson(1.0), seed=1, slo_p95=3.5, workers=workers)
    wall = clk.wall
    ideal = len(res.points) * one.wall / workers
    best_cfg = res.points[res.cheapest].config.label if res.cheapest is not None else "none"
    print(f"\nsweep: {len(res.points)} configurations x 10,000 QA-router cases, Poisson 1/s, {workers} workers: "
          f"{wall:.1f} s ({'under' if wall < 60 else 'OVER'} a minute); one configuration alone {one.wall:.2f} s, "
          f"so the sweep took {wall / ideal:.2f}x {len(res.points)} of them split over {workers} workers "
          f"({wall / one.wall:.1f} configuration-times); cheapest meeting p95 <= 3.5 s: {best_cfg}")


if __name__ == "__main__":
    main()
