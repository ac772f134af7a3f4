"""Trade-offs: simulate every combination of alternatives and find the cost / p95-latency Pareto front.

A variation is ``TARGET=V1,V2,...``; the targets are

==============================  ==================================================
``STEP.model=a,b``              the model a step calls (priced under ``models:``
                                in the profile; the step's ``models.a`` entry, if
                                any, gives that model's latency, tokens, failures)
``res.R.capacity=2,4,8``        units of resource R in flight
``res.R.rpm=60,600``            requests per minute of R (``none`` lifts the limit)
``res.R.tpm=20000,none``        tokens per minute of R
``STEP.retry=1,3``              max attempts of a step (re-lowers the net)
``STEP.retry.backoff=0.5,2``    first backoff delay of a step, seconds
``STEP.timeout=10,30,none``     timeout of a step, seconds
==============================  ==================================================

Every combination (the Cartesian product) is one configuration; all are
simulated with the same seed, so they share arrivals and per-step random
numbers (common random numbers), and differences between them are mostly the
configurations', not the dice's. Configurations run in parallel worker
processes (or on Ray with ``backend="ray"``).

A configuration's cost counts every measured case, failed ones included:
their attempts were paid for, and leaving them out would make a
configuration that fails often look cheap. A configuration whose share of
failed cases exceeds ``max_failures`` (default 1%) does not meet the SLO,
whatever its p95, so it is never the cheapest.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from petriflow.errors import ProfileError
from petriflow.limits import MAX_ATTEMPTS, MAX_COUNT, MAX_NUMBER, check_cases, failing, number
from petriflow.net.lower import lower
from petriflow.profile.model import Profile
from petriflow.simulate.engine import Load, simulate
from petriflow.simulate.guard import refuse_deadlock
from petriflow.spec.model import Workflow

__all__ = ["Config", "SweepPoint", "SweepResult", "Variation", "apply", "pareto_front", "parse_vary", "sweep"]

VARY_HINT = ("write TARGET=V1,V2 with TARGET one of STEP.model, STEP.retry, STEP.retry.backoff, STEP.timeout, "
             "res.R.capacity, res.R.rpm, res.R.tpm")


@dataclass(frozen=True)
class Variation:
    """One target and the values it takes, e.g. ``code.model`` over ``("smollm2", "gpt4o")``."""

    target: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Config:
    """One combination: ``((target, value), ...)`` in the order the variations were given."""

    settings: tuple[tuple[str, str], ...]

    @property
    def label(self) -> str:
        return ", ".join(f"{t}={v}" for t, v in self.settings) or "as profiled"


@dataclass(frozen=True)
class SweepPoint:
    """A configuration's simulated figures and whether it meets the SLO and the budget.

    ``cost_mean`` and ``cost_p95`` are over completed *and* failed measured
    cases; ``failure_share`` is failed cases over all cases run, and
    ``meets_slo`` needs it at most the sweep's ``max_failures``.
    """

    config: Config
    p95: float
    mean: float
    cost_mean: float
    cost_p95: float
    failed: int
    cases: int
    meets_slo: bool
    within_budget: bool
    failure_share: float = 0.0


@dataclass(frozen=True)
class SweepResult:
    """All points, the indices of the Pareto-optimal ones (cost vs p95), and the cheapest acceptable one."""

    points: tuple[SweepPoint, ...]
    pareto: tuple[int, ...]
    cheapest: int | None
    slo_p95: float | None
    budget: float | None
    max_failures: float = 0.01

    def to_json(self) -> dict[str, Any]:
        return {
            "slo_p95": self.slo_p95, "budget": self.budget, "max_failures": self.max_failures,
            "cheapest": None if self.cheapest is None else self.points[self.cheapest].config.label,
            "points": [{"config": dict(p.config.settings), "label": p.config.label, "p95": p.p95, "mean": p.mean,
                        "cost_mean": p.cost_mean, "cost_p95": p.cost_p95, "failed": p.failed, "cases": p.cases,
                        "failure_share": p.failure_share,
                        "meets_slo": p.meets_slo, "within_budget": p.within_budget, "pareto": i in self.pareto}
                       for i, p in enumerate(self.points)],
        }


def parse_vary(spec: str, *, given: Sequence[Variation] = ()) -> Variation:
    """``TARGET=V1,V2,...`` as a :class:`Variation`; a malformed spec raises :class:`ProfileError`.

    ``given`` are the variations parsed before this one: a target given twice
    is an error (its values would multiply into contradictory configurations).
    """
    target, eq, rest = spec.partition("=")
    target = target.strip()
    values = tuple(v.strip() for v in rest.split(",") if v.strip())
    if not eq or not target or not values:
        raise ProfileError(f"cannot read --vary {spec!r}", where="--vary", hint=VARY_HINT)
    parts = target.split(".")
    ok = (parts[0] == "res" and len(parts) == 3 and parts[2] in ("capacity", "rpm", "tpm")) or \
         (parts[0] != "res" and len(parts) == 2 and parts[1] in ("model", "retry", "timeout")) or \
         (parts[0] != "res" and len(parts) == 3 and parts[1:] == ["retry", "backoff"])
    if not ok:
        raise ProfileError(f"unknown --vary target {target!r}", where="--vary", hint=VARY_HINT)
    _no_repeats([*given, Variation(target, values)])
    return Variation(target, values)


def _no_repeats(variations: Sequence[Variation]) -> None:
    seen: set[str] = set()
    for v in variations:
        if v.target in seen:
            raise ProfileError(f"--vary {v.target} is given twice", where="--vary",
                               hint=f"list all its values in one option: --vary {v.target}=V1,V2")
        seen.add(v.target)


def _number(value: str, target: str, *, integer: bool = False, none_ok: bool = False,
            hi: float = MAX_NUMBER) -> Any:
    if none_ok and value.lower() in ("none", "null", "off"):
        return None
    try:
        x = int(value) if integer else float(value)
    except ValueError:
        raise ProfileError(f"{target}: {value!r} is not {'an integer' if integer else 'a number'}", where="--vary",
                           hint="write numbers" + (" or none" if none_ok else "")) from None
    return number(x, what=target, lo_open=True, hi=hi, integer=integer, fail=failing(ProfileError, "--vary"))


def apply(wf: Workflow, profile: Profile, config: Config) -> tuple[Workflow, Profile]:
    """The workflow and profile that ``config`` describes (checked: unknown steps, models, resources)."""
    for target, value in config.settings:
        parts = target.split(".")
        if parts[0] == "res":
            rid, what = parts[1], parts[2]
            if rid not in profile.resources:
                raise ProfileError(f"unknown resource '{rid}'", where=f"--vary {target}",
                                   hint=f"resources: {', '.join(profile.resources) or 'none'}")
            if what == "capacity":
                profile = profile.with_resource(rid, capacity=_number(value, target, integer=True, hi=MAX_COUNT))
            else:
                key = "requests_per_minute" if what == "rpm" else "tokens_per_minute"
                profile = profile.with_resource(rid, **{key: _number(value, target, none_ok=True)})
            continue
        sid = parts[0]
        if sid not in wf.step_ids:
            raise ProfileError(f"unknown step '{sid}'", where=f"--vary {target}", hint=f"steps: {', '.join(wf.step_ids)}")
        step = wf.step(sid)
        if parts[1] == "model":
            profile = profile.with_model(sid, value)
            continue
        if parts[1] == "timeout":
            step = replace(step, timeout=_number(value, target, none_ok=True))
        elif len(parts) == 2:
            step = replace(step, retry=replace(step.retry, max_attempts=_number(value, target, integer=True,
                                                                                hi=MAX_ATTEMPTS)))
        else:
            step = replace(step, retry=replace(step.retry, backoff=_number(value, target)))
        wf = replace(wf, steps=tuple(step if s.id == sid else s for s in wf.steps))
    profile.check(wf, where=f"--vary {config.label}")
    return wf, profile


def configs(variations: Sequence[Variation]) -> list[Config]:
    """Every combination of the variations' values (one empty config when there are none)."""
    _no_repeats(variations)
    return [Config(tuple(zip((v.target for v in variations), combo)))
            for combo in itertools.product(*(v.values for v in variations))]


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats in both coordinates (lower is better), by the first."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best = [], float("inf")
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


# -- workers: the workflow and profile travel once per process, configs one by one ---------------------
_STATE: dict[str, Any] = {}


def _init(wf: Workflow, profile_doc: dict[str, Any], options: dict[str, Any]) -> None:
    _STATE.update(wf=wf, net=lower(wf), profile=Profile.from_doc(profile_doc), options=options)


def _run(config: Config) -> tuple[float, float, float, float, int, int, float]:
    """``(p95, mean latency, mean cost, p95 cost, failed, completed, failure share)``; costs include failed cases."""
    wf, profile = apply(_STATE["wf"], _STATE["profile"], config)
    net = _STATE["net"] if wf is _STATE["wf"] else None  # lowered once unless the config changed a step
    r = simulate(wf, profile, net=net, **_STATE["options"])
    spent = np.concatenate([r.costs, r.failed_costs])
    cmean, cp95 = (float(spent.mean()), float(np.quantile(spent, 0.95))) if spent.size else (float("nan"),) * 2
    ran = r.cases + r.failed + r.unfinished
    return r.latency.p95, r.latency.mean, cmean, cp95, r.failed, r.cases, r.failed / ran if ran else 0.0


def sweep(
    wf: Workflow,
    profile: Profile,
    variations: Sequence[Variation],
    *,
    cases: int = 10_000,
    load: Load | None = None,
    seed: int = 0,
    slo_p95: float | None = None,
    budget: float | None = None,
    max_failures: float = 0.01,
    workers: int | None = None,
    backend: str = "local",
    progress: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Simulate every configuration; ``progress(done, total)`` is called as results come in.

    The cheapest configuration is the one with the lowest mean cost among those
    meeting the SLO (p95 latency <= ``slo_p95`` and a failed-case share <=
    ``max_failures``) and the budget (mean cost per case, failed cases
    included, <= ``budget``); None when none does.
    """
    cases = check_cases(cases, fail=failing(ProfileError, "--cases"))
    for flag, target in (("--slo-p95", slo_p95), ("--budget", budget)):
        if target is not None:
            number(target, what="the target", fail=failing(ProfileError, flag))
    if workers is not None and workers < 1:
        raise ProfileError(f"need at least 1 worker, got {workers}", where="--workers",
                           hint="leave it out to use every core")
    if not 0 <= max_failures <= 1:
        raise ProfileError(f"the failure limit is a share in [0, 1], got {max_failures}", where="--max-failures",
                           hint="e.g. 0.01 for at most 1% failed cases")
    todo = configs(variations)
    for c in todo:  # fail fast, in this process, on a bad name or value
        apply(wf, profile, c)
    refuse_deadlock(lower(wf))  # once here, not in every worker: a variation changes no step's wiring to a join
    options = {"cases": cases, "load": load, "seed": seed, "allow_unsound": True}
    workers = workers or os.cpu_count() or 1
    if backend == "ray":
        from petriflow.simulate.ray_backend import run_on_ray

        raw = run_on_ray(wf, profile.to_doc(), options, todo, init=_init, run=_run, progress=progress)
    elif backend != "local":
        raise ProfileError(f"unknown backend {backend!r}", where="--backend", hint="use local or ray")
    elif workers == 1 or len(todo) == 1:
        _init(wf, profile.to_doc(), options)
        raw = []
        for i, c in enumerate(todo):
            raw.append(_run(c))
            if progress:
                progress(i + 1, len(todo))
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(todo)), initializer=_init,
                                 initargs=(wf, profile.to_doc(), options)) as pool:
            raw = []
            for i, out in enumerate(pool.map(_run, todo, chunksize=max(1, len(todo) // (4 * workers)))):
                raw.append(out)
                if progress:
                    progress(i + 1, len(todo))
    points = []
    for c, (p95, mean, cmean, cp95, failed, n, share) in zip(todo, raw):
        points.append(SweepPoint(c, p95, mean, cmean, cp95, failed, n,
                                 meets_slo=(slo_p95 is None or p95 <= slo_p95) and share <= max_failures,
                                 within_budget=budget is None or cmean <= budget, failure_share=share))
    front = pareto_front([(p.cost_mean, p.p95) for p in points])
    ok = [i for i, p in enumerate(points) if p.meets_slo and p.within_budget and p.cases > 0]
    cheapest = min(ok, key=lambda i: (points[i].cost_mean, points[i].p95)) if ok else None
    return SweepResult(tuple(points), tuple(front), cheapest, slo_p95, budget, max_failures)
