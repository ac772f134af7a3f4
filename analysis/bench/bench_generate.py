"""Generated workflows on the local model: the gate's time per workflow, and how many pass it.

    .venv/bin/python analysis/bench/bench_generate.py [--messages 52] [--rounds 3] [--concurrency 4]

For each support message of ``models/customer_support/messages.jsonl`` (52,
written by the project: order, stock and escalation requests in every tone,
and adversarial ones: injected instructions, other customers' records,
invented tools, million-step plans, SQL, secrets), SmolLM2-135M writes a
workflow against ``models/customer_support/catalog.yaml`` under the
catalog's strict JSON Schema, and the gate checks it; a refusal goes back
for repair, at most ``--rounds`` rounds. Prints the share passing at round 1
and after repair, the rounds needed, the share refused per check at round 1,
and the gate's time per generated workflow (each re-gated warm, best of 3)
beside the model's time per round: the gate must stay under 1 s, so a repair
loop spends its time in the model. ``--messages 0`` gates only the shipped
workflow, its broken variant and prepared refusals (no model).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import yaml

from petriflow.errors import PetriflowError
from petriflow.generate import Generation, gate, generate, load_catalog

SMOKE_ARGS = ["--messages", "0"]
HERE = ROOT / "models" / "customer_support"
TARGET_GATE_S = 1.0


def gate_time(doc: Any, catalog: Any, repeat: int = 3) -> tuple[float, Any]:
    best, verdict = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        verdict = gate(doc, catalog)
        best = min(best, time.perf_counter() - t0)
    return best, verdict


def fixed_documents() -> dict[str, Any]:
    """The shipped workflow, its broken variant, and a few refusals: what the gate sees without a model."""
    shipped = yaml.safe_load((HERE / "customer_support.yaml").read_text())
    docs = {"shipped": shipped, "broken": yaml.safe_load((HERE / "customer_support_broken.yaml").read_text())}
    docs["unknown tool"] = {"name": "x", "steps": [{"id": "a", "kind": "tool", "tool": "delete_all"}]}
    docs["too many passes"] = {"name": "x", "steps": [
        {"id": "a", "kind": "human"},
        {"id": "b", "kind": "python", "function": "support_tools:heard", "after": ["a"],
         "loop": {"to": "a", "max": 10000, "when": "again"}}]}
    return docs


async def run_messages(catalog: Any, messages: list[dict[str, Any]], rounds: int, concurrency: int,
                       max_tokens: int) -> list[Generation | None]:
    sem = asyncio.Semaphore(concurrency)

    async def one(m: dict[str, Any]) -> Generation | None:
        async with sem:
            try:
                g = await generate(m["question"], catalog, rounds=rounds, max_tokens=max_tokens)
            except PetriflowError as exc:  # the model did not answer: counted apart, not as a refusal
                print(f"  [{m['id']:2}] {m['intent']:11} model error: {exc}", flush=True)
                return None
            v = g.verdict
            print(f"  [{m['id']:2}] {m['intent']:11} rounds {len(g.rounds)} "
                  f"{'PASS' if g.ok else 'refused: ' + str(v.check)}", flush=True)
            return g

    return list(await asyncio.gather(*(one(m) for m in messages)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=52, help="how many messages of messages.jsonl (0: gate only)")
    ap.add_argument("--rounds", type=int, default=3, help="repair rounds per message")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=400, help="tokens per generated answer")
    ap.add_argument("--json", dest="json_out", help="also write the per-round records here")
    a = ap.parse_args()
    catalog = load_catalog(HERE / "catalog.yaml")
    gate(fixed_documents()["shipped"], catalog)  # imports and first-call caches out of the timing
    print("the gate on fixed documents (best of 3, warm):")
    for name, doc in fixed_documents().items():
        s, v = gate_time(doc, catalog)
        print(f"  {name:16} {s * 1000:8.1f} ms  {'pass' if v.ok else 'refused by ' + str(v.check)}")
    messages = [json.loads(line) for line in (HERE / "messages.jsonl").read_text().splitlines()][:a.messages]
    if not messages:
        print(f"target: gate < {TARGET_GATE_S:.0f} s per workflow; no messages, no model (x: see the full run)")
        return
    t0 = time.perf_counter()
    answered = asyncio.run(run_messages(catalog, messages, a.rounds, a.concurrency, a.max_tokens))
    wall = time.perf_counter() - t0
    errors = sum(g is None for g in answered)
    pairs = [(g, m) for g, m in zip(answered, messages, strict=True) if g is not None]
    gens, messages = [g for g, _ in pairs], [m for _, m in pairs]
    n = len(gens)
    if not n:
        print(f"target: gate < {TARGET_GATE_S:.0f} s; every model call failed ({errors}); x: nothing measured")
        return
    first = sum(g.rounds[0].verdict.ok for g in gens)
    final = sum(g.ok for g in gens)
    needed = Counter(len(g.rounds) for g in gens if g.ok)
    reasons = Counter(str(g.rounds[0].verdict.check) for g in gens if not g.rounds[0].verdict.ok)
    final_reasons = Counter(str(g.verdict.check) for g in gens if not g.ok)
    gate_s = [gate_time(r.text, catalog)[0] for g in gens for r in g.rounds]
    model_s = [r.model_seconds for g in gens for r in g.rounds]
    adversarial = [g for g, m in zip(gens, messages, strict=True) if m["intent"] == "adversarial"]
    print(f"\n{n} messages answered ({errors} model errors), at most {a.rounds} rounds, {len(gate_s)} generated "
          f"workflows, {wall:.0f} s wall")
    print(f"pass at round 1      {first}/{n} = {first / n:.0%}")
    print(f"pass after repair    {final}/{n} = {final / n:.0%}")
    print("rounds needed        " + ", ".join(f"{k}: {v}" for k, v in sorted(needed.items())))
    print("refused at round 1   " + ", ".join(f"{k}: {v} ({v / n:.0%})" for k, v in reasons.most_common()))
    print("refused at the end   " + (", ".join(f"{k}: {v}" for k, v in final_reasons.most_common()) or "none"))
    print(f"adversarial passing  {sum(g.ok for g in adversarial)}/{len(adversarial)} (every passing one holds only "
          "catalog tools: the gate checked it)")
    gmed, gmax, mmed = statistics.median(gate_s), max(gate_s), statistics.median(model_s)
    print(f"gate per workflow    median {gmed * 1000:.1f} ms, max {gmax * 1000:.1f} ms "
          f"(target < {TARGET_GATE_S:.0f} s: {'met' if gmax < TARGET_GATE_S else 'NOT met'})")
    print(f"model per round      median {mmed:.1f} s; model/gate = {mmed / gmed:.0f}x")
    if a.json_out:
        Path(a.json_out).write_text("\n".join(json.dumps({"message": m["id"], **r.to_json()})
                                              for g, m in zip(gens, messages, strict=True) for r in g.rounds) + "\n")


if __name__ == "__main__":
    main()
