"""Closed loop: run the QA router on the local models, fit a profile, simulate, run again, compare.

    .venv/bin/python analysis/closed_loop.py [--cases 40] [--users 1]

1. *train*: ``--cases`` questions (a fixed mix of small talk, code and fact
   questions) through ``petriflow run``'s engine on the real local models
   (SmolLM2-135M on llama.cpp, e5 embeddings), writing the JSON-lines trace;
2. ``petriflow fit`` (the CLI, as a user would) turns the trace into a profile
   (its per-step table of families, KS statistics and p-values is printed);
3. ``simulate`` predicts per-case latency p50/p95 under the same load (a
   closed population of ``--users`` users, no think time), and the mean
   tokens per case follow from the fitted token distributions and branch
   probabilities;
4. *test*: fresh questions from the same mix are run and measured the same way.

It prints predicted vs measured and the relative gap (the goal: within 10%).
Files go to ``out/closed_loop/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
QA = ROOT / "models" / "qa_router.yaml"
OUT = ROOT / "out" / "closed_loop"

GENERAL = ["hi, how are you?", "tell me a joke", "what is your favourite colour?", "good morning!",
           "can you cheer me up?", "what should I name my cat?", "say something nice", "how was your day?",
           "do you like music?", "tell me a fun fact", "what makes a good friend?", "any tips for a rainy day?"]
CODE = ["how do I reverse a list in python?", "fix this TypeError: can't add str and int",
        "write a SQL query that joins two tables", "how do I read a file line by line in python?",
        "what does a python decorator do?", "how do I sort a dict by value?", "write a bash loop over files",
        "how do I parse JSON in javascript?", "explain list comprehensions", "how to catch an exception in python?",
        "write a function that checks for a palindrome", "how do I merge two lists?"]
SEARCH = ["who won the 2018 world cup?", "what is the population of France?", "latest news about Mars rovers",
          "how tall is the Eiffel tower?", "what is the highest mountain?", "when did Curiosity land on Mars?",
          "at what temperature does water boil?", "who is the president of France?", "what is the capital of Peru?",
          "how far is the moon?", "when was the Eiffel tower built?", "what crater did Perseverance land in?"]


def questions(n: int, rng: random.Random) -> list[str]:
    """``n`` questions in the fixed mix 1/2 small talk, 3/10 code, 1/5 fact (the router's declared mix)."""
    pools = [(GENERAL, 0.5), (CODE, 0.3), (SEARCH, 0.2)]
    out = []
    for pool, share in pools:
        out += [rng.choice(pool) for _ in range(round(n * share))]
    rng.shuffle(out)
    return out[:n]


def run_batch(qs: list[str], trace: Path, users: int) -> list[Any]:
    from petriflow.execute import Executor, TraceWriter, plan
    from petriflow.spec import load

    trace.unlink(missing_ok=True)
    writer = TraceWriter(trace)
    executor = Executor(plan(load(QA)), trace=TraceWriter())
    executor.kinds.prepare()  # start the local servers before the clock starts

    async def main() -> list[Any]:
        async with executor:
            await executor.run("warm up the servers")  # first calls load weights and centroids: not traced
            executor.trace = writer
            return await executor.run_many(qs, concurrency=users)

    results = asyncio.run(main())
    writer.close()
    failed = [r for r in results if not r.ok]
    if failed:
        sys.exit(f"{len(failed)} case(s) failed, e.g. {failed[0].error}")
    return results


def expected_tokens(profile: Any, wf: Any) -> float:
    """Mean tokens per case: each step's mean tokens times the chance that it runs (routes, no loops)."""
    visit: dict[str, float] = {}
    for s in wf.steps:  # file order is topological here
        routed = [(r, b) for r in wf.steps for b in r.route if b.to == s.id]
        if routed:
            v = sum(visit[r.id] * profile.routes.get(r.id, {}).get(b.when, b.p) for r, b in routed)
        elif s.after_any:
            v = sum(visit[u] for u in s.after_any)
        elif s.after:
            v = visit[s.after[0]]
        else:
            v = 1.0
        visit[s.id] = v
    total = 0.0
    for sid, v in visit.items():
        sp = profile.steps.get(sid)
        if sp is None:
            continue
        for d in (sp.input_tokens, sp.output_tokens):
            if d is not None:
                total += v * (d.mean() if callable(d.mean) else d.mean)
    return total


def resampled(trace: Path, rng: np.random.Generator, n: int = 20000) -> dict[str, float]:
    """p50/p95 from resampling the trace's own step latencies and route frequencies (no fitted family).

    If this matches the training run, the trace carries what a prediction needs, and any gap of
    ``simulate`` comes from the distribution families ``fit`` chose.
    """
    recs = [json.loads(x) for x in trace.read_text().splitlines() if x.strip()]
    by: dict[str, list[float]] = {}
    for r in recs:
        if r["outcome"] == "ok":
            by.setdefault(r["step"], []).append(r["end"] - r["start"])
    labels = [r["branch"] for r in recs if r["step"] == "classify" and r["outcome"] == "ok"]
    arms = {"general": ["general"], "code": ["code"], "search": ["retrieve", "search"]}
    out = np.empty(n)
    for i in range(n):
        path = ["classify", *arms[labels[rng.integers(len(labels))]], "aggregate"]
        out[i] = sum(by[s][rng.integers(len(by[s]))] for s in path)
    return {"p50": float(np.percentile(out, 50)), "p95": float(np.percentile(out, 95))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--users", type=int, default=1, help="cases in flight at once (closed population)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    from petriflow.profile.model import Profile
    from petriflow.simulate.engine import simulate
    from petriflow.simulate.load import Load
    from petriflow.spec import load

    wf = load(QA)
    t0 = time.time()
    train = run_batch(questions(args.cases, rng), OUT / "train.jsonl", args.users)
    profile_path = OUT / "qa_router.fitted.profile.yaml"
    fit = subprocess.run([sys.executable, "-m", "petriflow", "fit", str(OUT / "train.jsonl"), "-o", str(profile_path),
                          "--workflow", str(QA)], cwd=ROOT, capture_output=True, text=True, check=False)
    if fit.returncode != 0:
        sys.exit(f"petriflow fit failed: {fit.stderr}")
    print(fit.stdout, end="")
    profile = Profile.load(profile_path, workflow=wf)
    sim = simulate(wf, profile, cases=5000, load=Load.closed(args.users), seed=args.seed)
    test = run_batch(questions(args.cases, rng), OUT / "test.jsonl", args.users)

    def measured(results: list[Any]) -> dict[str, float]:
        lat = np.array([r.seconds for r in results])
        tok = np.array([r.input_tokens + r.output_tokens for r in results])
        return {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)), "tokens": float(tok.mean())}

    def noise(results: list[Any]) -> dict[str, tuple[float, float]]:
        """95% bootstrap intervals of the measured numbers: how far N cases can say anything."""
        boot = np.random.default_rng(args.seed)
        lat = np.array([r.seconds for r in results])
        tok = np.array([r.input_tokens + r.output_tokens for r in results], dtype=float)
        idx = boot.integers(len(lat), size=(2000, len(lat)))
        stats = {"p50": np.percentile(lat[idx], 50, axis=1), "p95": np.percentile(lat[idx], 95, axis=1),
                 "tokens": tok[idx].mean(axis=1)}
        return {k: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) for k, v in stats.items()}

    pred = {"p50": sim.latency.p50, "p95": sim.latency.p95, "tokens": expected_tokens(profile, wf)}
    m_train, m_test = measured(train), measured(test)
    print(f"closed loop on {QA.name}: {args.cases} cases per run, {args.users} user(s); "
          f"load {os.getloadavg()[0]:.1f}; {time.time() - t0:.0f} s")
    ci = noise(test)
    print(f"{'':16} {'train':>9} {'predicted':>10} {'measured':>9} {'95% CI of measured':>19} {'gap':>7} "
          f"{'vs train':>9}")
    rows = {}
    for key, label in (("p50", "latency p50 (s)"), ("p95", "latency p95 (s)"), ("tokens", "tokens per case")):
        gap = (pred[key] - m_test[key]) / m_test[key]
        fit_gap = (pred[key] - m_train[key]) / m_train[key]  # the model's own error, without run-to-run drift
        rows[key] = {"train": m_train[key], "predicted": pred[key], "measured": m_test[key], "gap": gap,
                     "gap_vs_train": fit_gap, "measured_ci95": ci[key]}
        interval = f"{ci[key][0]:.3f}-{ci[key][1]:.3f}"
        print(f"{label:16} {m_train[key]:9.3f} {pred[key]:10.3f} {m_test[key]:9.3f} {interval:>19} {gap:+7.1%} "
              f"{fit_gap:+9.1%}")
    emp = resampled(OUT / "train.jsonl", np.random.default_rng(args.seed))
    print(f"resampling the training trace itself (no fitted family): p50 {emp['p50']:.3f} s "
          f"({(emp['p50'] - m_test['p50']) / m_test['p50']:+.1%}), p95 {emp['p95']:.3f} s "
          f"({(emp['p95'] - m_test['p95']) / m_test['p95']:+.1%})")
    rows["resampled"] = {**emp, "gap": {k: (emp[k] - m_test[k]) / m_test[k] for k in emp},
                         "gap_vs_train": {k: (emp[k] - m_train[k]) / m_train[k] for k in emp}}
    print(f"  vs the training run: p50 {rows['resampled']['gap_vs_train']['p50']:+.1%}, "
          f"p95 {rows['resampled']['gap_vs_train']['p95']:+.1%}")
    import yaml

    families = yaml.safe_load(profile_path.read_text()).get("fit", {})  # what `fit` chose, with KS and p
    routes = {r.output["route"] for r in test}
    print(f"routes taken in the test run: {sorted(routes)}; fitted routes: "
          f"{ {k: round(v, 2) for k, v in profile.routes.get('classify', {}).items()} }")
    (OUT / "summary.json").write_text(json.dumps({"cases": args.cases, "users": args.users, "seed": args.seed, "rows": rows,
                                                       "fit": families}, indent=2))


if __name__ == "__main__":
    main()
