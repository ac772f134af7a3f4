"""How cases arrive: open Poisson arrivals, a closed population with think time, or a replay.

An open load keeps arriving whatever the system does (requests from many
independent users); a closed one starts a user's next case only after the
last one ended (a fixed pool of workers or clients), so it cannot overload
the system; a replay uses recorded arrival times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from petriflow.errors import ProfileError
from petriflow.limits import MAX_CASES, failing, number
from petriflow.profile.distributions import ZERO, Dist, parse_dist

__all__ = ["Load"]


@dataclass(frozen=True)
class Load:
    """How cases arrive: ``poisson`` at ``rate`` per second, a ``closed`` population of ``users`` who
    each start a new case ``think`` seconds after their last one ended, or ``replay`` of arrival times.

    ``Load.closed(users=1)`` (the default) runs one case at a time: latency without contention.
    """

    kind: str
    rate: float = 0.0
    users: int = 1
    think: Dist = ZERO
    times: tuple[float, ...] = ()

    @classmethod
    def poisson(cls, rate: float) -> Load:
        return cls("poisson", rate=number(rate, what="arrival rate", lo_open=True, fail=failing(ProfileError, "--rate")))

    @classmethod
    def closed(cls, users: int = 1, think: Dist | float | dict[str, Any] = 0.0) -> Load:
        if isinstance(users, int) and users < 1:
            raise ProfileError(f"a closed population needs at least 1 user, got {users}", where="--users")
        users = int(number(users, what="users", lo=1, hi=MAX_CASES, integer=True, fail=failing(ProfileError, "--users")))
        return cls("closed", users=users, think=parse_dist(think, where="think time"))

    @classmethod
    def replay(cls, times: Sequence[float]) -> Load:
        fail = failing(ProfileError, "arrival times")
        ts = tuple(sorted(number(t, what=f"arrival time {i + 1}", fail=fail) for i, t in enumerate(times)))
        if not ts:
            raise ProfileError("replay needs a non-empty list of arrival times >= 0", where="arrival times")
        return cls("replay", times=ts)
