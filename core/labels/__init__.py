"""Analysts' labels: a durable store, per-source recalibration, and retraining from false positives.

The store and the recalibration are light (standard library only); ``retrain`` pulls in the model
stack and is imported from ``logwarden.core.labels.retrain`` where needed.
"""

from logwarden.core.labels.label import Label, LabelError
from logwarden.core.labels.recalibration import KBounds, Policy, SourceThresholds, compute_source_k
from logwarden.core.labels.sqlite import SqliteLabelStore
from logwarden.core.labels.store import LabelStore

__all__ = [
    "KBounds",
    "Label",
    "LabelError",
    "LabelStore",
    "Policy",
    "SourceThresholds",
    "SqliteLabelStore",
    "compute_source_k",
]
