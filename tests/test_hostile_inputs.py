"""The inputs of issue 11, tried as a careless or hostile user would: each is one clear line and exit 2.

Before ``petriflow.limits`` these hung (an alias bomb, a FIFO), read until
memory ran out (``/dev/zero``), printed "internal error" with exit 70 (an
integer beyond 64 bits, 20,000 brackets, a binary file, ``--seed -1``),
computed NaN with exit 0 (``p: .nan``, ``mu: 1000``) or overwrote the
workflow (``fit -o wf.yaml --workflow wf.yaml``). Every case runs the
command in-process (:mod:`cli_in_process`) and checks the exit code, the
single line and the words that say what is wrong.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_in_process import ROOT, petriflow

QA = (ROOT / "models" / "qa_router.yaml").read_text()
PY = 'name: py\nsteps:\n  - {id: a, kind: python, function: "petriflow.execute.builtins:first_answer"}\n'
RECORD = {"run_id": "r", "case": 1, "step": "general", "start": 0.0, "end": 1.0, "attempt": 1, "outcome": "ok",
          "model": None, "input_tokens": 3, "output_tokens": 5, "cost": 0.0, "branch": None}
HUGE = "1" + "0" * 30  # beyond 64 bits


def alias_bomb(top: str = "name: x\nsteps: *i") -> str:
    """Nine aliases of nine aliases of ... nine strings: 9**9 values in about 350 bytes."""
    lines, prev = ['a: &a ["x","x","x","x","x","x","x","x","x"]'], "a"
    for c in "bcdefghi":
        lines.append(f"{c}: &{c} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = c
    return "\n".join([*lines, top]) + "\n"


def refused(*args: str | os.PathLike[str], words: str = "") -> str:
    """Run the command; it must refuse with one line containing ``words``. Returns that line."""
    res = petriflow(*args)
    assert res.refusal, f"exit {res.code}: {res.err[-600:]}"
    assert words in res.refusal, res.refusal
    assert len(res.refusal) < 1200
    return res.refusal


def write(tmp: Path, name: str, text: str | bytes) -> Path:
    p = tmp / name
    p.write_bytes(text) if isinstance(text, bytes) else p.write_text(text)
    return p


# -- 3: the alias bomb ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["check"], ["simulate"], ["lower", "-o", "{tmp}/x.pnml"], ["draw", "-o", "{tmp}/x.dot"],
    ["run", "--input", "hi", "--db", "{tmp}/db.sqlite"], ["sweep", "--vary", "a.timeout=1,2"],
])
def test_an_alias_bomb_is_refused_by_every_command_that_loads_a_workflow(tmp_path: Path, command: list[str]) -> None:
    bomb = write(tmp_path, "bomb.yaml", alias_bomb())
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    refused(args[0], str(bomb), *args[1:], words="more than 500000 values (YAML aliases expanded)")


def test_an_alias_bomb_as_profile_or_beside_fit(tmp_path: Path) -> None:
    wf = write(tmp_path, "wf.yaml", QA)
    refused("simulate", wf, "--profile", write(tmp_path, "p.yaml", alias_bomb("steps: *i")), words="aliases expanded")
    traces = write(tmp_path, "t.jsonl", json.dumps(RECORD) + "\n")
    refused("fit", traces, "-o", tmp_path / "out.yaml", "--workflow", write(tmp_path, "b.yaml", alias_bomb()),
            words="aliases expanded")


# -- 7 and 8: what exited 70, and what passed as NaN ---------------------------------------------------------------

NESTED = "[" * 20_000 + "]" * 20_000


def _cases() -> dict[str, Callable[[Path], tuple[list[str | Path], str]]]:
    qa = QA
    bad_trace = {**RECORD, "input_tokens": -5}
    return {
        "binary profile": lambda t: (["simulate", write(t, "wf.yaml", qa), "--profile",
                                      write(t, "p.yaml", bytes(range(256)) * 4)], "not UTF-8 text"),
        "binary traces": lambda t: (["fit", write(t, "t.jsonl", bytes(range(256)) * 4), "-o", t / "o.yaml"],
                                    "not UTF-8 text"),
        "binary inputs": lambda t: (["run", write(t, "py.yaml", PY), "--inputs", write(t, "i.jsonl", b"\xff\xfe\x00x"),
                                     "--db", t / "db.sqlite"], "not UTF-8 text"),
        "capacity beyond 64 bits": lambda t: (["check", write(t, "wf.yaml", qa.replace("capacity: 4 ", f"capacity: {HUGE} "))],
                                              "does not fit in 64 bits"),
        "profile capacity beyond 64 bits": lambda t: (["simulate", write(t, "wf.yaml", qa), "--profile",
                                                       write(t, "p.yaml", f"resources: {{llm: {{capacity: {HUGE}}}}}\n")],
                                                      "does not fit in 64 bits"),
        "PNML weight beyond 64 bits": lambda t: (["check", write(t, "n.pnml", _pnml(weight=HUGE))], "the weight of 'a0'"),
        "PNML marking beyond 64 bits": lambda t: (["check", write(t, "n.pnml", _pnml(marking=HUGE))], "initial marking"),
        "--final beyond 64 bits": lambda t: (["check", write(t, "n.pnml", _pnml()), "--final", f"q={HUGE}"],
                                             "must be an integer in [0, "),
        "nested YAML workflow": lambda t: (["check", write(t, "wf.yaml", NESTED)], "nest"),
        "nested JSON workflow": lambda t: (["check", write(t, "wf.json", NESTED)], "nests deeper than 64"),
        "nested JSON profile": lambda t: (["simulate", write(t, "wf.yaml", qa), "--profile", write(t, "p.json", NESTED)],
                                          "nests deeper than 64"),
        "nested trace line": lambda t: (["fit", write(t, "t.jsonl", NESTED + "\n"), "-o", t / "o.yaml"], "nests deeper"),
        "nested input line": lambda t: (["run", write(t, "py.yaml", PY), "--inputs", write(t, "i.jsonl", NESTED),
                                         "--db", t / "db.sqlite"], "nests deeper"),
        "NaN route p": lambda t: (["simulate", write(t, "wf.yaml", qa.replace("p: 0.5}", "p: .nan}"))],
                                  "steps.0.route.0.p: nan is not a finite number"),
        "NaN route p in check": lambda t: (["check", write(t, "wf.yaml", qa.replace("p: 0.5}", "p: .nan}"))],
                                           "not a finite number"),
        "infinite mixture weight": lambda t: (["simulate", write(t, "wf.yaml", qa.replace(
            "latency: 0.001", "latency: {dist: mixture, components: [1, 2], weights: [.inf, 1]}"))], "inf is not a finite"),
        "infinite mixture weight in a JSON profile": lambda t: (["simulate", write(t, "wf.yaml", qa), "--profile",
            write(t, "p.json", '{"steps": {"general": {"latency": {"dist": "mixture", "components": [1, 2], '
                               '"weights": [1e999, 1]}}}}')], "inf is not a finite number"),
        "NaN failure rate": lambda t: (["simulate", write(t, "wf.yaml", qa.replace("    timeout: 30\n",
                                                                                    "    timeout: 30\n    failure_rate: .nan\n"))],
                                       "failure_rate: nan is not a finite number"),
        "mu: 1000": lambda t: (["simulate", write(t, "wf.yaml", qa.replace("mu: 0.0, sigma: 0.4", "mu: 1000, sigma: 0.4"))],
                               "the mean of this lognormal distribution is inf"),
        "--seed -1": lambda t: (["simulate", write(t, "wf.yaml", qa), "--seed", "-1"], "'--seed': -1 is not in the range"),
        "--budget nan": lambda t: (["run", write(t, "py.yaml", PY), "--input", "hi", "--budget", "nan",
                                    "--db", t / "db.sqlite"], "must be a finite number"),
        "--slo-p95 nan": lambda t: (["sweep", write(t, "wf.yaml", qa), "--vary", "general.timeout=1,2", "--slo-p95", "nan"],
                                    "--slo-p95: the target must be a finite number"),
        "sweep budget nan": lambda t: (["sweep", write(t, "wf.yaml", qa), "--vary", "general.timeout=1,2", "--budget", "nan"],
                                       "--budget: the target must be a finite number"),
        "a NaN --vary value": lambda t: (["sweep", write(t, "wf.yaml", qa), "--vary", "general.timeout=nan,2"],
                                         "general.timeout must be a finite number > 0"),
        "NaN arrival time": lambda t: (["simulate", write(t, "wf.yaml", qa), "--arrivals", write(t, "a.txt", "0\nnan\n1\n")],
                                       "arrival time 2 must be a finite number"),
        "negative token counts in a trace": lambda t: (["fit", write(t, "t.jsonl", json.dumps(bad_trace) + "\n"),
                                                        "-o", t / "o.yaml"], "`input_tokens` must be >= 0, got -5"),
        "a JSON workflow with a trailing comma": lambda t: (["check", write(t, "wf.json",
            '{"name": "x", "steps": [{"id": "a", "kind": "python"},]}')], "invalid JSON"),
        "fit -o into a missing directory": lambda t: (["fit", write(t, "t.jsonl", json.dumps(RECORD) + "\n"),
                                                       "-o", t / "nowhere" / "p.yaml"], "no directory"),
        "a corrupt response cache": lambda t: (["run", write(t, "py.yaml", PY), "--input", "hi", "--db", t / "db.sqlite",
                                                "--cache", write(t, "cache.sqlite", b"\x13" * 5000)],
                                               "cannot open the response cache"),
        "a store with corrupt pages": lambda t: (["run", write(t, "py.yaml", PY), "--input", "hi", "--db", _corrupt_store(t)],
                                                 "the checkpoint store is corrupt"),
        "--cases 10**7": lambda t: (["simulate", write(t, "wf.yaml", qa), "--cases", "10000000"],
                                    "at most 2000000 fit"),
        "a net too large for dense matrices": lambda t: (["check", write(t, "big.pnml", _ring(12_000))],
                                                         "transition-place pairs"),
    }


CASES = _cases()


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clear_line_and_exit_2(tmp_path: Path, name: str) -> None:
    args, words = CASES[name](tmp_path)
    refused(*args, words=words)


def test_a_plot_of_fixed_latencies_is_drawn(tmp_path: Path) -> None:
    """Fixed latencies make per-case sums differ only in their last bits: numpy refused to cut them into 60 bins."""
    wf = write(tmp_path, "f.yaml", "name: f\nsteps:\n  - {id: a, kind: python, latency: 0.1}\n"
                                   "  - {id: b, kind: python, after: [a], latency: 0.2}\n")
    res = petriflow("simulate", wf, "--cases", "20", "--plot", tmp_path / "p.png")
    assert res.code == 0, res.err
    assert (tmp_path / "p.png").stat().st_size > 1000


def _pnml(*, weight: str = "1", marking: str = "1") -> str:
    return ('<pnml><net id="n" type="http://www.pnml.org/version-2009/grammar/ptnet"><page id="g">'
            f'<place id="p"><initialMarking><text>{marking}</text></initialMarking></place><place id="q"/>'
            f'<transition id="t"/><arc id="a0" source="p" target="t"><inscription><text>{weight}</text>'
            '</inscription></arc><arc id="a1" source="t" target="q"/></page></net></pnml>')


def _ring(n: int) -> str:
    """A 1.6 MB PNML ring of ``n`` places and transitions: dense matrices of 2 x n x n int64 (2.1 GiB at 12,000)."""
    nodes = "".join(f'<place id="p{i}"/><transition id="t{i}"/>' for i in range(n))
    arcs = "".join(f'<arc id="a{i}" source="p{i}" target="t{i}"/><arc id="b{i}" source="t{i}" target="p{(i + 1) % n}"/>'
                   for i in range(n))
    return f'<pnml><net id="ring" type="ptnet"><page id="g">{nodes}{arcs}</page></net></pnml>'


def _corrupt_store(tmp: Path) -> Path:
    """A checkpoint store that petriflow wrote, with bytes overwritten inside its b-tree pages."""
    from petriflow.execute.store import SqliteStore

    path = tmp / "store.sqlite"
    store = SqliteStore(path)
    store.create_run("r", workflow="wf.yaml")
    store.add_cases("r", [f"question {i} " + "padding " * 20 for i in range(300)])
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = db.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    assert len(data) > 8 * page
    for start in range(3 * page, len(data), 2 * page):
        data[start + 20:start + 300] = b"\x13" * 280
    path.write_bytes(bytes(data))
    return path


# -- 9: paths that are not files, outputs that are inputs ----------------------------------------------------------

@pytest.mark.parametrize("special", ["fifo", "zero"])
@pytest.mark.parametrize("role", ["workflow", "profile", "traces", "inputs", "arrivals", "pnml"])
def test_a_path_that_is_not_a_regular_file_is_refused_before_reading(tmp_path: Path, special: str, role: str) -> None:
    """A FIFO blocked every loader forever; a symlink to /dev/zero read until memory ran out."""
    name = {"workflow": "w.yaml", "profile": "p.yaml", "traces": "t.jsonl", "inputs": "i.jsonl", "arrivals": "a.txt",
            "pnml": "n.pnml"}[role]
    target = tmp_path / name
    if special == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to("/dev/zero")
    wf, py = write(tmp_path, "wf.yaml", QA), write(tmp_path, "py.yaml", PY)
    args: list[str | Path] = {
        "workflow": ["check", target], "pnml": ["check", target],
        "profile": ["simulate", wf, "--profile", target], "traces": ["fit", target, "-o", tmp_path / "o.yaml"],
        "inputs": ["run", py, "--inputs", target, "--db", tmp_path / "db.sqlite"],
        "arrivals": ["simulate", wf, "--arrivals", target],
    }[role]
    refused(*args, words="named pipe" if special == "fifo" else "a device")


@pytest.mark.parametrize("command", [
    ["fit", "{traces}", "-o", "{wf}", "--workflow", "{wf}"],
    ["fit", "{traces}", "-o", "{traces}"],
    ["run", "{wf}", "--input", "hi", "--metrics", "{wf}", "--db", "{db}"],
    ["run", "{wf}", "--input", "hi", "--trace", "{wf}", "--db", "{db}"],
])
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path: Path, command: list[str]) -> None:
    wf, traces = write(tmp_path, "py.yaml", PY), write(tmp_path, "t.jsonl", json.dumps({**RECORD, "step": "a"}) + "\n")
    before = wf.read_text(), traces.read_text()
    paths = {"{wf}": str(wf), "{traces}": str(traces), "{db}": str(tmp_path / "db.sqlite")}
    refused(*[paths.get(a, a) for a in command], words="is also an input")
    assert (wf.read_text(), traces.read_text()) == before


# -- 10: names in messages and metrics -----------------------------------------------------------------------------

def test_control_characters_in_a_name_are_escaped_in_the_message(tmp_path: Path) -> None:
    """A carriage return and "erase line" would hide the start of the message on a terminal
    (click strips colour codes from a pipe, not ``\\r``)."""
    wf = write(tmp_path, "wf.yaml", QA.replace("id: retrieve", 'id: "re\\r\\e[2Ktrieve"'))
    line = refused("check", wf, words="does not match")
    assert "\r" not in line and "step 're\\r\\x1b[2Ktrieve'" in line


def test_a_10000_character_id_gives_a_short_line(tmp_path: Path) -> None:
    wf = write(tmp_path, "wf.yaml", f"name: x\nsteps:\n  - id: {'a' * 10_000}\n    kind: python\n")
    line = refused("check", wf, words="is too long")
    assert len(line) < 500 and "more]" in line


def test_a_workflow_name_cannot_forge_a_metrics_line(tmp_path: Path) -> None:
    wf = write(tmp_path, "wf.yaml", PY.replace("name: py", 'name: "py\\"} 1\\nforged_total 99 #"'))
    line = refused("run", wf, "--input", "hi", "--metrics", tmp_path / "m.prom", "--db", tmp_path / "db.sqlite",
                   words="name:")
    assert "\n" not in line and not (tmp_path / "m.prom").exists()


def test_a_pnml_label_is_printable_and_a_bad_id_is_refused(tmp_path: Path) -> None:
    from petriflow.net.pnml import read_pnml

    net = read_pnml(_pnml().replace('<place id="q"/>', '<place id="q"><name><text>a&#10;b\u202e</text></name></place>'))
    assert net.place_labels[1] == "a\\nb\\u202e"
    refused("check", write(tmp_path, "n.pnml", _pnml().replace('id="q"', 'id="q&#10;x"').replace('target="q"',
                                                                                                  'target="q&#10;x"')),
            words="is not a name")
