"""Workflows: the model, loading from YAML/JSON, the JSON Schema, the Python builder."""

from petriflow.spec.builder import WorkflowBuilder
from petriflow.spec.load import from_document, load, loads
from petriflow.spec.model import (
    Branch,
    Loop,
    MapOver,
    ModelEndpoint,
    Resource,
    Retry,
    Step,
    ToolDecl,
    Workflow,
)
from petriflow.spec.schema import WORKFLOW_SCHEMA

__all__ = [
    "WORKFLOW_SCHEMA", "Branch", "Loop", "MapOver", "ModelEndpoint", "Resource", "Retry", "Step",
    "ToolDecl", "Workflow", "WorkflowBuilder", "from_document", "load", "loads",
]
