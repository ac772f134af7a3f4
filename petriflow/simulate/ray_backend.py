"""Run a sweep's configurations as Ray tasks (``sweep --backend ray``).

``ray`` is optional and imported here only (the ``ray`` extra installs it).
With ``RAY_ADDRESS`` set, the tasks go to that cluster; otherwise a new local
Ray instance is started for the sweep and shut down after it. It is asked
for with ``address="local"``, not left to Ray's discovery: with no address
Ray joins the cluster named in ``ray/ray_current_cluster`` under its temp
dir, and a file left there by an earlier ``ray start`` makes ``ray.init``
fail (it refuses ``num_cpus`` for an existing cluster, or cannot reach a
dead one). Mind that Ray's own servers (GCS, raylet, workers) listen on all
network interfaces, whatever address is asked for (Ray 2.60 maps 127.0.0.1
to the machine's address); on a shared or exposed machine prefer
``--backend local``, a cluster you manage, or a network namespace with only
loopback (the tests run Ray in one). Each task
rebuilds the profile from its document and simulates one configuration
with the same seed, so a Ray sweep gives the same numbers as a local one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from petriflow.errors import ProfileError
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
    try:
        import ray
    except ImportError:
        raise ProfileError("--backend ray needs the `ray` package", where="--backend",
                           hint="pip install ray, or use --backend local") from None
    started = False
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                     log_to_driver=False)
        started = True
    try:
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
    finally:
        if started:
            ray.shutdown()
