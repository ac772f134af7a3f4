"""Build a workflow in Python; it goes through the same checks as a file.

>>> wf = (WorkflowBuilder("hello")
...       .step("ask", kind="chat", prompt="Say hi")
...       .step("show", kind="python", function="builtins:print", after=["ask"])
...       .build())
>>> wf.step_ids
('ask', 'show')
"""

from __future__ import annotations

from typing import Any

from petriflow.spec.load import from_document
from petriflow.spec.model import Workflow

__all__ = ["WorkflowBuilder"]


class WorkflowBuilder:
    """Collects steps, resources and models as a document, then checks it with :func:`from_document`.

    Keyword arguments of :meth:`step` are the keys of the file format
    (``after``, ``after_any``, ``route``, ``loop``, ``map``, ``uses``,
    ``retry``, ``timeout``, ``fallback``, ``model``, ``prompt``...); ``route``
    also accepts ``{target: probability}``.
    """

    def __init__(self, name: str, *, description: str = "") -> None:
        self._doc: dict[str, Any] = {"name": name, "steps": []}
        if description:
            self._doc["description"] = description

    def step(self, step_id: str, *, kind: str, **options: Any) -> WorkflowBuilder:
        route = options.get("route")
        if isinstance(route, dict):
            options["route"] = [{"to": to, "p": p} for to, p in route.items()]
        for key in ("after", "after_any"):
            if key in options:
                options[key] = list(options[key])
        self._doc["steps"].append({"id": step_id, "kind": kind, **options})
        return self

    def resource(self, resource_id: str, *, capacity: int, **limits: float) -> WorkflowBuilder:
        self._doc.setdefault("resources", {})[resource_id] = {"capacity": capacity, **limits}
        return self

    def model(self, model_id: str, **endpoint: Any) -> WorkflowBuilder:
        self._doc.setdefault("models", {})[model_id] = endpoint
        return self

    def document(self) -> dict[str, Any]:
        """The document as it would be written to a JSON file."""
        return self._doc

    def build(self) -> Workflow:
        return from_document(self._doc, file=f"<builder {self._doc['name']}>")
