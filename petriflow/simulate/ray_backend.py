"""Run a sweep's configurations as Ray tasks (``sweep --backend ray``).

Ray is connected to (``RAY_ADDRESS``, or a new local instance started for
the sweep and shut down after it) by the one rule of
:mod:`petriflow.raycluster`. Each task
rebuilds the profile from its document and simulates one configuration
with the same seed, so a Ray sweep gives the same numbers as a local one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from petriflow.raycluster import connected
from petriflow.spec.model import Workflow

__all__ = ["run_on_ray"]


def _task(init: Callable[..., None], run: Callable[[Any], tuple[Any, ...]], wf: Workflow,
          profile_doc: dict[str, Any], options: dict[str, Any], config: Any) -> tuple[Any, ...]:
    init(wf, profile_doc, options)
    return run(config)


def run_on_ray(wf: Workflow, profile_doc: dict[str, Any], options: dict[str, Any], configs: Sequence[Any], *,
               init: Callable[..., None], run: Callable[[Any], tuple[Any, ...]],
               progress: Callable[[int, int], None] | None = None,
               num_cpus: int | None = None) -> list[tuple[Any, ...]]:
    """Simulate each configuration as a Ray task; results in the order of ``configs``.

    ``init`` and ``run`` are the sweep's worker functions (the same a local
    process pool runs), passed in so that this module does not import the sweep.
    """
    with connected(num_cpus=num_cpus) as ray:
        task = ray.remote(_task)
        wf_ref, doc_ref = ray.put(wf), ray.put(profile_doc)
        refs = [task.remote(init, run, wf_ref, doc_ref, options, c) for c in configs]
        where = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        pending, done = list(refs), 0
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                results[where[ref]] = ray.get(ref)
                done += 1
                if progress:
                    progress(done, len(refs))
        return results
