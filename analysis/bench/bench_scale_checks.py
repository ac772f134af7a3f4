"""The reference check and the worst-case cost bound on issue 10's workflows, beside a brute-force oracle.

    .venv/bin/python analysis/bench/bench_scale_checks.py [--repeat 3] [--oracle-timeout 20]

Issue 10 asks that the reference check of the real-workflows issue (every
step's inputs present on every path: :func:`petriflow.spec.visibility.problems`)
and the worst-case cost bound of the generation issue
(:func:`petriflow.profile.bound.cost_bound`) meet the same figures as the
verdicts: at most 1 s each on 3 parallel maps of 50 items with retries, a
60-way router, a chain of 3,000 steps and ``map.max: 1000`` (and
``loop.max: 100000``). The workflows are those of ``bench_scale.py`` with
their steps calling a priced model with token limits, and each step's prompt
naming the step before it, so that the reference check has a template to
check at every step and the bound a price at every call.

Side by side, in the same run: petriflow's reference check (best of
``--repeat``), the brute-force oracle of ``tests/spec/_visibility_oracle.py``
(every combination of route branches run by the enabling rules; a child
process with a wall-clock timeout) with the ratio of their times and whether
they agree, and the cost bound's time and value.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # this clone's petriflow (and its tests' oracle), whatever the venv has

SMOKE_ARGS = ["--quick", "--repeat", "1", "--oracle-timeout", "10"]
"""The smallest run, for tests/test_bench_scripts.py."""

LIMITS = {"max_tokens": 200, "max_input_tokens": 800}


def _builder(name: str) -> Any:
    from petriflow.spec.builder import WorkflowBuilder

    return WorkflowBuilder(name).model("m", name="m", base_url="http://127.0.0.1:9/v1", price_input=0.15,
                                       price_output=0.6)  # USD per million tokens


def maps(n: int, items: int) -> Any:
    b = _builder(f"maps_{n}x{items}")
    b.step("plan", kind="chat", model="m", prompt="plan {question}", config=LIMITS)
    for i in range(n):
        b.step(f"m{i}", kind="chat", model="m", prompt="work on {item} of {plan}", after=["plan"], config=LIMITS,
               map={"over": "plan", "max": items}, retry={"max_attempts": 2})
    b.step("merge", kind="chat", model="m", prompt=" ".join(f"{{m{i}}}" for i in range(n)),
           after=[f"m{i}" for i in range(n)], config=LIMITS)
    return b.build()


def router(ways: int) -> Any:
    b = _builder(f"router_{ways}")
    b.step("classify", kind="chat", model="m", prompt="classify {question}", config=LIMITS,
           route={f"a{i}": 1.0 / ways for i in range(ways)})
    for i in range(ways):
        b.step(f"a{i}", kind="chat", model="m", prompt="answer {classify}", retry={"max_attempts": 2}, config=LIMITS)
    b.step("merge", kind="chat", model="m", prompt="final answer to {question} after {classify}",
           after_any=[f"a{i}" for i in range(ways)], config=LIMITS)
    return b.build()


def chain(n: int) -> Any:
    b = _builder(f"chain_{n}")
    for i in range(n):
        b.step(f"s{i}", kind="chat", model="m", prompt=f"go on from {{s{i - 1}}}" if i else "start {question}",
               config=LIMITS, **({"after": [f"s{i - 1}"]} if i else {}))
    return b.build()


def loop(passes: int) -> Any:
    b = _builder(f"loop_{passes}")
    b.step("draft", kind="chat", model="m", prompt="draft {question}", config=LIMITS)
    b.step("review", kind="chat", model="m", prompt="review {draft}", after=["draft"], config=LIMITS,
           loop={"to": "draft", "max": passes, "p": 0.5})
    b.step("publish", kind="chat", model="m", prompt="publish {review}", after=["review"], config=LIMITS)
    return b.build()


CASES: tuple[tuple[str, Callable[..., Any], tuple[int, ...]], ...] = (
    ("3 maps x 50 items, retries", maps, (3, 50)),
    ("map.max 1000", maps, (1, 1000)),
    ("60-way router", router, (60,)),
    ("chain of 3,000 steps", chain, (3000,)),
    ("loop.max 100000", loop, (100_000,)),
)
QUICK = (("2 maps x 3 items", maps, (2, 3)), ("10-way router", router, (10,)), ("chain of 300 steps", chain, (300,)))


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _oracle(gen: Callable[..., Any], args: tuple[int, ...], queue: Any) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.spec._visibility_oracle import seen_in_every_case

    wf = gen(*args)
    t = time.perf_counter()
    seen = seen_in_every_case(wf)
    queue.put((time.perf_counter() - t, {k: sorted(v) for k, v in seen.items()}))


def oracle(gen: Callable[..., Any], args: tuple[int, ...], timeout: float) -> tuple[float, dict[str, list[str]]] | None:
    """The brute force's time and what it says each step sees, or None past ``timeout``."""
    queue: Any = mp.Queue()
    proc = mp.Process(target=_oracle, args=(gen, args, queue))
    proc.start()
    try:
        got: tuple[float, dict[str, list[str]]] = queue.get(timeout=timeout)
        return got
    except Exception:
        return None
    finally:
        proc.kill()
        proc.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--oracle-timeout", type=float, default=20.0)
    ap.add_argument("--quick", action="store_true", help="small sizes only (the smoke run)")
    a = ap.parse_args()
    import os

    from petriflow.profile.bound import cost_bound
    from petriflow.spec.visibility import problems, visible_table

    load = os.getloadavg()[0]
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load:.1f}; target: each "
          "check at most 1 s\n")
    print("| workflow | steps | reference check (problems) | brute-force oracle | oracle/petriflow | agree "
          "| cost bound | bound (USD) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, gen, args in QUICK if a.quick else CASES:
        wf = gen(*args)
        t_ref, found = _best(lambda wf=wf: problems(wf), a.repeat)
        seen = {k: sorted(v) for k, v in visible_table(wf).items()}
        t_bound, bound = _best(lambda wf=wf: cost_bound(wf), a.repeat)
        got = oracle(gen, args, a.oracle_timeout)
        if got is None:
            oracle_cell, ratio, agree = f"no answer in {a.oracle_timeout:.0f} s", "-", "-"
        else:
            oracle_cell, ratio = f"{got[0]:.3f} s", f"{got[0] / max(t_ref, 1e-9):,.0f}x"
            agree = "yes" if all(got[1][k] == seen.get(k) for k in got[1]) else "NO"
        usd = f"{bound.usd:.6g}" if bound.usd is not None else f"none: {bound.reason}"
        print(f"| {label} | {len(wf.steps)} | {t_ref:.4f} s ({len(found)} problem(s)) | {oracle_cell} | {ratio} "
              f"| {agree} | {t_bound:.4f} s | {usd} |")


if __name__ == "__main__":
    main()
