"""Fuzzing the loaders through the CLI: whatever the file, petriflow answers with an exit code, not a bug.

Three kinds of input, each written to a file and given to the commands that
read it (run in-process, :mod:`cli_in_process`):

* structured: workflow documents close to valid ones (a few steps with
  dependencies, routes, loops, resources, distributions) as YAML or JSON,
  some of their values replaced by hostile ones (NaN, infinity, integers
  beyond 64 bits, control characters, wrong types);
* random PNML nets, with weights, markings and ids drawn from what tools
  write and what they should not;
* bytes: valid files of every kind with bytes flipped, inserted or cut, and
  plain random bytes.

Each call must exit 0-3 (never 70), print no "internal error", allocate less
than :data:`MEMORY` bytes (``tracemalloc``) and finish within hypothesis'
deadline. The example counts keep the whole file at well under a minute.
"""

from __future__ import annotations

import json
import os
import tempfile
import tracemalloc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import yaml
from cli_in_process import ROOT, Outcome, petriflow
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MEMORY = 300 * 2**20
EXAMPLES = int(os.environ.get("PETRIFLOW_FUZZ_EXAMPLES", "25"))
"""Per test; set ``PETRIFLOW_FUZZ_EXAMPLES=2000`` (and nothing else changes) for a long local search."""
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=30), derandomize=EXAMPLES <= 25,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

HOSTILE: st.SearchStrategy[Any] = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**63, 10**30, 1e308, -0.0, "", "x" * 300, "a\x1b[2Kb", "\r\n", "\u202e",
                     None, True, [], {}, [[[[]]]], {"dist": "mixture"}]),
    st.text(max_size=12),
)
IDS = st.sampled_from(["a", "b", "c", "d", "e", "begin", "x-1"])


def run(*args: str | Path) -> Outcome:
    """One command within the memory bound; its exit code is one petriflow promises."""
    tracemalloc.start()
    try:
        res = petriflow(*args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res.code in (0, 1, 2, 3), f"exit {res.code}: {res.err[-800:]}"
    assert "internal error" not in res.err and "Traceback" not in res.err, res.err[-800:]
    assert peak < MEMORY, f"{peak / 2**20:.0f} MB for {args}"
    if os.environ.get("PETRIFLOW_FUZZ_LOG"):
        with open(os.environ["PETRIFLOW_FUZZ_LOG"], "a") as log:
            log.write(f"{args[0]} {res.code} {res.err.strip()[:150]!r}\n")
    return res


# -- structured workflows ------------------------------------------------------------------------------------------

def dists() -> st.SearchStrategy[Any]:
    positive = st.floats(min_value=0.001, max_value=5)
    return st.one_of(
        st.floats(min_value=0, max_value=3),
        st.builds(lambda m: {"dist": "exponential", "mean": m}, positive),
        st.builds(lambda mu, s: {"dist": "lognormal", "mu": mu, "sigma": s}, st.floats(-3, 2), positive),
        st.builds(lambda k, s: {"dist": "gamma", "shape": k, "scale": s}, positive, positive),
        st.builds(lambda xs: {"dist": "empirical", "samples": xs}, st.lists(st.floats(0, 3), min_size=1, max_size=4)),
        st.builds(lambda w: {"dist": "mixture", "components": [0.1, 1.0], "weights": w},
                  st.lists(st.floats(0, 2), min_size=2, max_size=2)),
    )


def rarely(draw: st.DrawFn, usual: Any, strategy: st.SearchStrategy[Any]) -> Any:
    """``usual`` four times in five, else a draw from ``strategy``: mostly valid, now and then not."""
    return draw(strategy) if draw(st.sampled_from([False, False, False, False, True])) else usual


@st.composite
def workflows(draw: st.DrawFn) -> dict[str, Any]:
    """A workflow document of 1-5 steps that is often valid and often nearly so."""
    n = draw(st.integers(1, 5))
    ids = [rarely(draw, f"s{i}", IDS) for i in range(n)]
    steps: list[dict[str, Any]] = []
    routed: set[str] = set()
    for i, sid in enumerate(ids):
        step: dict[str, Any] = {"id": sid, "kind": rarely(draw, "python", st.sampled_from(["chat", "tool", "classify"]))}
        if i and sid not in routed and draw(st.booleans()):
            step[rarely(draw, "after", st.just("after_any"))] = draw(st.lists(st.sampled_from(ids[:i]), min_size=1,
                                                                            max_size=2, unique=True))
        if draw(st.booleans()):
            step["latency"] = draw(dists())
        if i + 2 < n and draw(st.integers(0, 2)) == 0:
            p = draw(st.floats(0, 1))
            step["route"] = [{"to": ids[i + 1], "p": p}, {"to": ids[i + 2], "p": rarely(draw, 1 - p, st.floats(0, 1))}]
            routed |= {ids[i + 1], ids[i + 2]}
        elif i and draw(st.integers(0, 4)) == 0:
            step["loop"] = {"to": draw(st.sampled_from(ids[:i])), "max": draw(st.integers(1, 3)), "p": 0.5}
        if draw(st.integers(0, 3)) == 0:
            step["uses"] = ["llm"]
            step["retry"] = {"max_attempts": draw(st.integers(1, 3))}
            step["failure_rate"] = draw(st.floats(0, 0.5))
        steps.append(step)
    doc: dict[str, Any] = {"name": rarely(draw, "w", st.sampled_from(["fuzz flow", 'q"x', "a\nb"])), "steps": steps}
    if any("uses" in s for s in steps) or draw(st.booleans()):
        doc["resources"] = {"llm": {"capacity": draw(st.integers(1, 3))}}
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):  # a few values replaced by hostile ones
        _replace(doc, draw(st.lists(st.integers(0, 50), min_size=1, max_size=4)), draw(HOSTILE))
    return doc


def _replace(doc: Any, choices: Sequence[int], value: Any) -> None:
    """Walk into ``doc`` by ``choices`` (each picks a child, modulo their number) and replace what is found."""
    node, key = doc, None
    for c in choices:
        children = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
        if not children:
            break
        parent, key = node, children[c % len(children)]
        node = parent[key]
    if key is not None:
        parent[key] = value


@contextmanager
def _written(doc: Any, as_json: bool, stem: str) -> Iterator[Path]:
    """``doc`` in a fresh temporary file, written as JSON or as YAML (the test draws which reader parses it)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{stem}.{'json' if as_json else 'yaml'}"
        path.write_text(json.dumps(doc) if as_json else yaml.safe_dump(doc, allow_unicode=True))
        yield path


@FUZZ
@given(doc=workflows(), as_json=st.booleans())
def test_structured_workflows_get_a_verdict_or_a_clear_refusal(doc: dict[str, Any], as_json: bool) -> None:
    with _written(doc, as_json, "wf") as path:
        run("check", path, "--max-states", "5000")
        run("simulate", path, "--cases", "20")


QA_STEPS = ("classify", "general", "code", "retrieve", "search", "aggregate")


@st.composite
def profiles(draw: st.DrawFn) -> dict[str, Any]:
    """A profile of the QA router: latencies, failure rates, branch probabilities, capacity; some values hostile."""
    steps = {sid: {"latency": draw(dists()), "failure_rate": draw(st.floats(0, 0.3))}
             for sid in QA_STEPS if draw(st.booleans())}
    weights = draw(st.lists(st.floats(0.01, 1), min_size=3, max_size=3))
    route = {label: w / sum(weights) for label, w in zip(("general", "code", "search"), weights)}
    doc: dict[str, Any] = {"steps": steps, "routes": {"classify": route},
                           "resources": {"llm": {"capacity": draw(st.integers(1, 5))}}}
    for _ in range(draw(st.sampled_from([0, 1, 2]))):
        _replace(doc, draw(st.lists(st.integers(0, 50), min_size=1, max_size=4)), draw(HOSTILE))
    return doc


@FUZZ
@given(doc=profiles(), as_json=st.booleans())
def test_structured_profiles_get_a_clear_refusal_or_a_result(doc: dict[str, Any], as_json: bool) -> None:
    with _written(doc, as_json, "p") as path:
        run("simulate", ROOT / "models" / "qa_router.yaml", "--profile", path, "--cases", "20")


# -- random PNML ---------------------------------------------------------------------------------------------------

COUNTS = st.sampled_from(["", " 3 ", "Default,2", "-1", "1.0", "1.5", "1e400", "nan", "x", "1" + "0" * 30,
                          "9223372036854775808"])


@st.composite
def pnml(draw: st.DrawFn) -> str:
    def count(usual: str) -> str:
        return str(rarely(draw, usual, COUNTS))

    bad_ids = st.one_of(st.sampled_from(["", "a b", "p0"]), st.text(max_size=6))
    places = [rarely(draw, f"p{i}", bad_ids) for i in range(draw(st.integers(1, 4)))]
    transitions = [rarely(draw, f"t{i}", bad_ids) for i in range(draw(st.integers(0, 3)))]
    nodes = "".join(f"<place id={quoteattr(p)}><initialMarking><text>{count(str(draw(st.integers(0, 2))))}"
                    "</text></initialMarking></place>" for p in places)
    nodes += "".join(f"<transition id={quoteattr(t)}/>" for t in transitions)
    ends = [*places, *transitions]
    arcs = ""
    for i in range(draw(st.integers(0, 6))):
        src, dst = (places, transitions) if draw(st.booleans()) or not transitions else (transitions, places)
        arcs += (f"<arc id={quoteattr(f'a{i}')} source={quoteattr(rarely(draw, draw(st.sampled_from(src)), st.sampled_from([*ends, 'ghost'])))} "
                 f"target={quoteattr(draw(st.sampled_from(dst or ends)))}><inscription><text>{count('1')}</text>"
                 "</inscription></arc>")
    final = ""
    if draw(st.booleans()):
        final = (f'<toolspecific tool="petriflow" version="1"><final place={quoteattr(places[0])} '
                 f"tokens={quoteattr(count('1'))}/></toolspecific>")
    kind = rarely(draw, "http://www.pnml.org/version-2009/grammar/ptnet", st.sampled_from(["ptnet", "symmetric", ""]))
    return f'<pnml><net id="n" type="{kind}">{final}<page id="g">{nodes}{arcs}</page></net></pnml>'


@FUZZ
@given(doc=pnml(), final=st.sampled_from(["", "", "p0=1", "p1", "p0=" + "9" * 25, "p0=-1", "nowhere=1"]))
def test_random_pnml_gets_a_verdict_or_a_clear_refusal(doc: str, final: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "n.pnml"
        path.write_text(doc)
        run("check", path, "--max-states", "5000", *(["--final", final] if final else []))


# -- bytes ---------------------------------------------------------------------------------------------------------

def _seeds() -> dict[str, bytes]:
    from petriflow.net.lower import lower
    from petriflow.net.pnml import to_pnml_string
    from petriflow.spec import load

    record = {"run_id": "r", "case": 1, "step": "general", "start": 0.0, "end": 1.0, "attempt": 1, "outcome": "ok",
              "model": None, "input_tokens": 3, "output_tokens": 5, "cost": 0.0, "branch": None}
    models = ROOT / "models"
    return {
        "workflow.yaml": (models / "qa_router.yaml").read_bytes(),
        "workflow.json": json.dumps(yaml.safe_load((models / "qa_router.yaml").read_text())).encode(),
        "profile.yaml": (models / "qa_router.profile.yaml").read_bytes(),
        "traces.jsonl": b"".join(json.dumps({**record, "case": i}).encode() + b"\n" for i in range(3)),
        "inputs.jsonl": b'"hello"\n{"question": "why"}\n',
        "arrivals.txt": b"0\n0.5\n1.25\n",
        "net.pnml": to_pnml_string(lower(load(models / "qa_router.yaml"))).encode(),
    }


SEEDS = _seeds()
PY_WORKFLOW = 'name: py\nsteps:\n  - {id: a, kind: python, function: "petriflow.execute.builtins:first_answer"}\n'


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(sorted(SEEDS)))
    if draw(st.integers(0, 5)) == 0:
        return kind, draw(st.binary(max_size=3000))
    data = bytearray(SEEDS[kind])
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        op = draw(st.sampled_from(["flip", "insert", "cut", "repeat"]))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.sampled_from([b"\x00", b"\xff", b"[", b"{", b"&a ", b"*a", b",", b"\n  ", b"nan",
                                                b".inf", b"1" * 40, b"\x1b[2J", b"<!ENTITY x 'y'>"]))
        elif op == "cut":
            del data[at:at + draw(st.integers(1, 40))]
        else:
            data[at:at] = data[at:at + 200] * draw(st.integers(1, 20))
    return kind, bytes(data)


@FUZZ
@given(case=mutated())
def test_mutated_and_random_bytes_get_an_exit_code_not_a_bug(case: tuple[str, bytes]) -> None:
    kind, data = case
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        path = t / kind
        path.write_bytes(data)
        qa = ROOT / "models" / "qa_router.yaml"
        py = t / "py.yaml"
        py.write_text(PY_WORKFLOW)
        commands: dict[str, list[str | Path]] = {
            "workflow.yaml": ["check", path, "--max-states", "5000"],
            "workflow.json": ["simulate", path, "--cases", "20"],
            "profile.yaml": ["simulate", qa, "--profile", path, "--cases", "20"],
            "traces.jsonl": ["fit", path, "-o", t / "fitted.yaml"],
            "inputs.jsonl": ["run", py, "--inputs", path, "--db", t / "db.sqlite"],
            "arrivals.txt": ["simulate", qa, "--arrivals", path, "--cases", "20"],
            "net.pnml": ["check", path, "--max-states", "5000"],
        }
        run(*commands[kind])
