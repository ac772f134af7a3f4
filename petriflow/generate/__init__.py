"""LLM-written workflows, run only if proven: a catalog, schema-constrained generation, the gate, repair.

:func:`load_catalog` reads what a generated workflow may draw on;
:func:`generate` asks a model for a workflow under the catalog's JSON Schema
and repairs it with the gate's verdict; :func:`gate` runs every check
(schema, catalog, arguments, limits, spec, verify, references, cost) on any
document; :func:`support` is the customer-support engine (triage, generation, the gate, the
run of what passed or of a verified fallback). See ``docs/generate.md``.
"""

from __future__ import annotations

from petriflow.generate.catalog import Catalog, Limits, catalog_from, load_catalog
from petriflow.generate.engine import Support, support, triage_workflow
from petriflow.generate.gate import CHECKS, Verdict, gate, merged
from petriflow.generate.generator import Generation, Round, generate, generate_sync, messages_for
from petriflow.generate.schema import generation_schema

__all__ = ["CHECKS", "Catalog", "Generation", "Limits", "Round", "Support", "Verdict", "catalog_from", "gate", "generate",
           "generate_sync", "generation_schema", "load_catalog", "merged", "messages_for", "support", "triage_workflow"]
