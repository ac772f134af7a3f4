"""Connecting to Ray: the one rule for ``sweep --backend ray`` and ``run --backend ray``.

``ray`` is optional (the ``ray`` extra) and imported only through here.
With an address (``--address`` or ``RAY_ADDRESS``) the work goes to that
cluster; otherwise a new local Ray instance is started for it and shut down
after. It is asked for with ``address="local"``, not left to Ray's
discovery: with no address Ray joins the cluster named in
``ray/ray_current_cluster`` under its temp dir, and a file left there by an
earlier ``ray start`` makes ``ray.init`` fail (it refuses ``num_cpus`` for an
existing cluster, or cannot reach a dead one).

Mind that Ray's own servers (GCS, raylet, workers) listen on all network
interfaces, whatever address is asked for (Ray 2.60 maps 127.0.0.1 to the
machine's address); on a shared or exposed machine prefer ``--backend
local``, a cluster you manage, or a network namespace with only loopback
(the tests run Ray in one).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from petriflow.errors import InputError

__all__ = ["connected", "import_ray"]


def import_ray() -> Any:
    """The ``ray`` module, or one clear InputError saying how to get it."""
    try:
        import ray
    except ImportError:
        raise InputError("--backend ray needs the `ray` package", where="--backend",
                         hint="pip install 'petriflow[ray]', or use --backend local") from None
    return ray


@contextlib.contextmanager
def connected(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Ray, connected for the ``with`` block; a local instance started here is shut down after it.

    A Ray already initialised in this process is used as it is and left
    running. ``num_cpus`` sizes a local instance (default: this machine's).
    """
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                     log_to_driver=False)
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
