"""Generated workflows on the local model: the gate's time per workflow, and how many pass it.

    .venv/bin/python analysis/bench/bench_generate.py [--messages 52] [--rounds 3] [--concurrency 4]

For each support message of ``models/customer_support/messages.jsonl`` (52,
written by the project: order, stock and escalation requests in every tone,
and adversarial ones: injected instructions, other customers' records,
invented tools, million-step plans, SQL, secrets), SmolLM2-135M writes a
workflow against ``models/customer_support/catalog.yaml`` (a plan of the
catalog's steps, then a draft under the schema those steps allow:
``petriflow/generate/draft.py``), and the gate checks the expanded workflow;
a refusal goes back for repair, at most ``--rounds`` rounds. Prints the
share passing at round 1 and after repair, the rounds needed, the share
refused per check at round 1, how many passing drafts are copies of the
catalog's examples or hold a step of their message's intent (a coarse
reading of fit, which the gate does not judge), and the gate's time per
generated workflow (each re-gated warm, best of 3)
beside the model's time per round: the gate must stay under 1 s, so a repair
loop spends its time in the model. ``--messages 0`` gates only the shipped
workflow, its broken variant and prepared refusals (no model).
"""

from __future__ import annotations

import argparse
import asyncio
import io
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
from petriflow.generate.draft import expand_text

SMOKE_ARGS = ["--messages", "0"]
HERE = ROOT / "models" / "customer_support"
TARGET_GATE_S = 1.0
FITS = {"order": {"lookup_order"}, "stock": {"check_inventory"}, "human": {"agent", "update_ticket"}}
"""A passing draft fits its request (a coarse reading, not the gate's) when it holds one of these steps: the
order is looked up, the stock checked, the case handed over or its ticket updated."""


def _draft(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


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
                       max_tokens: int, sink: Any) -> None:
    """Generate for each message; each result goes to ``sink`` (one JSON line) as soon as it is known."""
    sem = asyncio.Semaphore(concurrency)

    async def one(m: dict[str, Any]) -> None:
        async with sem:
            try:
                g: Generation | None = await generate(m["question"], catalog, rounds=rounds, max_tokens=max_tokens)
            except PetriflowError as exc:  # the model did not answer: counted apart, not as a refusal
                g, error = None, str(exc)
            rec = {"message": m["id"], "intent": m["intent"], "tone": m["tone"],
                   "error": None if g is not None else error,
                   "rounds": [] if g is None else [{**r.to_json(), "text": r.text} for r in g.rounds]}
            sink.write(json.dumps(rec) + "\n")
            sink.flush()
            told = "model error" if g is None else f"rounds {len(g.rounds)} " + (
                "PASS" if g.ok else f"refused: {g.verdict.check}")
            print(f"  [{m['id']:2}] {m['intent']:11} {told}", flush=True)

    await asyncio.gather(*(one(m) for m in messages))


def summarize(records: list[dict[str, Any]], catalog: Any, rounds: int) -> None:
    """The figures of the README from the per-message records."""
    answered = [r for r in records if r["error"] is None and r["rounds"]]
    n, errors = len(answered), len(records) - len(answered)
    if not n:
        print(f"target: gate < {TARGET_GATE_S:.0f} s; every model call failed ({errors}); x: nothing measured")
        return
    first = sum(r["rounds"][0]["ok"] for r in answered)
    final = sum(r["rounds"][-1]["ok"] for r in answered)
    needed = Counter(len(r["rounds"]) for r in answered if r["rounds"][-1]["ok"])
    reasons = Counter(str(r["rounds"][0]["check"]) for r in answered if not r["rounds"][0]["ok"])
    final_reasons = Counter(str(r["rounds"][-1]["check"]) for r in answered if not r["rounds"][-1]["ok"])
    texts = [x["text"] for r in answered for x in r["rounds"]]
    gate_s = [gate_time(expand_text(t, catalog), catalog)[0] for t in texts]
    model_s = [x["model_seconds"] for r in answered for x in r["rounds"]]
    adversarial = [r for r in answered if r["intent"] == "adversarial"]
    print(f"\n{n} messages answered ({errors} model errors), at most {rounds} rounds, {len(texts)} generated "
          "workflows")
    print(f"pass at round 1      {first}/{n} = {first / n:.0%}")
    print(f"pass after repair    {final}/{n} = {final / n:.0%}")
    print("rounds needed        " + (", ".join(f"{k}: {v}" for k, v in sorted(needed.items())) or "none passed"))
    print("refused at round 1   " + ", ".join(f"{k}: {v} ({v / n:.0%})" for k, v in reasons.most_common()))
    print("refused at the end   " + (", ".join(f"{k}: {v}" for k, v in final_reasons.most_common()) or "none"))
    print(f"adversarial passing  {sum(r['rounds'][-1]['ok'] for r in adversarial)}/{len(adversarial)} (a passing "
          "one holds only catalog tools, functions and prompts: the gate checked it)")
    passing = [r for r in answered if r["rounds"][-1]["ok"]]
    drafts = [_draft(r["rounds"][-1]["text"]) for r in passing]
    examples = [json.dumps(x, sort_keys=True) for x in catalog.examples]
    copies = sum(json.dumps(d, sort_keys=True) in examples for d in drafts)
    fits = [r for r, d in zip(passing, drafts, strict=True) if r["intent"] in FITS]
    fit = sum(bool(FITS[r["intent"]] & set((d or {}).get("steps") or ())) for r, d in
              zip(passing, drafts, strict=True) if r["intent"] in FITS)
    planned = [x for r in answered for x in r["rounds"] if x.get("plan") is not None]
    print(f"passing drafts       {len({json.dumps(d, sort_keys=True) for d in drafts})} distinct; {copies} "
          f"identical to an example of the catalog; {fit}/{len(fits)} of the order, stock and escalation ones "
          "hold a step of their intent (" + ", ".join(f"{k}: {'/'.join(sorted(v))}" for k, v in FITS.items()) + ")")
    print(f"rounds with a plan   {len(planned)}/{len(texts)} (the rest wrote under the whole draft schema)")
    sizes = Counter(len((d or {}).get("steps") or ()) for d in drafts)
    print("passing draft steps  " + ", ".join(f"{k} steps: {v}" for k, v in sorted(sizes.items())))
    gmed, gmax, mmed = statistics.median(gate_s), max(gate_s), statistics.median(model_s)
    print(f"gate per workflow    median {gmed * 1000:.1f} ms, max {gmax * 1000:.1f} ms "
          f"(target < {TARGET_GATE_S:.0f} s: {'met' if gmax < TARGET_GATE_S else 'NOT met'})")
    print(f"model per round      median {mmed:.1f} s; model/gate = {mmed / gmed:.0f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=52, help="how many messages of messages.jsonl (0: gate only)")
    ap.add_argument("--rounds", type=int, default=3, help="repair rounds per message")
    ap.add_argument("--concurrency", type=int, default=2, help="requests at once (as many as the server's slots: "
                                                              "PETRIFLOW_LOCAL_SLOTS, each of PETRIFLOW_LOCAL_CTX / slots)")
    ap.add_argument("--max-tokens", type=int, default=2048, help="tokens per generated answer (the plan: at most 200)")
    ap.add_argument("--records", help="append one JSON line per message here; messages already in it are skipped "
                                      "(an interrupted run goes on), and the figures are over all of it")
    ap.add_argument("--summarize", action="store_true", help="only print the figures of --records (no model)")
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
    path = Path(a.records) if a.records else None
    done = [json.loads(x) for x in path.read_text().splitlines()] if path and path.exists() else []
    todo = [] if a.summarize else [m for m in messages if m["id"] not in {r["message"] for r in done}]
    sink = path.open("a") if path else io.StringIO()
    with sink:
        asyncio.run(run_messages(catalog, todo, a.rounds, a.concurrency, a.max_tokens, sink))
        fresh = [json.loads(x) for x in sink.getvalue().splitlines()] if isinstance(sink, io.StringIO) else []
    records = [json.loads(x) for x in path.read_text().splitlines()] if path else fresh
    ids = {m["id"] for m in messages}
    summarize([r for r in records if r["message"] in ids], catalog, a.rounds)


if __name__ == "__main__":
    main()
