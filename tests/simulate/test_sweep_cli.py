"""Sweeps (parsing, Pareto front, local processes and Ray agree) and the three commands through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from petriflow.cli.simulate import COMMANDS
from petriflow.errors import ProfileError
from petriflow.profile import Profile
from petriflow.simulate import simulate
from petriflow.simulate.sweep import (
    Config,
    apply,
    configs,
    pareto_front,
    parse_vary,
    sweep,
)
from petriflow.spec import load
from petriflow.spec import loads as load_text

ROOT = Path(__file__).resolve().parents[2]
QA, QA_PROFILE = ROOT / "models" / "qa_router.yaml", ROOT / "models" / "qa_router.profile.yaml"


@pytest.fixture(scope="module")
def qa() -> tuple:
    wf = load(QA)
    return wf, Profile.load(QA_PROFILE, workflow=wf)


def test_parse_vary_and_the_product_of_configurations() -> None:
    v = [parse_vary("code.model=smollm2, gpt4o"), parse_vary("res.llm.capacity=2,4,8")]
    assert v[0].values == ("smollm2", "gpt4o")
    cs = configs(v)
    assert len(cs) == 6 and cs[0].label == "code.model=smollm2, res.llm.capacity=2"
    for bad in ("code.model", "code.colour=red", "res.llm=4", "=1,2", "res.llm.capacity="):
        with pytest.raises(ProfileError, match="--vary"):
            parse_vary(bad)


def test_apply_changes_profile_and_workflow(qa: tuple) -> None:
    wf, prof = qa
    cfg = Config((("code.model", "gpt4o"), ("res.llm.capacity", "8"), ("general.retry", "1"),
                  ("search.timeout", "none"), ("res.llm.rpm", "none")))
    wf2, prof2 = apply(wf, prof, cfg)
    assert prof2.step("code").model == "gpt4o" and prof2.step("code").failure_rate == 0.005
    assert prof2.resources["llm"].capacity == 8 and prof2.resources["llm"].requests_per_minute is None
    assert wf2.step("general").retry.max_attempts == 1 and wf2.step("search").timeout is None
    assert wf.step("general").retry.max_attempts == 3  # the original is untouched
    for bad, match in ((("code.model", "llama"), "no prices"), (("nope.timeout", "3"), "unknown step"),
                       (("res.gpu.capacity", "2"), "unknown resource"), (("res.llm.capacity", "0"), "> 0"),
                       (("code.retry", "two"), "integer")):
        with pytest.raises(ProfileError, match=match):
            apply(wf, prof, Config((bad,)))
    pair = load_text("name: w\nresources: {r: {capacity: 2}}\nsteps: [{id: x, kind: tool, uses: {r: 2}}]\n")
    with pytest.raises(ProfileError, match="less than the 2 units"):  # it would never start: a deadlock
        apply(pair, Profile.from_workflow(pair), Config((("res.r.capacity", "1"),)))


@settings(deadline=None)  # no timing in tests: a loaded CI machine must not fail it
@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0, 10)), min_size=1, max_size=30))
def test_pareto_front_is_exactly_the_non_dominated_points(pts: list[tuple[float, float]]) -> None:
    front = set(pareto_front(pts))

    def dominated(i: int) -> bool:
        return any(q[0] <= pts[i][0] and q[1] <= pts[i][1] and q != pts[i] for q in pts)

    for i, p in enumerate(pts):
        if i in front:
            assert not dominated(i)
        elif not dominated(i):
            assert p in [pts[j] for j in front]  # an identical point represents it


def test_sweep_in_processes_equals_sequential_and_picks_the_cheapest(qa: tuple) -> None:
    wf, prof = qa
    v = [parse_vary("general.model=smollm2,gpt4o"), parse_vary("code.model=smollm2,gpt4o_mini")]
    seq = sweep(wf, prof, v, cases=1500, seed=4, workers=1, slo_p95=3.2)
    par = sweep(wf, prof, v, cases=1500, seed=4, workers=2, slo_p95=3.2)
    assert seq.points == par.points
    # each point is exactly what simulate gives for its configuration
    wf2, prof2 = apply(wf, prof, seq.points[3].config)
    assert simulate(wf2, prof2, cases=1500, seed=4).latency.p95 == seq.points[3].p95
    ok = [p for p in seq.points if p.p95 <= 3.2]
    assert seq.points[seq.cheapest].cost_mean == min(p.cost_mean for p in ok)


class FakeRay:
    """The slice of Ray's API the backend uses, run in process: tasks run when their result is waited for."""

    def __init__(self) -> None:
        self.started = self.stopped = False
        self.waits = 0
        self.init_options: dict[str, object] = {}

    def is_initialized(self) -> bool:
        return self.started and not self.stopped

    def init(self, **options: object) -> None:
        self.started = True
        self.init_options = options

    def shutdown(self) -> None:
        self.stopped = True

    class Ref:
        """An object reference: hashable by identity, like Ray's."""

        def __init__(self, value: object = None, fn: object = None, args: tuple = ()) -> None:
            self.value, self.fn, self.args = value, fn, args

    def put(self, value: object) -> object:
        return self.Ref(value)

    def remote(self, fn):  # type: ignore[no-untyped-def]
        ref = self.Ref

        class Task:
            @staticmethod
            def remote(*args: object) -> object:
                return ref(fn=fn, args=args)
        return Task

    def wait(self, pending: list, num_returns: int = 1) -> tuple[list, list]:
        self.waits += 1
        return pending[-num_returns:], pending[:-num_returns]  # out of order, as a cluster may finish them

    def get(self, ref: Ref) -> object:
        return ref.fn(*(a.value if isinstance(a, self.Ref) else a for a in ref.args))  # type: ignore[operator]


def test_ray_backend_orchestration_with_a_fake_ray(qa: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """Results come back in configuration order whatever order tasks finish in; progress counts up; a
    local instance started for the sweep is shut down."""
    import sys

    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    wf, prof = qa
    v = [parse_vary("code.model=smollm2,gpt4o"), parse_vary("res.llm.capacity=2,4")]
    seen: list[int] = []
    on_ray = sweep(wf, prof, v, cases=300, seed=2, backend="ray", progress=lambda done, total: seen.append(done))
    local = sweep(wf, prof, v, cases=300, seed=2, workers=1)
    assert on_ray.points == local.points
    assert seen == [1, 2, 3, 4] and fake.waits == 4 and fake.stopped
    # a new local instance, never the one a stale ray_current_cluster names (real Ray: test_ray_backend.py)
    assert fake.init_options["address"] == "local"


def test_ray_backend_joins_the_cluster_named_by_ray_address(qa: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setenv("RAY_ADDRESS", "ray://10.0.0.7:10001")
    wf, prof = qa
    sweep(wf, prof, [parse_vary("code.model=smollm2")], cases=50, seed=2, backend="ray")
    assert fake.init_options["address"] == "ray://10.0.0.7:10001"


def _cli(*args: str) -> object:
    import click

    group = click.Group(commands={c.name: c for c in COMMANDS})
    return CliRunner().invoke(group, list(args), catch_exceptions=True)


def test_simulate_json_contract_and_plot(tmp_path: Path) -> None:
    png = tmp_path / "lat.png"
    r = _cli("simulate", str(QA), "--profile", str(QA_PROFILE), "--cases", "800", "--seed", "1", "--json",
             "--plot", str(png))
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert {"cases", "latency", "cost", "throughput", "utilization", "critical_path"} <= set(doc)
    assert set(doc["latency"]) >= {"mean", "p50", "p95", "p99", "ci95"} and set(doc["cost"]) >= {"mean", "p95"}
    assert doc["cases"] == 800 and set(doc["utilization"]) == {"llm"}
    assert doc["critical_path"]["classify"] == 1.0
    assert png.stat().st_size > 10_000
    again = json.loads(_cli("simulate", str(QA), "--cases", "800", "--seed", "1", "--json").output)
    assert again == doc  # the profile beside the workflow is found by name


def test_fit_command_writes_a_profile_that_simulates(tmp_path: Path) -> None:
    from .test_fit import WF, traces

    (tmp_path / "wf.yaml").write_text(WF)
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(x) for x in traces(600)))
    r = _cli("fit", str(tmp_path / "t.jsonl"), "-o", str(tmp_path / "p.yaml"), "--workflow", str(tmp_path / "wf.yaml"))
    assert r.exit_code == 0, r.output
    assert "slow" in r.output and "lognormal" in r.output and "KS" in r.output
    r = _cli("simulate", str(tmp_path / "wf.yaml"), "--profile", str(tmp_path / "p.yaml"), "--cases", "200")
    assert r.exit_code == 0, r.output


def test_sweep_command_table_and_pareto_plot(tmp_path: Path) -> None:
    png = tmp_path / "pareto.png"
    r = _cli("sweep", str(QA), "--vary", "code.model=smollm2,gpt4o_mini", "--vary", "res.llm.capacity=1,4",
             "--cases", "600", "--rate", "0.5", "--slo-p95", "4", "--plot", str(png), "--workers", "1")
    assert r.exit_code == 0, r.output
    assert "cheapest:" in r.output and png.stat().st_size > 10_000


@pytest.mark.parametrize(("args", "match"), [
    (("simulate", "MISSING.yaml"), ""),
    (("simulate", str(QA), "--profile", "nope.yaml"), "cannot read profile"),
    (("simulate", str(QA), "--rate", "1", "--users", "2"), "one of --rate"),
    (("sweep", str(QA), "--vary", "code.modle=a"), "unknown --vary target"),
    (("sweep", str(QA), "--vary", "code.model=gpt4o", "--workers", "0"), "at least 1 worker"),
    (("sweep", str(QA), "--vary", "code.model=gpt4o", "--cases", "0"), "at least 1 case"),
    (("simulate", str(QA), "--warmup", "1"), "warm-up"),
    (("simulate", str(QA), "--users", "0"), "at least 1 user"),
])
def test_bad_input_is_an_input_error(args: tuple[str, ...], match: str) -> None:
    from petriflow.errors import InputError

    r = _cli(*args)
    assert isinstance(r.exception, InputError) and r.exception.exit_code == 2
    assert match in str(r.exception)


@pytest.mark.parametrize(("args", "match"), [
    (("simulate", str(QA), "--plot", "x.txt"), "unknown suffix '.txt'"),
    (("simulate", str(QA), "--plot", "no/such/dir/x.png"), "no directory"),
    (("sweep", str(QA), "--vary", "code.model=gpt4o", "--plot", "x.bmpq"), "unknown suffix '.bmpq'"),
])
def test_a_bad_plot_path_fails_before_any_simulating(args: tuple[str, ...], match: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import import_module

    from petriflow.errors import InputError

    engine, sweep_module = import_module("petriflow.simulate.engine"), import_module("petriflow.simulate.sweep")

    def never(*_a: object, **_k: object) -> None:
        raise AssertionError("simulated before checking --plot")

    monkeypatch.setattr(engine, "simulate", never)
    monkeypatch.setattr(sweep_module, "sweep", never)
    r = _cli(*args)
    assert isinstance(r.exception, InputError) and r.exception.exit_code == 2, r.exception
    assert match in str(r.exception)


def test_a_refused_write_of_the_picture_is_an_input_error(tmp_path: Path) -> None:
    from petriflow.errors import InputError
    from petriflow.simulate.plot import plot_result

    wf = load_text("name: one\nsteps:\n  - {id: a, kind: tool, latency: 1}\n")
    (tmp_path / "taken.png").mkdir()  # a directory where the file should go: savefig raises OSError
    with pytest.raises(InputError, match="cannot write the picture"):
        plot_result(simulate(wf, cases=20), tmp_path / "taken.png")


FLAKY = """
name: flaky
steps:
  - {id: a, kind: tool, cost: 1.0, failure_rate: 0.3, retry: {max_attempts: 1, backoff: 0.01}, latency: 1}
  - {id: b, kind: tool, after: [a], cost: 10.0, latency: 1}
"""


def test_failed_cases_spend_counts_and_a_failing_configuration_is_never_the_cheapest() -> None:
    """a costs $1 per successful attempt and fails 30% of them (a failed attempt is not billed, as in the
    executor), b costs $10. With one attempt a case costs $11 or, failed, $0: $7.70 a case, 30% failed. With
    five, 0.3**5 = 0.24% fail, at $11 a case, so it is the cheapest that fails at most 1% (before, failures
    were ignored: 1 attempt was named the cheapest)."""
    wf = load_text(FLAKY)
    n = 4000
    res = sweep(wf, Profile.from_workflow(wf), [parse_vary("a.retry=1,5")], cases=n, load=None, workers=1)
    one, five = res.points
    assert abs(one.failure_share - 0.3) < 4 * (0.3 * 0.7 / n) ** 0.5
    assert abs(one.cost_mean - 7.7) < 4 * 11 * (0.3 * 0.7 / n) ** 0.5  # $11 with prob. 0.7, else $0
    assert not one.meets_slo and five.meets_slo
    assert res.cheapest == 1
    assert res.to_json()["max_failures"] == 0.01 and res.to_json()["points"][0]["failure_share"] > 0.2
    lenient = sweep(wf, Profile.from_workflow(wf), [parse_vary("a.retry=1,5")], cases=n, workers=1,
                    max_failures=0.5)
    assert lenient.cheapest == 0
    with pytest.raises(ProfileError, match="--max-failures"):
        sweep(wf, Profile.from_workflow(wf), [parse_vary("a.retry=1")], cases=10, max_failures=1.5)


def test_a_vary_target_given_twice_is_rejected() -> None:
    first = parse_vary("code.model=a")
    with pytest.raises(ProfileError, match="given twice"):
        parse_vary("code.model=b", given=[first])
    with pytest.raises(ProfileError, match="given twice"):
        configs([first, parse_vary("code.model=b")])
    r = _cli("sweep", str(QA), "--vary", "code.model=gpt4o", "--vary", "code.model=smollm2")
    assert "given twice" in str(r.exception) and r.exception.exit_code == 2


def test_simulate_header_says_how_many_cases_ran_when_a_replay_trims_them(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text("name: one\nsteps:\n  - {id: a, kind: tool, latency: 1}\n")
    (tmp_path / "arrivals.txt").write_text("0\n0.5\n2\n")
    r = _cli("simulate", str(tmp_path / "wf.yaml"), "--cases", "100", "--arrivals", str(tmp_path / "arrivals.txt"))
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0] == "one: simulated 3 cases (seed 0)"
