"""Run verified workflows on real models: plan, execute, checkpoint, trace.

    >>> from petriflow.spec import load                         # doctest: +SKIP
    >>> from petriflow.execute import plan, run_sync
    >>> dag = plan(load("models/qa_router.yaml"))              # refuses an unsound workflow
    >>> result = run_sync(dag, "how do I reverse a list in python?")
    >>> result.output["route"], result.cost

The pieces: :func:`plan` reads the executable :class:`Dag` off the verified
net; :class:`Executor` runs cases on one asyncio core (:func:`run_sync` is its
synchronous wrapper); :class:`SqliteStore` checkpoints every step output so
``resume`` repeats nothing; :class:`TraceWriter` writes the JSON-lines trace
that ``petriflow fit`` reads; :class:`ModelClient` makes one model call through
the ``openai`` client; :func:`ensure_local` starts the local model servers.
"""

from petriflow.execute.builtins import first_answer, search_notes
from petriflow.execute.client import (
    ChatResult,
    EmbedResult,
    MemoryCache,
    ModelClient,
    SqliteCache,
    resolve_endpoint,
)
from petriflow.execute.executor import (
    Executor,
    RunResult,
    new_run_id,
    run_sync,
)
from petriflow.execute.plan import Dag, Entry, MapPlan, Outcome, StepPlan, plan
from petriflow.execute.pricing import call_cost, estimate_cost
from petriflow.execute.servers import Endpoint, ensure_local
from petriflow.execute.store import Checkpoint, MemoryStore, SqliteStore, open_store
from petriflow.execute.tools import DEFAULT_TOOLS, Tool, ToolRegistry
from petriflow.execute.trace import TraceWriter, summary_table

__all__ = [
    "DEFAULT_TOOLS",
    "ChatResult", "Checkpoint", "Dag", "EmbedResult", "Endpoint", "Entry", "Executor",
    "MapPlan", "MemoryCache", "MemoryStore", "ModelClient", "Outcome", "RunResult",
    "SqliteCache", "SqliteStore", "StepPlan", "Tool", "ToolRegistry", "TraceWriter",
    "call_cost", "ensure_local", "estimate_cost", "first_answer", "new_run_id", "open_store", "plan",
    "resolve_endpoint", "run_sync", "search_notes", "summary_table",
]
