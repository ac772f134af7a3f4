"""The ``simulate``, ``fit`` and ``sweep`` commands (registered by :mod:`petriflow.cli`).

A thin shell: read files, call :func:`simulate`, :func:`fit` or :func:`sweep`,
print a table or JSON, draw a picture. Bad input raises a
:class:`~petriflow.errors.ProfileError` (exit 2); success exits 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from petriflow.errors import ProfileError
from petriflow.limits import MAX_RECORDS_BYTES, check_output, failing, read_text

__all__ = ["COMMANDS", "fit_cmd", "simulate_cmd", "sweep_cmd"]


def _workflow(path: str) -> Any:
    from petriflow.spec import load

    if Path(path).suffix.lower() == ".pnml":
        raise ProfileError("a PNML net has no steps to time", where=path,
                           hint="simulate a workflow file (YAML/JSON); its net is what `check` verifies")
    return load(path)


def _profile(wf: Any, path: str, given: str | None) -> Any:
    """The given profile, else ``NAME.profile.yaml`` beside the workflow, else its annotations."""
    from petriflow.profile.model import Profile

    if given is None:
        beside = Path(path).with_suffix(".profile.yaml")
        given = str(beside) if beside.exists() else None
    return Profile.load(given, workflow=wf) if given else Profile.from_workflow(wf)


def _load(rate: float | None, users: int | None, think: float, arrivals: str | None) -> Any:
    from petriflow.simulate.engine import Load

    chosen = [x is not None for x in (rate, users, arrivals)]
    if sum(chosen) > 1:
        raise ProfileError("give one of --rate, --users, --arrivals", where="options",
                           hint="--rate: open Poisson arrivals; --users: closed population; --arrivals: replay")
    if rate is not None:
        return Load.poisson(rate)
    if arrivals is not None:
        text = read_text(arrivals, what="arrival times", max_bytes=MAX_RECORDS_BYTES,
                         fail=failing(ProfileError, arrivals))
        try:
            times = [float(x) for x in text.split()]
        except ValueError:
            raise ProfileError("arrival times must be numbers (seconds), one per line", where=arrivals) from None
        return Load.replay(times)
    return Load.closed(1 if users is None else users, think)


_LOAD_OPTIONS = [
    click.option("--rate", type=float, default=None, help="Poisson arrivals per second (open load)."),
    click.option("--users", type=int, default=None, help="Closed population: this many users, each one case at a time."),
    click.option("--think", type=float, default=0.0, show_default=True, help="Users' think time between cases (s)."),
    click.option("--arrivals", type=click.Path(dir_okay=False), default=None,
                 help="Replay arrival times (seconds, one per line)."),
    click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Same seed, same numbers."),
    click.option("--profile", "profile_path", type=click.Path(dir_okay=False), default=None,
                 help="Profile YAML/JSON (default: NAME.profile.yaml beside the workflow, else its annotations)."),
]


def _with_load(f: Any) -> Any:
    for option in reversed(_LOAD_OPTIONS):
        f = option(f)
    return f


@click.command("simulate")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--cases", type=int, default=2000, show_default=True, help="Cases (requests) to simulate.")
@_with_load
@click.option("--warmup", type=float, default=0.1, show_default=True, help="Share of first cases left out of the figures.")
@click.option("--backend", type=click.Choice(["fast", "simpy"]), default="fast", show_default=True,
              help="Event clock: own heap, or SimPy's kernel (same numbers, slower).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Draw latency and cost histograms (.png/.svg/.pdf; the directory must exist).")
@click.option("--allow-unsound", is_flag=True,
              help="Simulate a workflow that can deadlock (refused by default, exit 1); stranded cases are counted.")
def simulate_cmd(path: str, cases: int, rate: float | None, users: int | None, think: float, arrivals: str | None,
                 seed: int, profile_path: str | None, warmup: float, backend: str, as_json: bool, plot: str | None,
                 allow_unsound: bool) -> None:
    """Predict latency and cost per case of the workflow at PATH by simulating its net.

    A workflow whose net can deadlock is refused (exit 1) with the witness
    `petriflow check` gives, unless --allow-unsound.
    """
    from petriflow.simulate.engine import simulate

    if plot:
        from petriflow.simulate.plot import check_plot_path

        check_plot_path(plot)  # before the run, not after it
    wf = _workflow(path)
    profile = _profile(wf, path, profile_path)
    result = simulate(wf, profile, cases=cases, load=_load(rate, users, think, arrivals), seed=seed,
                      warmup=warmup, backend=backend, allow_unsound=allow_unsound)
    if result.unfinished:
        click.echo(f"warning: {result.unfinished} case(s) never reached the end: the workflow net can deadlock "
                   f"(run `petriflow check {path}`)", err=True)
    if not result.measured:
        click.echo("warning: no measured case finished: there is no latency or cost to report", err=True)
    if result.unpriced:
        click.echo("warning: these model steps cost $0 for want of an annotation, so the cost is low: "
                   + "; ".join(f"{sid} ({why})" for sid, why in result.unpriced.items()), err=True)
    if plot:
        from petriflow.simulate.plot import plot_result

        plot_result(result, plot, title=f"{wf.name}: {result.measured} simulated cases")
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        ran = result.cases + result.failed + result.unfinished  # a replay runs no more cases than it has arrivals
        click.echo(f"{wf.name}: simulated {ran} cases (seed {seed})")
        click.echo(result.table())
        if plot:
            click.echo(f"wrote {plot}")


@click.command("fit")
@click.argument("traces", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Profile to write (.yaml/.json).")
@click.option("--workflow", type=click.Path(dir_okay=False), default=None,
              help="The traced workflow: fills gaps from its annotations and reads loops and maps.")
@click.option("--min-samples", type=int, default=20, show_default=True,
              help="Below this many values, keep the measurements (empirical) instead of a family, "
                   "and warn about any figure resting on fewer observations.")
def fit_cmd(traces: str, output: str, workflow: str | None, min_samples: int) -> None:
    """Fit a simulation profile from execution TRACES (JSON lines) and say how well each part fits.

    Every rate and latency quantile is printed with the number of
    observations behind it and its 95% interval; a step with a figure
    resting on fewer than --min-samples observations gets a warning on stderr.
    """
    from petriflow.profile.fit import fit
    from petriflow.profile.intervals import few_samples
    from petriflow.rules import ERROR_KINDS

    check_output(output, inputs=(traces, workflow), what="profile", fail=failing(ProfileError, "-o"))
    wf = _workflow(workflow) if workflow else None
    profile = fit(traces, workflow=wf, min_samples=min_samples)
    profile.dump(output)
    click.echo(f"{'step':<16} {'quantity':<14} {'family':<12} {'n':>6} {'KS':>7} {'p-value':>8}")
    for sid, qs in profile.quality.items():
        for what, q in qs.items():
            click.echo(f"{sid:<16} {what:<14} {q.family:<12} {q.n:>6} {q.ks:>7.4f} {q.p_value:>8.4f}")
    for sid, probs in profile.routes.items():
        click.echo(f"{sid:<16} route          " + ", ".join(f"{b} {p:.3f}" for b, p in probs.items()))
        for key, given in profile.routes_given.get(sid, {}).items():
            click.echo(f"{sid:<16}   after {key:<8} " + ", ".join(f"{b} {p:.3f}" for b, p in given.items()))
    for sid, p in profile.loops.items():
        given = profile.loops_given.get(sid, {})
        if given:
            click.echo(f"{sid:<16} loop           {p:.3f}; " + ", ".join(f"after {k} {q:.3f}" for k, q in given.items()))
    for sid, sp in profile.steps.items():
        if sp.failure_rate:
            kinds = ", ".join(f"{kind} {sp.rate_of(kind):.4f}" for kind in ERROR_KINDS if sp.rate_of(kind))
            click.echo(f"{sid:<16} failure rate   {sp.failure_rate:.4f} ({kinds})")
    click.echo(f"{'step':<16} {'figure':<14} {'value':>10} {'n':>6}  95% interval")
    for sid, es in profile.estimates.items():
        for what, e in es.items():
            click.echo(f"{sid:<16} {what:<14} {e.value:>10.4f} {e.n:>6}  {_interval(e.low, e.high)} ({e.method})")
    for sid, thin in few_samples(profile.estimates, min_samples).items():
        click.echo(f"warning: step '{sid}': few samples (fewer than {min_samples}): "
                   + "; ".join(f"{what} from {e.n} {e.unit}, 95% interval {_interval(e.low, e.high)}"
                               for what, e in thin), err=True)
    click.echo(f"wrote {output}")


def _interval(low: float | None, high: float | None) -> str:
    """``[lo, hi]``, an unbounded side shown as such."""
    return f"[{'-inf' if low is None else f'{low:.4f}'}, {'inf' if high is None else f'{high:.4f}'}]"


@click.command("sweep")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--vary", "vary", multiple=True, required=True,
              help="TARGET=V1,V2 (repeatable): STEP.model, STEP.retry, STEP.retry.backoff, STEP.timeout, "
                   "res.R.capacity, res.R.rpm, res.R.tpm.")
@click.option("--cases", type=int, default=10_000, show_default=True, help="Cases per configuration.")
@_with_load
@click.option("--slo-p95", type=float, default=None, help="Latency target: p95 seconds.")
@click.option("--budget", type=float, default=None, help="Cost target: mean dollars per case.")
@click.option("--max-failures", type=float, default=0.01, show_default=True,
              help="Largest share of failed cases that still meets the SLO.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Draw the cost vs p95 Pareto front (.png/.svg/.pdf; the directory must exist).")
@click.option("--workers", type=int, default=None, help="Worker processes (default: all cores).")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local processes, or a Ray cluster (ray.init(); RAY_ADDRESS picks the cluster).")
@click.option("--json", "as_json", is_flag=True, help="Print every configuration as JSON.")
def sweep_cmd(path: str, vary: tuple[str, ...], cases: int, rate: float | None, users: int | None, think: float,
              arrivals: str | None, seed: int, profile_path: str | None, slo_p95: float | None,
              budget: float | None, max_failures: float, plot: str | None, workers: int | None, backend: str, as_json: bool) -> None:
    """Simulate every combination of alternatives for the workflow at PATH; find the cheapest meeting the SLO."""
    from tqdm import tqdm

    from petriflow.simulate.sweep import configs, parse_vary, sweep

    if plot:
        from petriflow.simulate.plot import check_plot_path

        check_plot_path(plot)  # before the run, not after it
    wf = _workflow(path)
    profile = _profile(wf, path, profile_path)
    variations: list[Any] = []
    for v in vary:
        variations.append(parse_vary(v, given=variations))
    total = len(configs(variations))
    with tqdm(total=total, desc="sweep", unit="config", disable=None) as bar:
        def progress(done: int, _total: int) -> None:
            bar.update(done - bar.n)

        result = sweep(wf, profile, variations, cases=cases, load=_load(rate, users, think, arrivals), seed=seed,
                       slo_p95=slo_p95, budget=budget, max_failures=max_failures, workers=workers, backend=backend, progress=progress)
    if plot:
        from petriflow.simulate.plot import plot_pareto

        plot_pareto(result, plot, title=f"{wf.name}: {total} configurations × {cases} cases")
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    click.echo(f"{'':2}{'configuration':<48} {'p95 s':>8} {'mean s':>8} {'$/case':>11} {'failed':>7}")
    for i, p in sorted(enumerate(result.points), key=lambda ip: ip[1].cost_mean):
        mark = ("*" if i == result.cheapest else "P" if i in result.pareto else " ") + ("" if p.meets_slo else "!")
        click.echo(f"{mark:<2}{p.config.label:<48} {p.p95:>8.3f} {p.mean:>8.3f} {p.cost_mean:>11.7f} "
                   f"{p.failure_share:>7.2%}")
    click.echo("* cheapest meeting the SLO and budget, P on the Pareto front, "
               f"! misses the SLO (p95, or more than {max_failures:.1%} failed); $/case counts failed cases too")
    if result.cheapest is None:
        click.echo("no configuration meets the SLO and budget")
    else:
        best = result.points[result.cheapest]
        click.echo(f"cheapest: {best.config.label} (${best.cost_mean:.7f}/case, p95 {best.p95:.3f} s)")
    if plot:
        click.echo(f"wrote {plot}")


COMMANDS = [simulate_cmd, fit_cmd, sweep_cmd]
simulate, fit, sweep = simulate_cmd, fit_cmd, sweep_cmd  # the names the issue uses
