"""The limiter a Ray batch's workers share (issue 14): capacity holds across holders, a dead holder's units return.

:class:`~petriflow.execute.limiter.Limiter` is the body of the Ray actor;
here it runs on one event loop without Ray, as the actor runs it, and
:class:`Handle` stands in for the actor handle only in how a call is made
(``.remote`` schedules the method on the loop, as Ray runs it on the actor's).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from petriflow.execute.limiter import Limiter, WorkerLimits

USES = (("llm", 1),)
UNLIMITED = {"rpm": None, "tpm": None}


class _Method:
    def __init__(self, handle: Handle, name: str) -> None:
        self.handle, self.name = handle, name

    def remote(self, *args: Any) -> asyncio.Future[Any]:
        self.handle.calls[self.name] += 1
        result = getattr(self.handle.limiter, self.name)(*args)
        if asyncio.iscoroutine(result):
            return asyncio.ensure_future(result)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(result)
        return done


class Handle:
    """A :class:`Limiter` called as its Ray actor handle is (``handle.acquire.remote(...)``), counting the calls."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter, self.calls = limiter, Counter[str]()

    def __getattr__(self, name: str) -> _Method:
        return _Method(self, name)


def test_capacity_holds_across_workers_and_a_dead_workers_units_come_back() -> None:
    async def main() -> list[str]:
        lim = Limiter({"llm": {"capacity": 2, **UNLIMITED}})
        got: list[str] = []

        async def take(holder: str) -> None:
            await lim.acquire(holder, USES, (), 0)
            got.append(holder)

        await take("w0")
        await take("w1")
        third = asyncio.ensure_future(take("w2"))
        await asyncio.sleep(0.01)
        assert got == ["w0", "w1"] and lim.in_use() == {"llm": 2}  # the third waits: 2 units across all workers
        lim.release("w2", USES)  # a release by a holder that holds nothing gives nothing back
        await asyncio.sleep(0.01)
        assert not third.done()
        lim.forget("w0")  # w0 died: its unit returns and the waiting worker gets it
        await third
        lim.release("w1", USES)
        return got + [str(lim.in_use()["llm"])]

    assert asyncio.run(main()) == ["w0", "w1", "w2", "1"]


def test_what_a_dead_worker_was_still_waiting_for_is_not_lost() -> None:
    """A worker dies while its call waits at the limiter: once granted, those units go back, not to the dead."""
    async def main() -> dict[str, int]:
        lim = Limiter({"llm": {"capacity": 1, **UNLIMITED}})
        await lim.acquire("w0", USES, (), 0)
        waiting = asyncio.ensure_future(lim.acquire("w0", USES, (), 0))  # sent before w0 died
        await asyncio.sleep(0.01)
        lim.forget("w0")
        await waiting
        await asyncio.wait_for(lim.acquire("w1", USES, (), 0), timeout=1)  # the unit is free for the living
        return lim.in_use()

    assert asyncio.run(main()) == {"llm": 1}


def test_a_request_rate_spaces_grants_across_workers() -> None:
    async def main() -> list[float]:
        lim = Limiter({"llm": {"capacity": 10, "rpm": 60, "tpm": None}})  # one a second, a burst of 10
        waits = []
        for i in range(12):
            waits.append(await lim.acquire(f"w{i % 3}", USES, ("llm",), 0))
            lim.release(f"w{i % 3}", USES)  # units back at once: only the rate holds the calls back
        return waits

    waits = asyncio.run(main())
    assert all(w == 0 for w in waits[:10]) and 0 < waits[10] < waits[11]


def test_a_busy_worker_asks_the_limiter_once_per_unit_not_once_per_call() -> None:
    async def main() -> tuple[Counter[str], dict[str, int]]:
        handle = Handle(Limiter({"llm": {"capacity": 4, **UNLIMITED}}))
        worker = WorkerLimits(handle, "w0", keep={"llm": 4}, rated=frozenset(), linger=10.0)

        async def call() -> None:
            await worker.acquire(USES, 0)
            await asyncio.sleep(0.001)
            worker.release(USES)

        for _ in range(25):
            await asyncio.gather(*(call() for _ in range(4)))
        return handle.calls, handle.limiter.in_use()

    calls, in_use = asyncio.run(main())
    assert calls["acquire"] == 4 and calls["release"] == 0  # 100 calls; the 4 units asked once and kept
    assert in_use == {"llm": 4}


def test_units_above_the_share_go_back_at_once_and_idle_kept_ones_after_the_linger() -> None:
    async def main() -> list[int]:
        lim = Limiter({"llm": {"capacity": 3, **UNLIMITED}})
        worker = WorkerLimits(Handle(lim), "w0", keep={"llm": 1}, rated=frozenset(), linger=0.02)
        for _ in range(3):
            await worker.acquire(USES, 0)
        seen = [lim.in_use()["llm"]]
        worker.release((("llm", 3),))
        await asyncio.sleep(0)
        seen.append(lim.in_use()["llm"])  # kept: its share of 1
        await asyncio.sleep(0.1)
        seen.append(lim.in_use()["llm"])  # unused for a whole linger: given back
        return seen

    assert asyncio.run(main()) == [3, 1, 0]


def test_rate_permits_are_asked_for_every_call_even_with_kept_units() -> None:
    async def main() -> Counter[str]:
        handle = Handle(Limiter({"llm": {"capacity": 2, "rpm": 6000, "tpm": None}}))
        worker = WorkerLimits(handle, "w0", keep={"llm": 2}, rated=frozenset({"llm"}), linger=10.0)
        for _ in range(5):
            await worker.acquire(USES, 0)
            worker.release(USES)
        return handle.calls

    assert asyncio.run(main())["acquire"] == 5


@settings(max_examples=40, deadline=None)
@given(capacity=st.integers(1, 4), workers=st.integers(1, 3), calls=st.integers(1, 30), seed=st.integers(0, 10**6))
def test_in_flight_calls_never_pass_the_capacity_and_the_limiter_counts_every_held_unit(
        capacity: int, workers: int, calls: int, seed: int) -> None:
    """Random calls on several workers with their shares: at no moment more calls hold units than the capacity."""
    async def main() -> None:
        rng = random.Random(seed)
        lim = Limiter({"llm": {"capacity": capacity, **UNLIMITED}})
        pool = [WorkerLimits(Handle(lim), f"w{i}", keep={"llm": max(1, capacity // workers)}, rated=frozenset(),
                             linger=0.003) for i in range(workers)]
        in_flight = 0

        async def call(worker: WorkerLimits, n: int) -> None:
            nonlocal in_flight
            await worker.acquire((("llm", n),), 0)
            in_flight += n
            assert in_flight <= capacity
            assert sum(w.held()["llm"] for w in pool) <= lim.in_use()["llm"] <= capacity  # (granted, not yet counted)
            await asyncio.sleep(rng.random() * 0.004)
            in_flight -= n
            worker.release((("llm", n),))

        await asyncio.wait_for(asyncio.gather(*(call(rng.choice(pool), rng.randint(1, capacity))
                                                for _ in range(calls))), timeout=20)
        await asyncio.sleep(0.02)
        assert lim.in_use()["llm"] == 0  # every kept unit went back once the workers were idle

    asyncio.run(main())
