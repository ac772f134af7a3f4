"""Run one workflow twice from one description: by the executor against the synthetic server, and simulated.

A :class:`ContractCase` is a workflow (built against the server's URL), the
:class:`~tests.execute.synthetic.Behaviour` of each step or model, and an
arrival process that :class:`petriflow.simulate.Load` describes. From it:

* :func:`execute` plans the workflow and runs it through
  :class:`petriflow.execute.Executor` and the real ``openai`` client against
  the fault server with those behaviours, under the same load (a closed
  population of users with think time, or Poisson arrivals), timing each case
  from its arrival to its end as the simulator does;
* :func:`profile_for` builds the simulator's :class:`~petriflow.profile.model.Profile`
  from the very same distributions, and :func:`simulate_runs` simulates the
  same number of cases ``R`` times;
* :func:`compare` sets the figures of :mod:`tests.contract.stats` side by side.

Fairness. The executor spends time of its own in every call (the ``openai``
client, HTTP on loopback, the event loop shared by every case: about 4 ms a
call on a quiet machine; on a loaded one 10-30 ms, and spread wide, since a
call waits for whatever else the loop and the CPU are doing). The server
logs the latency it drew for every request and the trace has each attempt's
duration, so :func:`overheads` measures, per step and in the same run, the
mean and the variance the executor added to the same calls, and the profile
adds an independent draw with those two moments to the step's latency
(:class:`Plus`); the mean alone is not enough where calls join (a map's
items, a fan-out), since the slowest of several calls sets the pace. Users'
lateness back from thinking is observed directly and resampled. Everything
else (composition of steps, queues at resources, retries and back-off, rate
limits, routes, fallbacks, costs) the simulator has to get right by itself.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from petriflow.execute import Executor, ModelClient, TraceWriter, plan
from petriflow.profile.distributions import Dist, Empirical, Fixed, Gamma, Mixture
from petriflow.profile.model import Profile, StepProfile
from petriflow.simulate import Load, simulate
from petriflow.simulate.result import SimResult
from petriflow.spec.model import Step, Workflow
from petriflow.trace import TraceRecord
from tests.execute.synthetic import Behaviour, behaviour_for

from .stats import FIGURES, CaseRecord, executed_intervals, figures, of_simulation, spread

__all__ = ["Contract", "ContractCase", "Executed", "Figure", "Plus", "Server", "compare", "execute", "load_as_run",
           "overheads", "profile_for", "simulate_runs", "summary", "with_moments"]

HANG = 1e9
"""The latency the profile gives a request that never answers: longer than any timeout, so it times out."""


class Server(Protocol):
    """What the harness needs of the fault server: :class:`FaultServer` in-thread or :class:`FaultControl`."""

    @property
    def base_url(self) -> str: ...

    def set_behaviours(self, behaviours: Mapping[str, Behaviour], *, seed: int = 0) -> None: ...

    def draws(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class ContractCase:
    """One workflow of the contract, its behaviours, its load and its size (cases run by the test)."""

    name: str
    summary: str
    build: Callable[[str], Workflow]
    behaviours: Mapping[str, Behaviour]
    load: Load
    cases: int
    warmup: float = 0.1


@dataclass(frozen=True, eq=False)
class Plus(Dist):
    """``base + extra``, drawn independently: a latency as the executor lives it, its own overhead added.

    Only the simulator's sampler reads it (it has no file form: :meth:`to_doc` is not defined).
    """

    base: Dist
    extra: Dist
    family = "plus"

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.asarray(self.base.sample(rng, n) + self.extra.sample(rng, n))

    @property
    def mean(self) -> float:
        return self.base.mean + self.extra.mean

    def scaled(self, factor: float) -> Dist:
        return Plus(self.base.scaled(factor), self.extra.scaled(factor))


def with_moments(mean: float, var: float) -> Dist:
    """A non-negative distribution with this mean and variance: a gamma, or the mean itself when the
    variance is not positive (a mean below 0, which only noise can give, counts as 0)."""
    if mean <= 0:
        return Fixed(0.0)
    if var <= 0:
        return Fixed(mean)
    return Gamma(mean * mean / var, var / mean)


def _sd(d: Dist) -> float:
    return float(d.shape) ** 0.5 * float(d.scale) if isinstance(d, Gamma) else 0.0


@dataclass(frozen=True)
class Executed:
    """One executed run: its cases, the trace of every attempt, the server's draws, its wall time, and how
    late each of its users came back from each think (seconds beyond the think time drawn)."""

    records: tuple[CaseRecord, ...]
    trace: tuple[TraceRecord, ...]
    draws: tuple[Mapping[str, Any], ...]
    wall: float
    late: tuple[float, ...] = ()


@dataclass(frozen=True)
class Figure:
    """One figure executed and simulated, each with its 95% interval, and whether they agree.

    They agree when the gap is within both half-widths together:
    ``|executed - simulated| <= (exec_hi - exec_lo)/2 + (sim_hi - sim_lo)/2``.
    """

    name: str
    executed: float
    exec_lo: float
    exec_hi: float
    simulated: float
    sim_lo: float
    sim_hi: float

    @property
    def bound(self) -> float:
        return (self.exec_hi - self.exec_lo) / 2 + (self.sim_hi - self.sim_lo) / 2

    @property
    def agrees(self) -> bool:
        return abs(self.executed - self.simulated) <= self.bound

    @property
    def gap(self) -> float:
        """(executed - simulated) / simulated; 0 when both are 0."""
        if self.simulated == 0:
            return 0.0 if self.executed == 0 else math.inf
        return (self.executed - self.simulated) / self.simulated


# -- execution ----------------------------------------------------------------------------------


async def _drive(ex: Executor, load: Load, cases: int, seed: int) -> tuple[list[CaseRecord], list[float]]:
    """Run ``cases`` cases under ``load``, as the simulator's arrivals do, timing each arrival to end.

    Also returns how much later than drawn a closed population's users came
    back, each time (a sleeping task wakes when the busy loop, on a shared
    machine, gets to it): the think time as lived, which the simulation uses.
    """
    loop = asyncio.get_running_loop()
    rng = np.random.default_rng(seed)
    zero = loop.time()
    out: list[CaseRecord] = []
    arrived = 0
    late: list[float] = []

    async def one() -> None:
        nonlocal arrived
        i, arrived = arrived, arrived + 1
        t0 = loop.time()
        r = await ex.run(f"question {i}", run_id="contract", case=i)
        out.append(CaseRecord(i, t0 - zero, loop.time() - zero, r.cost, r.ok))

    if load.kind == "closed":
        scheduled = min(load.users, cases)

        async def user() -> None:
            nonlocal scheduled
            while True:
                await one()
                if scheduled >= cases:
                    return
                scheduled += 1  # counted at the end, before thinking: as the simulator's users
                think = float(load.think.sample(rng, 1)[0])
                t = loop.time()
                if think > 0:
                    await asyncio.sleep(think)
                late.append(loop.time() - t - think)

        await asyncio.gather(*(user() for _ in range(scheduled)))
    elif load.kind == "poisson":
        tasks, t = [], 0.0
        for i in range(cases):
            if i:
                t += float(rng.exponential(1.0 / load.rate))
            await asyncio.sleep(max(0.0, zero + t - loop.time()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    else:
        raise ValueError(f"the contract drives closed and poisson loads, not {load.kind!r}")
    return out, late


def execute(case: ContractCase, server: Server, *, cases: int | None = None, seed: int = 0) -> Executed:
    """Run the case by the executor against ``server`` with the case's behaviours.

    A few cases run first on a separate executor sharing the same client, so
    connections are open before the clock starts; then the behaviours are set
    afresh (their generators and their log start again) and the run is timed.
    """
    wf = case.build(server.base_url)
    dag = plan(wf)
    n = cases or case.cases

    async def main() -> Executed:
        async with ModelClient() as client:
            server.set_behaviours(case.behaviours, seed=seed)
            warm = Executor(dag, client=client, seed=seed)
            await warm.run_many([f"warm-up {i}" for i in range(8)], concurrency=8)
            server.set_behaviours(case.behaviours, seed=seed)
            trace = TraceWriter(keep=True)
            ex = Executor(dag, client=client, trace=trace, seed=seed)
            began = time.perf_counter()
            records, late = await _drive(ex, case.load, n, seed)
            wall = time.perf_counter() - began
            return Executed(tuple(sorted(records, key=lambda r: r.idx)), tuple(trace.records),
                            tuple(server.draws()), wall, tuple(late))

    return asyncio.run(main())


def _model_name(wf: Workflow, step: Step) -> str | None:
    if step.model is None:
        return None
    m = wf.models.get(step.model)
    return m.name if m is not None else step.model


def overheads(wf: Workflow, run: Executed) -> dict[str, Dist]:
    """Per model step, what the executor adds to a call: :func:`with_moments` of the difference.

    Its successful attempts (the executor's trace) and the server's successful
    requests that came within the step's timeout are the same calls, so the
    difference of their means is the mean overhead, and the difference of
    their variances its variance (an overhead independent of the latency drawn).
    """
    out: dict[str, Dist] = {}
    for s in wf.steps:
        limit = s.timeout if s.timeout is not None else math.inf
        seen = np.array([r.end - r.start for r in run.trace if r.step == s.id and r.outcome == "ok"])
        drawn = np.array([d["delay"] for d in run.draws
                          if d["step"] == s.id and d["fault"] == "ok" and d["delay"] < limit])
        if seen.size and drawn.size:
            out[s.id] = with_moments(float(seen.mean() - drawn.mean()), float(seen.var() - drawn.var()))
    return out


# -- simulation -----------------------------------------------------------------------------------


def kind_of(fault: str) -> str:
    """The executor's verdict on a fault of the server (:func:`petriflow.execute.call_errors.classify_error`):
    ``timeout`` for a hang, ``retryable`` for 429, 408, 409, 425, 5xx and broken answers, else ``fatal``."""
    name = fault.partition(":")[0]
    if name == "hang":
        return "timeout"
    if not name.isdigit():
        return "retryable"  # 429ms, 429date, drop, malformed, badshape
    status = int(name)
    return "retryable" if status >= 500 or status in (408, 409, 425, 429) else "fatal"


def _step_profile(step: Step, b: Behaviour, overhead: Dist) -> StepProfile:
    """What the simulator draws for a model step: the behaviour's distributions, its failures as rates.

    A hang is a latency past any timeout (so the simulator times it out, as
    the executor does, whatever the latency draw); every other fault is a
    failed attempt after its latency, at its rate among the attempts that did
    not hang, by the kind the executor gives it. The profile has no
    ``Retry-After``: there the simulator cannot follow the executor, and the
    contract says so.
    """
    hang = b.share("hang")
    if hang and step.timeout is None:
        raise ValueError(f"step '{step.id}' may hang but has no timeout: the executor would wait 120 s")
    latency = b.latency if not hang else Mixture((b.latency, Fixed(HANG)), (1 - hang, hang))
    rates = {"retryable": 0.0, "fatal": 0.0}
    for fault, p in b.errors.items():
        if kind_of(fault) != "timeout":
            rates[kind_of(fault)] += p / (1 - hang)
    return StepProfile(latency=Plus(latency, overhead), input_tokens=b.input_tokens,
                       output_tokens=b.output_tokens, model=step.model, retryable_rate=rates["retryable"],
                       fatal_rate=rates["fatal"])


def profile_for(wf: Workflow, behaviours: Mapping[str, Behaviour], extra: Mapping[str, Dist]) -> Profile:
    """The workflow's profile with every model step, route and map drawn from the server's behaviours, and
    ``extra[step]`` (the executor's measured overhead) added to each model step's latency."""
    base = Profile.from_workflow(wf)
    steps = dict(base.steps)
    routes = dict(base.routes)
    for s in wf.steps:
        b = behaviour_for(behaviours, s.id, _model_name(wf, s))
        if b is not None and s.kind in ("chat", "embed", "classify"):
            steps[s.id] = replace(_step_profile(s, b, extra.get(s.id, Fixed(0.0))), items=steps[s.id].items)
        if s.route and not (b is not None and b.scores is not None and all(br.match is None for br in s.route)):
            if b is None or set(b.choices) != {br.when for br in s.route}:
                raise ValueError(f"route '{s.id}' needs a behaviour whose choices are its branch labels "
                                 "(or scores that its conditions test)")
            routes[s.id] = MappingProxyType(dict(b.choices))
        # a route on conditions keeps the workflow's `p`: the scores are drawn so that each condition holds that often
        if s.map is not None:
            up = behaviour_for(behaviours, s.map.over, _model_name(wf, wf.step(s.map.over)))
            if up is None or up.items is None:
                raise ValueError(f"map '{s.id}' needs a behaviour of '{s.map.over}' that draws its items")
            steps[s.id] = replace(steps[s.id], items=up.items)
    return replace(base, steps=MappingProxyType(steps), routes=MappingProxyType(routes))


def load_as_run(load: Load, run: Executed) -> Load:
    """The load the executed run lived: Poisson arrivals replayed at the very times they came (the two
    runs then see one arrival process, not two samples of it); a closed population's think time
    lengthened by how late its users came back, resampled from what was seen."""
    if load.kind == "poisson":
        return Load.replay([r.arrival for r in run.records])
    if load.kind == "closed" and run.late:
        return replace(load, think=Plus(load.think, Empirical(tuple(max(0.0, x) for x in run.late))))
    return load


def simulate_runs(wf: Workflow, profile: Profile, load: Load, *, cases: int, reps: int,
                  warmup: float) -> list[SimResult]:
    """``reps`` simulations of ``cases`` cases under ``load``, seeds 0 .. reps-1."""
    return [simulate(wf, profile, cases=cases, load=load, seed=s, warmup=warmup) for s in range(reps)]


# -- the comparison ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contract:
    """The comparison of one case: its figures, the overheads the profile added, the executed wall time."""

    case: str
    cases: int
    figures: tuple[Figure, ...]
    overheads: Mapping[str, Dist] = field(default_factory=dict)
    wall: float = 0.0
    think_late: float = 0.0

    def added(self) -> str:
        """What the simulation added, for people: per step the overhead's mean and spread, and the think's."""
        calls = ", ".join(f"{k} {d.mean * 1e3:.1f}±{_sd(d) * 1e3:.1f}" for k, d in self.overheads.items())
        return f"per call (ms, mean±sd) {calls}; per think {self.think_late * 1e3:.1f} ms"

    def disagreements(self) -> list[Figure]:
        return [f for f in self.figures if not f.agrees]

    def table(self) -> str:
        """One line per figure: executed [95% interval], simulated [95% range of one run], gap, verdict."""
        lines = [f"{self.case}: {self.cases} cases, executed in {self.wall:.1f} s; added to the simulation "
                 + self.added()]
        lines.append(f"  {'figure':<10} {'executed':>10} {'95% interval':>23} {'simulated':>10} "
                     f"{'95% one run':>23} {'gap':>8}  verdict")
        for f in self.figures:
            lines.append(f"  {f.name:<10} {f.executed:10.4g} [{f.exec_lo:10.4g} {f.exec_hi:10.4g}] "
                         f"{f.simulated:10.4g} [{f.sim_lo:10.4g} {f.sim_hi:10.4g}] {f.gap:+8.1%}  "
                         + ("agrees" if f.agrees else "DISAGREES"))
        return "\n".join(lines)


def compare(case: ContractCase, server: Server, *, cases: int | None = None, reps: int = 20,
            seed: int = 0) -> Contract:
    """Execute the case, simulate it ``reps`` times from the same distributions, and set the figures side by side."""
    n = cases or case.cases
    run = execute(case, server, cases=n, seed=seed)
    wf = case.build(server.base_url)
    extra = overheads(wf, run)
    profile = profile_for(wf, case.behaviours, extra)
    sims = [of_simulation(r) for r in simulate_runs(wf, profile, load_as_run(case.load, run), cases=n,
                                                    reps=reps, warmup=case.warmup)]
    got = figures(run.records, warmup=case.warmup)
    ci = executed_intervals(run.records, warmup=case.warmup, seed=seed)
    rows = []
    for name in FIGURES:
        m, lo, hi = spread([s[name] for s in sims])
        rows.append(Figure(name, got[name], *ci[name], m, lo, hi))
    late = float(np.mean(run.late)) if run.late else 0.0
    return Contract(case.name, n, tuple(rows), MappingProxyType(extra), run.wall, late)


def summary(contracts: Sequence[Contract]) -> str:
    """Every case's table, one after the other."""
    return "\n\n".join(c.table() for c in contracts)
