"""Petri nets: the value, the firing rule, lowering from workflows, PNML and adapters."""

from petriflow.net.petrinet import Marking, Origin, PetriNet, WorkflowNet

__all__ = ["Marking", "Origin", "PetriNet", "WorkflowNet"]
