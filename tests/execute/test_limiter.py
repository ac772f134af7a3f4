"""The limiter a Ray batch's workers share (issue 14): capacity holds across holders, a dead holder's units return.

:class:`~petriflow.execute.distributed.Limiter` is the body of the Ray actor;
here it runs on one event loop without Ray, as the actor runs it.
"""

from __future__ import annotations

import asyncio

from petriflow.execute.distributed import Limiter

USES = (("llm", 1),)


def test_capacity_holds_across_workers_and_a_dead_workers_units_come_back() -> None:
    async def main() -> list[str]:
        lim = Limiter({"llm": {"capacity": 2, "rpm": None, "tpm": None}})
        got: list[str] = []

        async def take(holder: str) -> None:
            await lim.acquire(holder, USES, 0)
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


def test_a_request_rate_spaces_grants_across_workers() -> None:
    async def main() -> list[float]:
        lim = Limiter({"llm": {"capacity": 10, "rpm": 60, "tpm": None}})  # one a second, a burst of 10
        waits = []
        for i in range(12):
            waits.append(await lim.acquire(f"w{i % 3}", USES, 0))
            lim.release(f"w{i % 3}", USES)  # units back at once: only the rate holds the calls back
        return waits

    waits = asyncio.run(main())
    assert all(w == 0 for w in waits[:10]) and 0 < waits[10] < waits[11]
