"""Thresholds from held-out *normal* data only: the top-K size and the score scale.

K is the smallest number of likeliest next keys for which at most ``target_fpr`` of the normal
validation sessions would be flagged. Test labels never enter here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from logwarden.core.records import LogWardenError


@dataclass
class Calibration:
    k: int
    target_fpr: float
    validation_fpr: float  # fraction of normal validation sessions flagged at this K
    temperature: float  # margin scale of the [0, 1] score: score = sigmoid(margin / temperature)
    n_sessions: int
    n_events: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        return cls(**{f: data[f] for f in cls.__dataclass_fields__})


def choose_k(session_max_ranks: Sequence[float], target_fpr: float, vocab_size: int) -> tuple[int, float]:
    """Smallest K flagging at most ``target_fpr`` of normal sessions; returns (K, achieved FPR).

    ``session_max_ranks`` holds, per normal validation session, the worst rank of any of its events.
    """
    if not 0.0 <= target_fpr < 1.0:
        raise LogWardenError(f"target false-positive rate must be in [0, 1), got {target_fpr}")
    ranks = np.asarray(session_max_ranks, dtype=np.float64)
    if ranks.size == 0:
        raise LogWardenError("cannot calibrate: no normal validation sessions")
    for k in range(1, vocab_size + 1):
        fpr = float((ranks > k).mean())
        if fpr <= target_fpr:
            return k, fpr
    return vocab_size, float((ranks > vocab_size).mean())


def margin_temperature(margins: np.ndarray) -> float:
    """Robust scale of the normal events' top-K margins (finite ones), floored to stay well-defined."""
    finite = np.abs(margins[np.isfinite(margins)])
    return float(max(np.median(finite), 0.1)) if finite.size else 1.0


def scores_from_margins(margins: np.ndarray, temperature: float) -> np.ndarray:
    """Map top-K margins to [0, 1]: 0.5 is the top-K boundary, new templates (inf) score 1."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-np.asarray(margins, dtype=np.float64) / temperature))
