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
    FatalCallError,
    MemoryCache,
    ModelClient,
    RetryableCallError,
    SqliteCache,
    resolve_endpoint,
)
from petriflow.execute.executor import (
    Executor,
    RunResult,
    StepFailed,
    new_run_id,
    run_sync,
)
from petriflow.execute.plan import Dag, Entry, MapPlan, Outcome, StepPlan, plan
from petriflow.execute.pricing import call_cost, estimate_cost
from petriflow.execute.servers import Endpoint, ensure_local
from petriflow.execute.store import Checkpoint, MemoryStore, SqliteStore, open_store
from petriflow.execute.tools import DEFAULT_TOOLS, Tool, ToolRegistry
from petriflow.execute.trace import (
    TRACE_FIELDS,
    TraceRecord,
    TraceWriter,
    read_trace,
    summary_table,
)

__all__ = [
    "DEFAULT_TOOLS", "TRACE_FIELDS",
    "ChatResult", "Checkpoint", "Dag", "EmbedResult", "Endpoint", "Entry", "Executor", "FatalCallError",
    "MapPlan", "MemoryCache", "MemoryStore", "ModelClient", "Outcome", "RetryableCallError", "RunResult",
    "SqliteCache", "SqliteStore", "StepFailed", "StepPlan", "Tool", "ToolRegistry", "TraceRecord", "TraceWriter",
    "call_cost", "ensure_local", "estimate_cost", "first_answer", "new_run_id", "open_store", "plan",
    "read_trace", "resolve_endpoint", "run_sync", "search_notes", "summary_table",
]
