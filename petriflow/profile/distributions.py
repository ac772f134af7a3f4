"""Distributions of durations and token counts, parsed from profile and workflow files.

A distribution is written as a number (a fixed value) or a mapping
``{dist: FAMILY, ...parameters}`` with FAMILY one of ``fixed``,
``exponential``, ``lognormal``, ``gamma``, ``empirical``, ``mixture``:

>>> parse_dist(2.5).mean
2.5
>>> parse_dist({"dist": "exponential", "mean": 2}).mean
2.0
>>> round(parse_dist({"dist": "lognormal", "mu": 0, "sigma": 1}).mean, 4)
1.6487

The simulator never draws one number at a time (a numpy call costs about a
microsecond): it asks :meth:`Dist.sample` for a batch and walks the list, so
each family only needs a vectorised sampler and its mean (used by tests and
by ``expected_cost``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from petriflow.errors import ProfileError
from petriflow.limits import MAX_NUMBER, failing, number

__all__ = ["FAMILIES", "Dist", "Empirical", "Exponential", "Fixed", "Gamma", "LogNormal", "Mixture", "parse_dist"]

FAMILIES = ("fixed", "exponential", "lognormal", "gamma", "empirical", "mixture")


class Dist:
    """A non-negative distribution: draw a batch, know its mean, write itself back to a document."""

    family: str = ""

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` independent draws as a float64 array."""
        raise NotImplementedError

    @property
    def mean(self) -> float:
        raise NotImplementedError

    def to_doc(self) -> Any:
        """The YAML/JSON form that :func:`parse_dist` reads back."""
        raise NotImplementedError

    def scaled(self, factor: float) -> Dist:
        """The distribution of ``factor * X`` (e.g. a model twice as fast: ``scaled(0.5)``)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Fixed(Dist):
    value: float
    family = "fixed"

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, float(self.value))

    @property
    def mean(self) -> float:
        return float(self.value)

    def to_doc(self) -> Any:
        return float(self.value)

    def scaled(self, factor: float) -> Dist:
        return Fixed(self.value * factor)


ZERO = Fixed(0.0)
"""The instant: the default latency of a step with no annotation."""


@dataclass(frozen=True)
class Exponential(Dist):
    scale: float  # the mean, 1/rate
    family = "exponential"

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.scale, n)

    @property
    def mean(self) -> float:
        return float(self.scale)

    def to_doc(self) -> Any:
        return {"dist": "exponential", "mean": float(self.scale)}

    def scaled(self, factor: float) -> Dist:
        return Exponential(self.scale * factor)


@dataclass(frozen=True)
class LogNormal(Dist):
    mu: float
    sigma: float
    family = "lognormal"

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(self.mu, self.sigma, n)

    @property
    def mean(self) -> float:
        return math.exp(self.mu + self.sigma**2 / 2)

    def to_doc(self) -> Any:
        return {"dist": "lognormal", "mu": float(self.mu), "sigma": float(self.sigma)}

    def scaled(self, factor: float) -> Dist:
        return LogNormal(self.mu + math.log(factor), self.sigma) if factor > 0 else Fixed(0.0)


@dataclass(frozen=True)
class Gamma(Dist):
    shape: float
    scale: float
    family = "gamma"

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.gamma(self.shape, self.scale, n)

    @property
    def mean(self) -> float:
        return float(self.shape * self.scale)

    def to_doc(self) -> Any:
        return {"dist": "gamma", "shape": float(self.shape), "scale": float(self.scale)}

    def scaled(self, factor: float) -> Dist:
        return Gamma(self.shape, self.scale * factor)


@dataclass(frozen=True, eq=False)
class Empirical(Dist):
    """Resamples the measured values (the bootstrap): right when no family fits."""

    samples: tuple[float, ...]
    family = "empirical"

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(np.asarray(self.samples, dtype=float), n)

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples))

    def to_doc(self) -> Any:
        return {"dist": "empirical", "samples": [float(x) for x in self.samples]}

    def scaled(self, factor: float) -> Dist:
        return Empirical(tuple(x * factor for x in self.samples))


@dataclass(frozen=True, eq=False)
class Mixture(Dist):
    """Component ``i`` with probability ``weights[i]`` (e.g. cache hits and misses)."""

    components: tuple[Dist, ...]
    weights: tuple[float, ...]
    family = "mixture"

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        w = np.asarray(self.weights, dtype=float)
        pick = rng.choice(len(self.components), n, p=w / w.sum())
        out = np.empty(n)
        for i, c in enumerate(self.components):
            where = pick == i
            out[where] = c.sample(rng, int(where.sum()))
        return out

    @property
    def mean(self) -> float:
        w = np.asarray(self.weights, dtype=float)
        return float(sum(wi * c.mean for wi, c in zip(w / w.sum(), self.components)))

    def to_doc(self) -> Any:
        return {"dist": "mixture", "components": [c.to_doc() for c in self.components],
                "weights": [float(x) for x in self.weights]}

    def scaled(self, factor: float) -> Dist:
        return Mixture(tuple(c.scaled(factor) for c in self.components), self.weights)


_KEYS: Mapping[str, set[str]] = {
    "fixed": {"value"},
    "exponential": {"mean", "rate"},
    "lognormal": {"mu", "sigma", "mean"},
    "gamma": {"shape", "scale", "mean"},
    "empirical": {"samples"},
    "mixture": {"components", "weights"},
}


def _num(doc: Mapping[str, Any], key: str, where: str, *, positive: bool = True, default: float | None = None) -> float:
    if key not in doc:
        if default is not None:
            return default
        raise ProfileError(f"distribution needs `{key}`", where=where,
                           hint=f"write e.g. {{dist: {doc.get('dist')}, {key}: 1.0}}")
    return number(doc[key], what=f"`{key}`", lo=0.0 if positive else -MAX_NUMBER, lo_open=positive,
                  fail=failing(ProfileError, where))


def parse_dist(doc: Any, *, where: str = "distribution") -> Dist:
    """A :class:`Dist` from a number or ``{dist: FAMILY, ...}``; :class:`ProfileError` names ``where``.

    Its mean must be finite and at most :data:`~petriflow.limits.MAX_NUMBER`:
    ``{dist: lognormal, mu: 1000}`` is a valid-looking mean of ``e**1000``,
    which would turn every simulated figure into NaN.
    """
    if isinstance(doc, Dist):
        return doc
    dist = _parse(doc, where)
    try:
        mean = dist.mean
    except OverflowError:
        mean = math.inf
    if not mean <= MAX_NUMBER:
        raise ProfileError(f"the mean of this {dist.family} distribution is {mean:g}, more than {MAX_NUMBER:g}",
                           where=where, hint="check its parameters (lognormal's mu is the log of the median)")
    return dist


def _parse(doc: Any, where: str) -> Dist:
    if isinstance(doc, bool):
        raise ProfileError(f"expected a number or a distribution, got {doc!r}", where=where)
    if isinstance(doc, (int, float)):
        if not 0 <= doc <= MAX_NUMBER:  # false for NaN; no float() of a huge int
            raise ProfileError(f"a fixed value must be a finite number >= 0 and <= {MAX_NUMBER:g}, got {doc!r}",
                               where=where)
        return Fixed(float(doc))
    if not isinstance(doc, Mapping) or "dist" not in doc:
        raise ProfileError(f"expected a number or {{dist: FAMILY, ...}}, got {doc!r}", where=where,
                           hint=f"FAMILY is one of {', '.join(FAMILIES)}")
    family = doc["dist"]
    if family not in _KEYS:
        raise ProfileError(f"unknown distribution family {family!r}", where=where,
                           hint=f"use one of {', '.join(FAMILIES)}")
    extra = set(doc) - _KEYS[family] - {"dist"}
    if extra:
        raise ProfileError(f"{family} does not take `{min(extra)}`", where=where,
                           hint=f"{family} takes {', '.join(sorted(_KEYS[family]))}")
    if family == "fixed":
        return Fixed(_num(doc, "value", where, positive=False))
    if family == "exponential":
        if "rate" in doc:
            return Exponential(1.0 / _num(doc, "rate", where))
        return Exponential(_num(doc, "mean", where))
    if family == "lognormal":
        sigma = _num(doc, "sigma", where)
        if "mu" in doc:
            return LogNormal(_num(doc, "mu", where, positive=False), sigma)
        return LogNormal(math.log(_num(doc, "mean", where)) - sigma**2 / 2, sigma)
    if family == "gamma":
        shape = _num(doc, "shape", where)
        if "scale" in doc:
            return Gamma(shape, _num(doc, "scale", where))
        return Gamma(shape, _num(doc, "mean", where) / shape)
    if family == "empirical":
        samples = doc.get("samples")
        if not isinstance(samples, Sequence) or not samples or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= MAX_NUMBER for x in samples):
            raise ProfileError("empirical needs `samples`: a non-empty list of numbers >= 0", where=where)
        return Empirical(tuple(float(x) for x in samples))
    comps = doc.get("components")
    if not isinstance(comps, Sequence) or not comps:
        raise ProfileError("mixture needs `components`: a non-empty list of distributions", where=where)
    parts = tuple(parse_dist(c, where=f"{where}.components[{i}]") for i, c in enumerate(comps))
    weights = doc.get("weights", [1.0] * len(parts))
    if (not isinstance(weights, Sequence) or len(weights) != len(parts)
            or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and 0 <= w <= MAX_NUMBER
                       for w in weights) or sum(weights) <= 0):
        raise ProfileError("mixture `weights` must be one number >= 0 per component, not all zero", where=where)
    return Mixture(parts, tuple(float(w) for w in weights))
