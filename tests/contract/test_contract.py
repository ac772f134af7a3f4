"""Simulated and executed, from one description: the contract of issue 8.

Each case of :mod:`tests.contract.cases` runs twice: by the executor
(``plan()`` + :class:`~petriflow.execute.Executor` over the real ``openai``
client) against the synthetic server on 127.0.0.1, and by
:func:`petriflow.simulate.simulate` with a profile built from the very same
distributions (:mod:`tests.contract.harness`), under the same load.

The bound, per figure (throughput, p50, p95, mean cost, failed share)::

    |executed - simulated| <= h_exec + h_sim

``h_exec`` is the half-width of the executed figure's 95% moving-block
bootstrap interval (time windows for throughput); ``simulated`` is the mean
of 20 simulations of as many cases (seeds 0-19) and ``h_sim`` the half-width
of the 95% range one such simulation falls in. If both were the same random
process with spread ``s`` per run, the bound would be about ``3.9 s`` and
the difference's standard deviation about ``s`` (the mean of 20 runs adds
little): a figure breaks it about once in 10^4 by chance, while a real gap
of four standard deviations (a few per cent on the latency quantiles at
these sizes) breaks it.

What the executor spends per call, and how late its users come back from
thinking on a loaded machine, is measured in the same run and added to the
simulation (see the harness): the comparison is of everything else. No test
here asserts a speed; each takes some seconds of wall time, mostly waiting.

A 429's ``Retry-After`` reaches the simulation as the profile's
``retry_after`` (the executor records it in the trace, ``fit`` reads it
back), and both sides wait it through :func:`petriflow.rules.backoff_delay`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.execute.fault_server import FaultServer

from .cases import CASES
from .harness import ContractCase, compare


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as fs:
        yield fs


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_executed_and_simulated_agree(case: ContractCase, server: FaultServer) -> None:
    contract = compare(case, server)
    print(contract.table())
    bad = contract.disagreements()
    assert not bad, f"{case.summary}\n" + contract.table()
