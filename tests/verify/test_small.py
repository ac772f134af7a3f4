"""Small nets without compiled code: the plain engines give what the compiled ones give, and load nothing.

The plain-Python BFS and graph algorithms (``verify._small``) and the
plain run of the reduced-search kernel are checked against the compiled
engine and scipy on random nets; a fresh process checking the QA router
imports neither numba nor scipy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petriflow.net.petrinet import PetriNet
from petriflow.verify import _jit, _small
from petriflow.verify import _stubborn as K
from petriflow.verify.reduced import find_deadlock, find_infinite_run
from petriflow.verify.statespace import explore

from ._nets import nets, random_nets

ROOT = Path(__file__).resolve().parents[2]
small_nets = random_nets(places=(1, 5), transitions=(0, 5), tokens=2)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(net=small_nets, budget=st.one_of(st.none(), st.integers(1, 60)))
def test_plain_and_compiled_engines_find_the_same_space(net: PetriNet, budget: int | None) -> None:
    limit = budget or 2_000
    plain = explore(net, engine="plain", store_edges=True, max_states=limit)
    compiled = explore(net, engine="compiled", store_edges=True, max_states=limit)
    assert plain.plain and not compiled.plain
    assert (plain.complete, plain.stop_reason, plain.n_states, plain.n_expanded) == (
        compiled.complete, compiled.stop_reason, compiled.n_states, compiled.n_expanded)
    assert np.array_equal(plain.markings(), compiled.markings())
    assert np.array_equal(plain.dead_states(), compiled.dead_states())
    assert np.array_equal(plain.place_bounds(), compiled.place_bounds())
    assert plain.max_tokens_per_marking() == compiled.max_tokens_per_marking()
    if plain.complete:
        assert plain.n_edges == compiled.n_edges
        assert sorted(zip(*(a.tolist() for a in plain.edges()))) == sorted(zip(*(a.tolist() for a in compiled.edges())))
    for i in range(plain.n_states):
        assert plain.path_to(i) == compiled.path_to(i)
        assert plain.index_of(plain.marking(i)) == i == compiled.index_of(plain.marking(i))


def test_a_net_too_big_for_the_plain_engine_is_handed_over() -> None:
    net = nets.fork_join(8)  # 65,538 states: past the plain engine's cap
    assert nets.expected_states("fork_join", 8) > _small.cap(net)
    assert _small.bfs(net, limit=10**6, store_edges=False, give_up=_small.cap(net)) is None
    space = explore(net, engine="auto")
    assert space.complete and space.n_states == nets.expected_states("fork_join", 8) and not space.plain


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(net=small_nets)
def test_plain_graph_questions_agree_with_scipy(net: PetriNet) -> None:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components

    space = explore(net, store_edges=True, max_states=2_000)
    n = space.n_states
    src, _, dst = space.edges()
    graph = csr_matrix((np.ones(src.size, dtype=np.int8), (src, dst)), shape=(n, n))
    labels = _small.strong_components(n, src, dst)
    _, ref = connected_components(graph, directed=True, connection="strong")
    pairs = set(zip(labels.tolist(), ref.tolist()))
    assert len(pairs) == len(set(labels.tolist())) == len(set(ref.tolist()))  # the same partition
    targets = space.dead_states()[:1] if space.dead_states().size else np.array([n - 1])
    reach = _small.can_reach(n, src, dst, targets)
    expected = np.zeros(n, dtype=bool)
    expected[breadth_first_order(graph.T.tocsr(), int(targets[0]), directed=True, return_predecessors=False)] = True
    assert np.array_equal(reach, expected)


def countdown(n: int) -> PetriNet:
    """A line of n + 1 states that no reduction shortens: the plain kernel grows its arrays and rehashes."""
    return PetriNet.from_arcs(places={"a": n, "b": 0}, transitions=["t"], arcs=[("a", "t", 1), ("t", "b", 1)],
                              name=f"countdown({n})")


@pytest.mark.parametrize("net", [nets.fork_join(6), nets.philosophers(9), nets.token_ring(6), countdown(3000)],
                         ids=lambda n: n.name)
def test_a_reduced_search_begun_in_plain_python_resumes_in_the_compiled_kernel(net: PetriNet,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = find_deadlock(net), find_infinite_run(net)
    monkeypatch.setattr(K, "loaded", lambda: False)
    monkeypatch.setattr(K, "plain_cap", lambda net: 5)
    resumed = find_deadlock(net), find_infinite_run(net)
    monkeypatch.setattr(K, "plain_cap", lambda net: 10**6)
    plain = find_deadlock(net), find_infinite_run(net)
    for run in (resumed, plain):
        assert run[0].deadlock == compiled[0].deadlock and run[0].trace == compiled[0].trace
        assert run[0].states_visited == compiled[0].states_visited
        assert (run[1].terminates, run[1].prefix, run[1].cycle) == (compiled[1].terminates, compiled[1].prefix,
                                                                    compiled[1].cycle)


HEAVY = ("numba", "scipy", "matplotlib", "networkx", "jsonschema", "asyncio", "simpy", "openai", "pandas")
"""What checking a small workflow must not import: each costs 0.05-1 s of start-up it does not need."""


def test_checking_a_small_workflow_imports_nothing_heavy() -> None:
    code = ("import sys; from petriflow.cli import main\n"
            "try:\n    main(['check', 'models/qa_router.yaml', '--json'])\nexcept SystemExit as e:\n    code = e.code\n"
            f"print(code, sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.stderr.strip().splitlines()[-1] == "0 []", res.stderr
    for props in (["--property", "deadlock"], ["--full"]):
        code2 = code.replace("'--json'", "'--json', " + ", ".join(repr(p) for p in props))
        res = subprocess.run([sys.executable, "-c", code2], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert res.stderr.strip().splitlines()[-1] == "0 []", res.stderr


def test_a_workflow_with_a_schema_error_still_gets_jsonschemas_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: w\nsteps:\n  - id: a\n    kind: chat\n    retry: {max_attempts: 0}\n")
    res = subprocess.run([sys.executable, "-m", "petriflow", "check", str(bad)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2 and "max_attempts" in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_a_slow_compile_is_announced_and_a_fast_load_is_not(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import threading

    monkeypatch.setattr(_jit, "AFTER", 0.0)
    done = threading.Event()
    with _jit.announce_compile("the test kernels", "a moment"):
        done.wait(0.2)
    err = capsys.readouterr().err
    assert "compiling the test kernels once (about a moment" in err and "compiled the test kernels in" in err
    monkeypatch.setattr(_jit, "AFTER", 60.0)
    with _jit.announce_compile("the test kernels", "a moment"):
        pass
    assert capsys.readouterr().err == ""
