"""Place invariants grown by propagation, for the reductions: a shared resource that never binds is implicit.

A resource place ``r`` (capacity ``c``, taken by a step's start and retry,
given back by its finish, failure and give-up) touches every step that uses
it, so no path around those steps is private and nothing near them is
agglomerated; where the control flow already keeps the steps apart (a
chain of steps each using ``r``, a fan-out of ``k <= c`` branches) the
place never disables anything, and removing it lets the other rules fold the
steps away. The rule (structurally implicit places: J. M. Colom and M.
Silva, *Improving the linearly based characterization of P/T nets*, LNCS
483, 1991; M. Silva, E. Teruel, J. M. Colom, *Linear algebraic and linear
programming techniques for the analysis of place/transition net systems*,
LNCS 1491, 1998, section 5; Berthelot 1986): if integers ``y >= 0`` with
``y_r = 0`` satisfy, for every transition ``u``,

    sum_q y_q C[q, u] = C[r, u]            (C = post - pre)

then ``M(r) = y.M + mu`` in every reachable marking, ``mu = M0(r) - y.M0``.
If moreover every consumer ``t`` of ``r`` has ``pre[t, r] <= y.pre[t] + mu``,
then whenever ``t``'s other inputs are marked, ``y.M >= y.pre[t]`` (``y >= 0``)
and so ``M(r) >= pre[t, r]``: ``r`` never disables a transition, and its
count is a function of the other places. Dropping ``r`` maps the reachable
markings one to one onto those of the smaller net, edges and dead markings
included, so deadlock-freedom, boundedness of the other places, dead
transitions and liveness are kept, and every firing sequence (a witness) is
the same on both nets. A final marking that fixes ``r`` stays exact when
``y`` only weighs places the final marking fixes and ``y.M_f + mu`` is
``r``'s final count: then a marking of the smaller net is final iff the
original one is (so soundness is kept, and so is liveness in the
short-circuited net, whose extra edges go from final markings to ``M0``).

``r``'s own largest count is recovered by a second invariant: integers
``x >= 0`` with ``x_r = 1`` and ``x.C = 0`` that weigh no other initially
marked place give ``M(r) <= M0(r)`` (and ``M0`` is reachable), so the bound
of ``r`` is exactly ``M0(r)``, its capacity.

Finding ``y`` is a linear program in general; here it is solved exactly, in
integers and in time linear in the net, by propagation: seeds read off the
consumers of ``r`` (``y_q = pre[t, r] / pre[t, q]`` when ``q`` is ``t``'s only
other input: the tight choice, ``mu = 0`` when the capacity is just enough),
then any equation with one unknown left fixes it, and when none has, one
unknown is set to 0. That may miss an invariant an LP would find (a map of
``k`` items under a resource of capacity ``>= k``), never accepts a wrong
one: every equation is checked exactly before the place is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping

Arcs = dict[str, int]


def deltas(pre: Mapping[str, Arcs], post: Mapping[str, Arcs]) -> dict[str, Arcs]:
    """Per transition, its net change ``post - pre`` on each place it changes (read arcs left out)."""
    out: dict[str, Arcs] = {}
    for t, ins in pre.items():
        d = dict(post[t])
        for q, w in ins.items():
            d[q] = d.get(q, 0) - w
        out[t] = {q: w for q, w in d.items() if w}
    return out


def solve(delta: Mapping[str, Arcs], p: str, seeds: Mapping[str, int], sign: int) -> dict[str, int] | None:
    """Integers ``y >= 0`` (``y_p`` left out) with ``sum_q y_q delta[u][q] = sign * delta[u][p]`` for every ``u``.

    Grown from ``seeds`` by propagation (see the module docstring); None when it runs into a negative or
    fractional value, a seed that contradicts another, or an equation that does not hold. Places it never
    reaches are 0 and not in the result.
    """
    touch: dict[str, list[str]] = {}
    count: dict[str, int] = {}
    acc: dict[str, int] = {}
    rhs: dict[str, int] = {}
    for u, d in delta.items():
        rhs[u] = sign * d.get(p, 0)
        acc[u] = 0
        count[u] = 0
        for q in d:
            if q != p:
                touch.setdefault(q, []).append(u)
                count[u] += 1
    if any(count[u] == 0 and rhs[u] for u in delta):
        return None  # a transition changes p and nothing else: no invariant
    y: dict[str, int] = {}
    ready: list[str] = []

    def assign(q: str, v: int) -> bool:
        y[q] = v
        for u in touch.get(q, ()):
            count[u] -= 1
            acc[u] += v * delta[u][q]
            if count[u] == 1:
                ready.append(u)
            elif count[u] == 0 and acc[u] != rhs[u]:
                return False
        return True

    for q, v in seeds.items():
        if v < 0 or (q in y and y[q] != v):
            return None
        if q not in y and not assign(q, v):
            return None
    order = list(delta)
    pointer = 0
    while True:
        while ready:
            u = ready.pop()
            if count[u] != 1:
                continue
            q = next(q for q in delta[u] if q != p and q not in y)
            c = delta[u][q]
            need = rhs[u] - acc[u]
            if need % c or need // c < 0 or not assign(q, need // c):
                return None
        while pointer < len(order) and count[order[pointer]] < 2:
            pointer += 1
        if pointer == len(order):
            break
        u = order[pointer]  # stuck: every open equation has two unknowns or more; one of them is 0
        q = next(q for q in delta[u] if q != p and q not in y)
        if not assign(q, 0):
            return None
    return {q: v for q, v in y.items() if v}


def never_binds(
    pre: Mapping[str, Arcs],
    post: Mapping[str, Arcs],
    cons: Mapping[str, Mapping[str, None]],
    delta: Mapping[str, Arcs],
    p: str,
    initial: Mapping[str, int],
    final_of: Mapping[str, int | None],
) -> tuple[bool, bool]:
    """Whether ``p`` is implicit by an invariant ``M(p) = y.M + mu`` (module docstring), and whether its bound is ``M0(p)``.

    The second answer is only meaningful when the first is True.
    """
    seeds: dict[str, int] = {}
    for t in cons[p]:
        others = [(q, w) for q, w in pre[t].items() if q != p]
        if len(others) != 1:
            continue
        q, w = others[0]
        need = pre[t][p]
        if need % w or seeds.get(q, need // w) != need // w:
            return False, False
        seeds[q] = need // w
    if not seeds:
        return False, False
    y = solve(delta, p, seeds, 1)
    if y is None:
        return False, False
    mu = initial[p] - sum(v * initial[q] for q, v in y.items())
    for t in cons[p]:
        if pre[t][p] > sum(y.get(q, 0) * w for q, w in pre[t].items() if q != p) + mu:
            return False, False
    f = final_of[p]
    if f is not None:
        if any(final_of[q] is None for q in y):
            return False, False
        if sum(v * (final_of[q] or 0) for q, v in y.items()) + mu != f:
            return False, False
    return True, _bounded_by_initial(post, cons, delta, p, initial)


def _bounded_by_initial(
    post: Mapping[str, Arcs],
    cons: Mapping[str, Mapping[str, None]],
    delta: Mapping[str, Arcs],
    p: str,
    initial: Mapping[str, int],
) -> bool:
    """Whether a semiflow ``x >= 0``, ``x_p = 1``, weighs no other initially marked place: then ``M(p) <= M0(p)``.

    Seeds: what a consumer of ``p`` holds it in (``x_q = pre[t, p] / post[t, q]`` for its only output ``q``,
    a resource's ``running`` place).
    """
    seeds: dict[str, int] = {}
    for t in cons[p]:
        outs = [(q, w) for q, w in post[t].items() if q != p]
        if len(outs) == 1 and delta[t].get(p, 0) < 0:
            q, w = outs[0]
            need = -delta[t][p]
            if need % w or seeds.get(q, need // w) != need // w:
                return False
            seeds[q] = need // w
    x = solve(delta, p, seeds, -1)
    return x is not None and all(initial[q] == 0 for q in x)
