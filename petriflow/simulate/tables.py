"""Compile a :class:`WorkflowNet` and a :class:`Profile` into the flat tables the simulator loop reads.

The loop never looks at ids, origins or dicts: every transition becomes
tuples of ``(place, weight)`` ints split by what the place is, and every
step a :class:`StepTable` of transition numbers and random streams. Places
fall into four kinds:

* ``PLAIN`` places hold per-case tokens; producing one offers the
  transitions that consume it (``candidates``) a chance to fire;
* ``RUNNING`` places (a step's running place) are never stored: producing a token
  schedules the step's completion after a latency draw, and the completion
  picks one of the transitions that consume it (finish, a route branch, the
  loop back, fail, give up) by the profile;
* ``BACKOFF`` places (a step's back-off place) receive their token after the retry
  delay, which then enables ``s.retry``;
* the ``SINK``: producing there completes the case.

Resource places are not per case: they become shared counters with FIFO
queues (see :mod:`petriflow.simulate.engine`). What each place and
transition is (running, back-off, resource; finish, branch, loop back, fail,
retry, give up, spawn k) comes from the net's
:class:`~petriflow.net.wiring.NetWiring`, never from its display words.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from petriflow.errors import ProfileError
from petriflow.net.petrinet import WorkflowNet
from petriflow.net.sparse import as_sparse
from petriflow.net.wiring import TransitionRole, Way
from petriflow.profile.distributions import Dist
from petriflow.profile.model import ModelProfile, Profile
from petriflow.rules import ERROR_KINDS, billed
from petriflow.spec.model import Workflow, price_of

__all__ = ["BACKOFF", "PLAIN", "RUNNING", "SINK", "StepTable", "Tables", "compile_tables", "given", "stream"]

PLAIN, RUNNING, BACKOFF, SINK = 0, 1, 2, 3
T = TypeVar("T")


def stream(draw: Callable[[int], np.ndarray], *, first: int = 256, largest: int = 16384) -> Iterator[Any]:
    """An endless iterator over batched draws: one numpy call per batch, ``next()`` per use.

    Batches grow from ``first`` to ``largest`` so that short runs draw little
    and long runs pay one numpy call per thousands of draws.
    """
    n = first
    while True:
        yield from draw(n).tolist()
        n = min(2 * n, largest)


def rng_for(seed: int, *key: str) -> np.random.Generator:
    """An independent generator per (seed, stream name): configurations in a sweep that share a step
    share its random numbers (common random numbers), so their differences are less noisy."""
    return np.random.default_rng([seed, zlib.crc32("/".join(key).encode())])


@dataclass
class StepTable:
    """Everything the loop needs about one step; transition numbers are -1 when absent."""

    index: int
    name: str
    finish: int = -1
    routes: list[int] = field(default_factory=list)
    loop: int = -1
    loop_budget: int = -1
    exhausted: int = -1
    fail_out: int = -1  # failing for good hands over to the on_failure handler instead of killing the case  # the route transition taken when the loop is wanted but its budget is spent
    fail: int = -1
    retries: int = -1
    retry: int = -1  # the transition out of s.backoff: its firing starts a retried attempt
    give_up: int = -1
    release: tuple[tuple[int, int], ...] = ()  # resources held while running (returned if the case dies)
    timeout: float = float("inf")
    step_timeout: float | None = None  # config.step_timeout: over all attempts of one call (rules.attempt_timeout)
    max_attempts: int = 1
    backoff: float = 0.0
    backoff_max: float = 0.0
    jitter: bool = False
    tpm: bool = False
    latency: Iterator[float] = field(default_factory=lambda: iter(()))
    failing: Iterator[str | None] | None = None  # per attempt: the kind of its failure (rules.ERROR_KINDS), or None
    retry_after: Iterator[float] | None = None  # per retryable failure: the server's Retry-After (0: none)
    cost: Iterator[float] = field(default_factory=lambda: iter(()))
    call_tokens: Iterator[list[float]] | None = None
    branch: Iterator[int] | None = None
    looping: Iterator[bool] | None = None
    # conditional on the route branch that led here (petriflow.profile.given): (that branch's mask bit, its
    # stream), first match wins; None when the profile gives no condition, so the draw is as before
    branch_given: list[tuple[int, Iterator[int]]] | None = None
    looping_given: list[tuple[int, Iterator[bool]]] | None = None
    # a route whose branches some condition names: the mask bit each branch sets, and the mask that
    # clears this router's bits first (so a router inside a loop is known by its latest branch)
    route_bits: list[int] | None = None
    route_keep: int = -1
    items: Iterator[int] | None = None
    uniform: Iterator[float] | None = None
    backoff_candidates: tuple[int, ...] = ()
    bit: int = 0
    plain: bool = False  # finishes one way: no route, no loop (the loop's fast path)


@dataclass
class Tables:
    """The net as int tuples, per transition and per place, plus steps and resources."""

    pre_flow: list[tuple[tuple[int, int], ...]]
    pre_res: list[tuple[tuple[int, int], ...]]
    post_plain: list[tuple[tuple[int, int], ...]]
    post_res: list[tuple[tuple[int, int], ...]]
    post_timed: list[tuple[tuple[int, int, int], ...]]  # (kind, step, place) per token
    post_sink: list[bool]
    candidates: list[tuple[int, ...]]
    spawn_group: dict[int, list[int]]
    spawn_step: dict[int, int]
    step_of_transition: list[int]
    initial: list[int]
    begin: int
    steps: list[StepTable]
    resources: list[str]
    capacity: list[int]
    rpm: list[float | None]
    tpm: list[float | None]
    net: WorkflowNet


def _call_cost(profile: Profile, sid: str, rng: np.random.Generator) -> tuple[Callable[[int], np.ndarray],
                                                                              Callable[[int], np.ndarray]]:
    """Samplers of the dollars of one attempt and of its total tokens (input + output)."""
    sp = profile.step(sid)
    m = profile.models.get(sp.model or "", ModelProfile())
    tin: Dist | None = sp.input_tokens
    tout: Dist | None = sp.output_tokens

    def both(n: int) -> tuple[np.ndarray, np.ndarray]:
        a = tin.sample(rng, n) if tin is not None else np.zeros(n)
        b = tout.sample(rng, n) if tout is not None else np.zeros(n)
        return billed(price_of(m, a, b), sp.cost), a + b

    def cost(n: int) -> np.ndarray:
        if tin is None and tout is None:
            return np.full(n, billed(price_of(m, 0.0, 0.0), sp.cost))
        return both(n)[0]

    def paired(n: int) -> np.ndarray:
        c, t = both(n)
        return np.column_stack([c, t])

    return cost, paired


def given(conditions: list[tuple[int, Iterator[T]]], mask: int, otherwise: Iterator[T]) -> Iterator[T]:
    """The stream of the first condition whose route branch is on the token's path (``mask``), else ``otherwise``."""
    for bit, draws in conditions:
        if mask & bit:
            return draws
    return otherwise


def _choices(g: np.random.Generator, probs: list[float]) -> Iterator[int]:
    p = np.asarray(probs) / sum(probs)
    return stream(lambda n: g.choice(len(p), n, p=p))


def _coins(g: np.random.Generator, p: float) -> Iterator[bool]:
    return stream(lambda n: g.random(n) < p)


def _open_streams(st: StepTable, profile: Profile, sid: str, *, seed: int, probs: list[float], loop_p: float,
                  items_max: int, probs_given: Sequence[tuple[int, str, list[float]]] = (),
                  loop_given: Sequence[tuple[int, str, float]] = ()) -> None:
    """One batched random stream per quantity of step ``sid``, each from its own generator.

    A conditional figure (``*_given``: mask bit, ``ROUTER=LABEL``, figure) gets a generator of its own,
    so adding a condition leaves the unconditional draws, and every other step's, as they were.
    """
    sp = profile.step(sid)

    def gen(*what: str) -> np.random.Generator:
        return rng_for(seed, sid, *what)

    latency, g_latency = sp.latency, gen("latency")
    st.latency = stream(lambda n: latency.sample(g_latency, n))
    if sp.failure_rate > 0:
        # one uniform per attempt cut at the cumulative rates, retryable first: a profile with only
        # retryable failures draws exactly as when failures had no kinds
        g_fail = gen("failure")
        cuts = np.cumsum([sp.rate_of(kind) for kind in ERROR_KINDS])
        kinds = np.array([*ERROR_KINDS, None], dtype=object)
        st.failing = stream(lambda n: kinds[np.searchsorted(cuts, g_fail.random(n), side="right")])
        if sp.retry_after is not None:
            waits, g_wait = sp.retry_after, gen("retry_after")
            st.retry_after = stream(lambda n: np.maximum(waits.sample(g_wait, n), 0.0))
    cost, paired = _call_cost(profile, sid, gen("cost"))
    st.cost = stream(cost)
    if st.tpm:
        st.call_tokens = stream(paired)
    if probs:
        st.branch = _choices(gen("route"), probs)
        if probs_given:
            st.branch_given = [(bit, _choices(gen("route", key), ps)) for bit, key, ps in probs_given]
    if st.loop >= 0:
        st.looping = _coins(gen("loop"), loop_p)
        if loop_given:
            st.looping_given = [(bit, _coins(gen("loop", key), p)) for bit, key, p in loop_given]
    if items_max:
        g_items, items = gen("items"), sp.items

        def draw_items(n: int) -> np.ndarray:
            raw = np.rint(items.sample(g_items, n)) if items is not None else np.full(n, items_max)
            out: np.ndarray = np.clip(raw, 1, items_max).astype(int)
            return out

        st.items = stream(draw_items)
    if st.fail >= 0 or st.give_up >= 0:
        g_jitter = gen("jitter")
        st.uniform = stream(lambda n: g_jitter.random(n))


def _arcs(matrix: np.ndarray) -> list[list[tuple[int, int]]]:
    """Per row (transition) of an arc matrix its ``(place, weight)`` pairs with a weight, places ascending.

    Either form: a net too big for dense matrices keeps them sparse (:mod:`petriflow.net.sparse`).
    """
    arcs = as_sparse(matrix)
    return [list(zip(*(a.tolist() for a in arcs.row(t)))) for t in range(arcs.shape[0])]


def compile_tables(net: WorkflowNet, wf: Workflow, profile: Profile, *, seed: int) -> Tables:
    """Flatten ``net`` for the loop and open one random stream per step and quantity."""
    P, T = len(net.places), len(net.transitions)
    wiring = net.require_wiring()
    pix, tix = net.place_index, net.transition_index
    res_of = {pix(p): i for i, p in enumerate(wiring.resources.values())}
    names = list(wiring.resources)
    step_ids = list(wf.step_ids)
    sidx = {s: i for i, s in enumerate(step_ids)}
    kind = [PLAIN] * P
    place_step = [-1] * P
    for sid, w in wiring.steps.items():
        kind[pix(w.running)], place_step[pix(w.running)] = RUNNING, sidx[sid]
        if w.retry is not None:
            kind[pix(w.retry.backoff)], place_step[pix(w.retry.backoff)] = BACKOFF, sidx[sid]
    kind[pix(wiring.sink)] = SINK

    pre, post = _arcs(net.pre), _arcs(net.post)  # per transition its (place, weight) arcs: the matrices are sparse
    pre_flow, pre_res, post_plain, post_res, post_timed, post_sink = [], [], [], [], [], []
    for t in range(T):
        pre_flow.append(tuple((p, w) for p, w in pre[t] if p not in res_of and kind[p] != RUNNING))
        pre_res.append(tuple((res_of[p], w) for p, w in pre[t] if p in res_of))
        post_plain.append(tuple((p, w) for p, w in post[t] if p not in res_of and kind[p] == PLAIN))
        post_res.append(tuple((res_of[p], w) for p, w in post[t] if p in res_of))
        post_timed.append(tuple((kind[p], place_step[p], p) for p, w in post[t]
                                for _ in range(w) if kind[p] in (RUNNING, BACKOFF)))
        post_sink.append(any(kind[p] == SINK for p, _ in post[t]))

    # completions: the transitions that end an attempt (finish, a route branch, the loop back, fail, give up),
    # picked by the profile when the latency draw is over; spawns grouped by the way into the map step
    completion = [False] * T
    tables: list[StepTable] = [StepTable(i, s) for i, s in enumerate(step_ids)]
    labels: dict[str, list[str]] = {}
    spawn_group: dict[int, list[int]] = {}
    spawn_step: dict[int, int] = {}
    step_of_t = [-1] * T
    for sid, w in wiring.steps.items():
        st = tables[sidx[sid]]
        for tid, _ in w.transitions():
            step_of_t[tix(tid)] = st.index
        for f in w.finishes:
            if f.role is TransitionRole.ROUTE:
                st.routes.append(tix(f.transition))
                labels.setdefault(sid, []).append(f.label)
            elif f.loop is not None:
                st.loop, st.loop_budget = tix(f.transition), pix(f.loop.budget)
            else:
                st.finish = tix(f.transition)
        if w.map is not None:
            st.finish = tix(w.map.item_finish)
        if w.retry is not None:
            st.fail, st.retries, st.retry = tix(w.retry.fail), pix(w.retry.budget), tix(w.retry.retry)
        if w.give_up is not None:
            st.give_up = tix(w.give_up.transition)
        if w.on_failure is not None:
            st.fail_out = tix(w.on_failure.transition)
        for t in (st.finish, *st.routes, st.loop, st.fail, st.give_up, st.fail_out):
            if t >= 0:
                completion[t] = True
        by_way: dict[Way, dict[int, int]] = {}
        for start in w.starts:
            if start.items:
                by_way.setdefault(start.way, {})[start.items] = tix(start.transition)
        for by_n in by_way.values():
            ordered = [by_n[n] for n in sorted(by_n)]
            for t in ordered:
                spawn_group[t] = ordered
                spawn_step[t] = st.index

    consumers: list[list[int]] = [[] for _ in range(P)]
    for t in range(T):
        if completion[t] or (t in spawn_group and spawn_group[t][0] != t):
            continue  # completions are picked by the profile; a spawn group is offered once
        for p, _ in pre_flow[t]:
            consumers[p].append(t)
    candidates = []
    for t in range(T):
        seen: list[int] = []
        for p, _ in post_plain[t]:
            seen += [u for u in consumers[p] if u not in seen]
        candidates.append(tuple(seen))
    for p in range(P):
        if kind[p] == BACKOFF:
            tables[place_step[p]].backoff_candidates = tuple(consumers[p])

    # resources with the profile's capacity and limits
    capacity, rpm, tpm = [], [], []
    for r in names:
        rp = profile.resources.get(r)
        capacity.append(rp.capacity if rp else wf.resources[r].capacity)
        rpm.append(rp.requests_per_minute if rp else None)
        tpm.append(rp.tokens_per_minute if rp else None)
    initial = net.initial.tolist()

    # one mask bit, above the steps' bits, per route branch that a condition names
    named = [key for given in (*profile.loops_given.values(), *profile.routes_given.values()) for key in given]
    bit_of = {key: 1 << (len(tables) + j) for j, key in enumerate(dict.fromkeys(named))}
    for st in tables:
        main = wf.root_of(st.name)
        bits = [bit_of.get(f"{main}={label}", 0) for label in labels.get(st.name, [])]
        if any(bits):
            st.route_bits, st.route_keep = bits, ~sum(bits)

    for st in tables:
        sid = st.name
        st.bit = 1 << st.index
        st.plain = not st.routes and st.loop < 0 and st.finish >= 0
        step = wf.step(sid)
        main = wf.root_of(sid)  # a fallback routes and loops as the step it finally stands in for
        st.release = pre_res[tix(wiring.steps[sid].attempts[0])]
        st.timeout = float(step.timeout) if step.timeout else float("inf")
        raw_deadline = step.config.get("step_timeout")
        st.step_timeout = float(raw_deadline) if raw_deadline is not None else None
        st.max_attempts = step.retry.max_attempts
        st.backoff, st.backoff_max, st.jitter = step.retry.backoff, step.retry.backoff_max, step.retry.jitter
        st.tpm = any(tpm[r] is not None for r, _ in st.release)
        probs: dict[str, float] = {}
        if st.routes:
            probs = dict(profile.routes.get(main) or {b.when: b.p for b in wf.step(main).route})
            branches = labels[sid]  # in the order of st.routes
            if set(branches) != set(probs):
                raise ProfileError(f"route branches {sorted(probs)} do not match {sorted(branches)}",
                                   where=f"routes.{main}")
            probs = {label: probs[label] for label in branches}
        main_loop = wf.step(main).loop
        if main_loop is not None and main_loop.exhausted is not None and st.routes:
            st.exhausted = st.routes[labels[sid].index(main_loop.exhausted)]
        loop_p = profile.loops.get(main, main_loop.p if main_loop is not None else 0.0)
        probs_given = [(bit_of[key], key, [ps[label] for label in probs])
                       for key, ps in profile.routes_given.get(main, {}).items()] if probs else []
        loop_given = [(bit_of[key], key, p) for key, p in profile.loops_given.get(main, {}).items()]
        _open_streams(st, profile, sid, seed=seed, probs=list(probs.values()), loop_p=loop_p,
                      items_max=step.map.max if step.map is not None else 0, probs_given=probs_given,
                      loop_given=loop_given)
    begin = tix(wiring.begin)
    return Tables(pre_flow, pre_res, post_plain, post_res, post_timed, post_sink, candidates, spawn_group,
                  spawn_step, step_of_t, initial, begin, tables, names, capacity, rpm, tpm, net)
