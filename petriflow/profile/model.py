"""The simulation profile: what each step, route, model and resource is measured to do.

A profile is one YAML or JSON file beside the workflow::

    steps:
      code:
        latency: {dist: lognormal, mu: 0.7, sigma: 0.5}   # seconds, start to finish
        tokens: {input: 60, output: {dist: exponential, mean: 150}}
        retryable_rate: 0.02                               # failures per attempt, by kind (petriflow.rules):
        timeout_rate: 0.01                                 #   retried while the retry budget lasts,
        fatal_rate: 0.001                                  #   or (fatal) handed to the fallback at once
        retry_after: {dist: empirical, samples: [0, 0, 0.25]}  # the server's Retry-After per retryable failure
        cost: 0.0                                          # dollars per call, on top of tokens
        models:                                            # alternatives for `sweep`
          gpt4o: {latency: {dist: lognormal, mu: 0.2, sigma: 0.4}, retryable_rate: 0.005}
      fanout: {items: {dist: empirical, samples: [1, 2, 2, 3]}}   # map steps: items per run
    routes: {classify: {general: 0.5, code: 0.3, search: 0.2}}   # branch label -> probability
    loops: {review: 0.3}                                          # chance to go back, per pass
    # or, conditional on the route branch that led there (petriflow.profile.given):
    #   loops: {review: {p: 0.3, given: {classify=code: 0.6, classify=general: 0.1}}}
    models: {gpt4o: {price_input: 2.5, price_output: 10.0, price_call: 0}}   # dollars per 1M tokens
    resources: {llm: {capacity: 4, requests_per_minute: 600, tokens_per_minute: 200000}}

:meth:`Profile.from_workflow` takes the workflow's own annotations as defaults
and :meth:`Profile.load` lets a file override them key by key, so a profile
only needs what was measured. ``fit`` writes the same format. A file written
before failures had kinds says ``failure_rate``: it reads as ``retryable_rate``,
which is what the simulator took it for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from petriflow.errors import ProfileError
from petriflow.limits import MAX_COUNT, MAX_DOCUMENT_BYTES, failing, load_json, load_yaml, number, read_text
from petriflow.profile.distributions import ZERO, Dist, Fixed, parse_dist
from petriflow.profile.given import GIVEN, check_given, parse_key
from petriflow.profile.intervals import Estimate
from petriflow.rules import ERROR_KINDS
from petriflow.spec.model import Workflow, price_of

__all__ = ["FitQuality", "ModelProfile", "Profile", "ResourceProfile", "StepProfile"]


def _ro(m: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True)
class ModelProfile:
    """Prices of one model: dollars per 1M input and output tokens, and per call."""

    price_input: float = 0.0
    price_output: float = 0.0
    price_call: float = 0.0


@dataclass(frozen=True)
class ResourceProfile:
    """A shared resource: units in flight, and optional request and token rate limits (per minute)."""

    capacity: int
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None


@dataclass(frozen=True)
class StepProfile:
    """What one step does when it runs; ``by_model`` holds alternatives that ``sweep`` can switch to.

    Failures are per attempt and by kind (:data:`petriflow.rules.ERROR_KINDS`),
    because what follows a failure depends on its kind: a retryable one or a
    timeout is tried again while the retry rules allow, a fatal one gives up
    at once. A timeout drawn this way lasts the step's ``timeout`` (a latency
    draw beyond it is a timeout too). ``retry_after`` is what the server asks
    a retryable failure to wait (its ``Retry-After``, seconds; a draw of 0 is
    a failure without one): the back-off is never shorter
    (:func:`petriflow.rules.backoff_delay`), in the simulator as in the executor.
    """

    latency: Dist = ZERO
    input_tokens: Dist | None = None
    output_tokens: Dist | None = None
    retryable_rate: float = 0.0
    cost: float = 0.0
    model: str | None = None
    items: Dist | None = None
    by_model: Mapping[str, StepProfile] = field(default_factory=lambda: _ro(None))
    fatal_rate: float = 0.0
    timeout_rate: float = 0.0
    retry_after: Dist | None = None

    @property
    def failure_rate(self) -> float:
        """The share of attempts that fail, whatever the kind."""
        return self.retryable_rate + self.fatal_rate + self.timeout_rate

    def rate_of(self, kind: str) -> float:
        """The share of attempts that fail with ``kind`` (one of :data:`~petriflow.rules.ERROR_KINDS`)."""
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {kind!r}; one of {', '.join(ERROR_KINDS)}")
        rate: float = getattr(self, f"{kind}_rate")
        return rate


@dataclass(frozen=True)
class FitQuality:
    """How well a fitted family matches its data: the one-sample Kolmogorov-Smirnov statistic, and the
    information criterion (BIC) of every candidate family in ``criterion``."""

    family: str
    n: int
    ks: float
    p_value: float
    criterion: Mapping[str, float] = field(default_factory=lambda: _ro(None))


@dataclass(frozen=True)
class Profile:
    """Per step, route, loop, model and resource: the numbers the simulator draws from.

    ``quality`` is filled by ``fit`` (step -> quantity -> :class:`FitQuality`)
    and is informational only, as is ``estimates`` (step -> figure ->
    :class:`~petriflow.profile.intervals.Estimate`: sample size and 95%
    interval of each fitted rate and latency quantile). ``loops_given`` (step -> ``ROUTER=LABEL`` ->
    probability) and ``routes_given`` (step -> ``ROUTER=LABEL`` -> branch ->
    probability) hold the figures conditional on the route branch that led
    to the step (:mod:`petriflow.profile.given`); where none applies, the
    unconditional ``loops`` and ``routes`` do.
    """

    steps: Mapping[str, StepProfile] = field(default_factory=lambda: _ro(None))
    routes: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: _ro(None))
    loops: Mapping[str, float] = field(default_factory=lambda: _ro(None))
    models: Mapping[str, ModelProfile] = field(default_factory=lambda: _ro(None))
    resources: Mapping[str, ResourceProfile] = field(default_factory=lambda: _ro(None))
    quality: Mapping[str, Mapping[str, FitQuality]] = field(default_factory=lambda: _ro(None))
    loops_given: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: _ro(None))
    routes_given: Mapping[str, Mapping[str, Mapping[str, float]]] = field(default_factory=lambda: _ro(None))
    estimates: Mapping[str, Mapping[str, Estimate]] = field(default_factory=lambda: _ro(None))

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_workflow(cls, wf: Workflow) -> Profile:
        """The profile the workflow's own annotations describe (latency, tokens, cost, p, prices, limits)."""
        where = wf.source or wf.name
        steps = {}
        for s in wf.steps:
            w = f"{where}: step '{s.id}'"
            tokens = dict(s.tokens or {})
            steps[s.id] = StepProfile(
                latency=parse_dist(s.latency, where=f"{w}.latency") if s.latency is not None else Fixed(0.0),
                input_tokens=parse_dist(tokens["input"], where=f"{w}.tokens.input") if "input" in tokens else None,
                output_tokens=parse_dist(tokens["output"], where=f"{w}.tokens.output") if "output" in tokens else None,
                retryable_rate=float(s.failure_rate or 0.0),  # the workflow's annotation: retryable failures
                cost=float(s.cost or 0.0),
                model=s.model,
                items=Fixed(float(s.map.max)) if s.map is not None else None,
            )
        return cls(
            steps=_ro(steps),
            routes=_ro({s.id: _ro({b.when: b.p for b in s.route}) for s in wf.steps if s.route}),
            loops=_ro({s.id: s.loop.p for s in wf.steps if s.loop is not None}),
            models=_ro({m.id: ModelProfile(m.price_input, m.price_output, m.price_call) for m in wf.models.values()}),
            resources=_ro({r.id: ResourceProfile(r.capacity, r.requests_per_minute, r.tokens_per_minute)
                           for r in wf.resources.values()}),
        )

    @classmethod
    def from_doc(cls, doc: Any, *, base: Profile | None = None, where: str = "<profile>") -> Profile:
        """Read a parsed document; keys it gives override ``base`` (e.g. :meth:`from_workflow`)."""
        base = base or cls()
        if doc is None:
            doc = {}
        if not isinstance(doc, Mapping):
            raise ProfileError("a profile must be a mapping", where=where,
                               hint="top-level keys: steps, routes, loops, models, resources")
        unknown = set(doc) - {"steps", "routes", "loops", "models", "resources", "workflow", "fit"}
        if unknown:
            raise ProfileError(f"unknown profile key `{min(unknown)}`", where=where,
                               hint="top-level keys: steps, routes, loops, models, resources")
        steps = dict(base.steps)
        for sid, raw in _mapping(doc, "steps", where).items():
            steps[sid] = _step(raw, steps.get(sid, StepProfile()), f"{where}: steps.{sid}")
        routes, routes_given = dict(base.routes), dict(base.routes_given)
        for sid, raw in _mapping(doc, "routes", where).items():
            w = f"{where}: routes.{sid}"
            if not isinstance(raw, Mapping) or not raw:
                raise ProfileError("a route is a mapping {branch label: probability}", where=w)
            given = raw.get(GIVEN)
            routes[str(sid)] = _branches({k: v for k, v in raw.items() if k != GIVEN}, w)
            if given is not None:
                if not isinstance(given, Mapping):
                    raise ProfileError("`given` maps ROUTER=LABEL to {branch label: probability}", where=f"{w}.given")
                routes_given[str(sid)] = _ro({parse_key(k, f"{w}.given"): _branches(v, f"{w}.given.{k}")
                                              for k, v in given.items()})
        loops, loops_given = dict(base.loops), dict(base.loops_given)
        for sid, raw in _mapping(doc, "loops", where).items():
            w = f"{where}: loops.{sid}"
            if isinstance(raw, Mapping):  # {p: P, given: {ROUTER=LABEL: P}}
                if set(raw) - {"p", GIVEN}:
                    raise ProfileError("a loop is a probability or {p: P, given: {ROUTER=LABEL: P}}", where=w)
                if "p" in raw:
                    loops[str(sid)] = _prob(raw["p"], f"{w}.p")
                given = raw.get(GIVEN) or {}
                if not isinstance(given, Mapping):
                    raise ProfileError("`given` maps ROUTER=LABEL to a probability", where=f"{w}.given")
                loops_given[str(sid)] = _ro({parse_key(k, f"{w}.given"): _prob(v, f"{w}.given.{k}")
                                             for k, v in given.items()})
            else:
                loops[str(sid)] = _prob(raw, w)
        models = dict(base.models)
        for mid, raw in _mapping(doc, "models", where).items():
            w = f"{where}: models.{mid}"
            if not isinstance(raw, Mapping) or set(raw) - {"price_input", "price_output", "price_call", "name"}:
                raise ProfileError("a model takes price_input, price_output, price_call", where=w,
                                   hint="dollars per 1M tokens, and per call")
            old = models.get(str(mid), ModelProfile())
            models[str(mid)] = ModelProfile(*(_nonneg(raw.get(k, getattr(old, k)), f"{w}.{k}")
                                              for k in ("price_input", "price_output", "price_call")))
        resources = dict(base.resources)
        for rid, raw in _mapping(doc, "resources", where).items():
            w = f"{where}: resources.{rid}"
            if not isinstance(raw, Mapping) or set(raw) - {"capacity", "requests_per_minute", "tokens_per_minute"}:
                raise ProfileError("a resource takes capacity, requests_per_minute, tokens_per_minute", where=w)
            prev = resources.get(str(rid), ResourceProfile(1))
            fail = failing(ProfileError, w)
            cap = int(number(raw.get("capacity", prev.capacity), what="capacity", lo=1, hi=MAX_COUNT, integer=True,
                             fail=fail))
            limits = [raw.get(k, getattr(prev, k)) for k in ("requests_per_minute", "tokens_per_minute")]
            resources[str(rid)] = ResourceProfile(cap, *(None if v is None else number(v, what=k, lo_open=True, fail=fail)
                                                         for k, v in zip(("requests_per_minute", "tokens_per_minute"), limits)))
        return cls(steps=_ro(steps), routes=_ro(routes), loops=_ro(loops), models=_ro(models),
                   resources=_ro(resources), quality=base.quality, loops_given=_ro(loops_given),
                   routes_given=_ro(routes_given))

    @classmethod
    def load(cls, path: str | Path, *, workflow: Workflow | None = None) -> Profile:
        """Read a YAML/JSON profile file; with ``workflow``, its annotations fill what the file leaves out."""

        p = Path(path)
        fail = failing(ProfileError, str(p))
        text = read_text(p, what="profile", max_bytes=MAX_DOCUMENT_BYTES, fail=fail)
        doc = load_json(text, fail=fail) if p.suffix.lower() == ".json" else load_yaml(text, fail=fail)
        base = cls.from_workflow(workflow) if workflow is not None else None
        profile = cls.from_doc(doc, base=base, where=str(p))
        if workflow is not None:
            profile.check(workflow, where=str(p))
        return profile

    # -- use ---------------------------------------------------------------------------
    def check(self, wf: Workflow, *, where: str = "<profile>") -> None:
        """Every name in the profile exists in ``wf`` and every route covers the workflow's branches."""
        ids = set(wf.step_ids)
        for sid in self.steps:
            if sid not in ids:
                raise ProfileError(f"profile names unknown step '{sid}'", where=where,
                                   hint=f"steps of {wf.name}: {', '.join(wf.step_ids)}")
        for sid, probs in self.routes.items():
            if sid not in ids or not wf.step(sid).route:
                raise ProfileError(f"'{sid}' is not a routing step", where=f"{where}: routes.{sid}",
                                   hint="routes are given for steps with `route:` in the workflow")
            labels = {b.when for b in wf.step(sid).route}
            if GIVEN in labels:
                raise ProfileError(f"'{sid}' has a branch labelled `{GIVEN}`, a word profiles reserve",
                                   where=f"{where}: routes.{sid}", hint="rename the branch")
            if set(probs) != labels:
                raise ProfileError(f"branches {sorted(probs)} do not match the workflow's {sorted(labels)}",
                                   where=f"{where}: routes.{sid}", hint="give one probability per branch label")
        for sid, given in self.routes_given.items():
            w = f"{where}: routes.{sid}.given"
            if sid not in self.routes:
                raise ProfileError(f"'{sid}' has conditional branches but no route", where=w)
            check_given(wf, given, w)
            for key, probs in given.items():
                if set(probs) != set(self.routes[sid]):
                    raise ProfileError(f"branches {sorted(probs)} do not match {sorted(self.routes[sid])}",
                                       where=f"{w}.{key}", hint="give one probability per branch label")
        for sid in {*self.loops, *self.loops_given}:
            if sid not in ids or wf.step(sid).loop is None:
                raise ProfileError(f"'{sid}' has no loop", where=f"{where}: loops.{sid}")
            check_given(wf, self.loops_given.get(sid, {}), f"{where}: loops.{sid}.given")
        for rid, rp in self.resources.items():
            if rid not in wf.resources:
                raise ProfileError(f"unknown resource '{rid}'", where=f"{where}: resources.{rid}",
                                   hint=f"resources of {wf.name}: {', '.join(wf.resources) or 'none'}")
            need = max((s.uses.get(rid, 0) for s in wf.steps), default=0)
            if rp.capacity < need:
                raise ProfileError(f"capacity {rp.capacity} of '{rid}' is less than the {need} units a step needs",
                                   where=f"{where}: resources.{rid}", hint=f"give it a capacity of at least {need}")
        for sid in ids:
            model = self.step(sid).model
            if model is not None and self.models and model not in self.models and wf.step(sid).kind in ("chat", "embed", "classify"):
                raise ProfileError(f"step '{sid}' uses model '{model}', which has no prices", where=where,
                                   hint=f"add it under `models:` (known: {', '.join(self.models)})")

    def step(self, sid: str) -> StepProfile:
        """The effective profile of a step: its ``by_model`` alternative when its model has one."""
        sp = self.steps.get(sid, StepProfile())
        alt = sp.by_model.get(sp.model) if sp.model is not None else None
        if alt is None:
            return sp
        return replace(alt, model=sp.model, by_model=sp.by_model,
                       items=alt.items if alt.items is not None else sp.items)

    def with_model(self, sid: str, model: str) -> Profile:
        """The same profile with ``sid`` calling ``model`` (its ``by_model`` entry, if any, applies)."""
        if model not in self.models:
            raise ProfileError(f"model '{model}' has no prices in the profile", where=f"steps.{sid}.model",
                               hint=f"add it under `models:` (known: {', '.join(self.models) or 'none'})")
        steps = dict(self.steps)
        steps[sid] = replace(steps.get(sid, StepProfile()), model=model)
        return replace(self, steps=_ro(steps))

    def with_resource(self, rid: str, **changes: Any) -> Profile:
        """The same profile with resource ``rid`` changed (capacity, requests/tokens per minute)."""
        if rid not in self.resources:
            raise ProfileError(f"unknown resource '{rid}'", hint=f"known: {', '.join(self.resources) or 'none'}")
        resources = dict(self.resources)
        resources[rid] = replace(resources[rid], **changes)
        return replace(self, resources=_ro(resources))

    def cost_per_call(self, sid: str) -> float:
        """Expected dollars of one attempt of ``sid``: per-call prices plus mean tokens times prices."""
        sp = self.step(sid)
        m = self.models.get(sp.model or "", ModelProfile())
        tin = sp.input_tokens.mean if sp.input_tokens is not None else 0.0
        tout = sp.output_tokens.mean if sp.output_tokens is not None else 0.0
        return float(sp.cost + price_of(m, tin, tout))

    # -- writing -----------------------------------------------------------------------
    def to_doc(self) -> dict[str, Any]:
        """The document :meth:`from_doc` reads back (fit quality goes under ``fit``, for people)."""
        doc: dict[str, Any] = {"steps": {sid: _step_doc(sp) for sid, sp in self.steps.items()}}
        if self.routes:
            doc["routes"] = {k: dict(v) for k, v in self.routes.items()}
            for k, given in self.routes_given.items():
                if given:
                    doc["routes"][k][GIVEN] = {key: dict(p) for key, p in given.items()}
        if self.loops:
            doc["loops"] = {k: {"p": p, GIVEN: dict(self.loops_given[k])} if self.loops_given.get(k) else p
                            for k, p in self.loops.items()}
        if self.models:
            doc["models"] = {k: {"price_input": m.price_input, "price_output": m.price_output,
                                 "price_call": m.price_call} for k, m in self.models.items()}
        if self.resources:
            doc["resources"] = {k: {key: v for key, v in vars(r).items() if v is not None}
                                for k, r in self.resources.items()}
        if self.quality or self.estimates:
            doc["fit"] = {sid: {what: {"family": q.family, "n": q.n, "ks": round(q.ks, 4),
                                       "p_value": round(q.p_value, 4)} for what, q in qs.items()}
                          for sid, qs in self.quality.items()}
            for sid, es in self.estimates.items():
                doc["fit"].setdefault(sid, {}).update({what: e.to_doc() for what, e in es.items()})
        return doc

    def dump(self, path: str | Path) -> None:
        """Write the profile as YAML (or JSON when the name ends in ``.json``)."""
        import yaml

        p = Path(path)
        doc = self.to_doc()
        try:
            p.write_text(json.dumps(doc, indent=2) if p.suffix == ".json" else yaml.safe_dump(doc, sort_keys=False))
        except OSError as e:
            raise ProfileError(f"cannot write the profile: {e.strerror}", where=str(p),
                               hint="check that the directory exists and is writable") from None


def _mapping(doc: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = doc.get(key) or {}
    if not isinstance(value, Mapping):
        raise ProfileError(f"`{key}` must be a mapping by id", where=where)
    return value


def _branches(raw: Any, where: str) -> Mapping[str, float]:
    """A route's ``{branch label: probability}``, adding up to 1."""
    if not isinstance(raw, Mapping) or not raw:
        raise ProfileError("a route is a mapping {branch label: probability}", where=where)
    probs = {str(k): _prob(v, f"{where}.{k}") for k, v in raw.items()}
    if abs(sum(probs.values()) - 1.0) > 1e-6:
        raise ProfileError(f"branch probabilities sum to {sum(probs.values()):g}, not 1", where=where,
                           hint="make them add up to 1")
    return _ro(probs)


def _prob(v: Any, where: str) -> float:
    return number(v, what="a probability", hi=1.0, fail=failing(ProfileError, where))


def _nonneg(v: Any, where: str) -> float:
    return number(v, what="the amount", fail=failing(ProfileError, where))


_RATE_KEYS = tuple(f"{kind}_rate" for kind in ERROR_KINDS)
_STEP_KEYS = {"latency", "tokens", "failure_rate", *_RATE_KEYS, "retry_after", "cost", "model", "items", "models"}


def _step(raw: Any, old: StepProfile, where: str) -> StepProfile:
    if not isinstance(raw, Mapping):
        raise ProfileError("a step profile is a mapping", where=where, hint=f"keys: {', '.join(sorted(_STEP_KEYS))}")
    extra = set(raw) - _STEP_KEYS
    if extra:
        raise ProfileError(f"unknown key `{min(extra)}`", where=where, hint=f"keys: {', '.join(sorted(_STEP_KEYS))}")
    changes: dict[str, Any] = {}
    if "latency" in raw:
        changes["latency"] = parse_dist(raw["latency"], where=f"{where}.latency")
    tokens = raw.get("tokens") or {}
    if not isinstance(tokens, Mapping) or set(tokens) - {"input", "output"}:
        raise ProfileError("`tokens` is {input: DIST, output: DIST}", where=f"{where}.tokens")
    for k in ("input", "output"):
        if k in tokens:
            changes[f"{k}_tokens"] = parse_dist(tokens[k], where=f"{where}.tokens.{k}")
    if "failure_rate" in raw:  # a profile from before failures had kinds: the simulator retried them all
        if "retryable_rate" in raw:
            raise ProfileError("give `retryable_rate` or the older `failure_rate`, not both", where=where)
        changes["retryable_rate"] = _prob(raw["failure_rate"], f"{where}.failure_rate")
    for key in _RATE_KEYS:
        if key in raw:
            changes[key] = _prob(raw[key], f"{where}.{key}")
    total = sum(changes.get(key, getattr(old, key)) for key in _RATE_KEYS)
    if total > 1 + 1e-9:
        raise ProfileError(f"failure rates add up to {total:g}, more than every attempt", where=where,
                           hint=f"{', '.join(_RATE_KEYS)} are shares of all attempts")
    if "retry_after" in raw:
        changes["retry_after"] = None if raw["retry_after"] is None else parse_dist(raw["retry_after"],
                                                                                  where=f"{where}.retry_after")
    if "cost" in raw:
        changes["cost"] = _nonneg(raw["cost"], f"{where}.cost")
    if "model" in raw:
        changes["model"] = None if raw["model"] is None else str(raw["model"])
    if "items" in raw:
        changes["items"] = parse_dist(raw["items"], where=f"{where}.items")
    if "models" in raw:
        alts = raw["models"]
        if not isinstance(alts, Mapping):
            raise ProfileError("`models` maps a model id to a step profile", where=f"{where}.models")
        by_model = dict(old.by_model)
        for mid, alt in alts.items():
            by_model[str(mid)] = _step(alt, by_model.get(str(mid), replace(old, by_model=_ro(None))),
                                       f"{where}.models.{mid}")
        changes["by_model"] = _ro(by_model)
    return replace(old, **changes)


def _step_doc(sp: StepProfile) -> dict[str, Any]:
    doc: dict[str, Any] = {"latency": sp.latency.to_doc()}
    tokens = {k: d.to_doc() for k, d in (("input", sp.input_tokens), ("output", sp.output_tokens)) if d is not None}
    if tokens:
        doc["tokens"] = tokens
    for key in _RATE_KEYS:
        if getattr(sp, key):
            doc[key] = getattr(sp, key)
    if sp.retry_after is not None:
        doc["retry_after"] = sp.retry_after.to_doc()
    if sp.cost:
        doc["cost"] = sp.cost
    if sp.model is not None:
        doc["model"] = sp.model
    if sp.items is not None:
        doc["items"] = sp.items.to_doc()
    if sp.by_model:
        doc["models"] = {m: _step_doc(alt) for m, alt in sp.by_model.items()}
    return doc
