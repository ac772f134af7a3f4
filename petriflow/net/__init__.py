"""Petri nets: the value, the firing rule, lowering from workflows with its typed wiring, PNML and adapters."""

from petriflow.net.petrinet import Marking, Origin, PetriNet, WorkflowNet
from petriflow.net.wiring import EntryKind, NetWiring, PlaceRole, StepWiring, TransitionRole

__all__ = ["EntryKind", "Marking", "NetWiring", "Origin", "PetriNet", "PlaceRole", "StepWiring", "TransitionRole",
           "WorkflowNet"]
