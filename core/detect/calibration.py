"""Thresholds from held-out *normal* data only: the end-of-session threshold, the top-K size, the score scale.

Two questions, two rules. *Is the next key one of the likely ones?* The observed key must be among
the K likeliest. *Could the session end here?* A yes/no question that ranks answer badly (after a
session's second event the end may rank 7th among keys while being 10,000 times less likely than at
any normal end), so the end is judged by its surprisal: a session ended early when the model finds
ending there less likely than at the least likely end of any normal validation session (and than 1%).
*Has this set of templates been seen together?* A complete session whose template combination is
rare in normal training is flagged too (``logwarden.core.detect.combinations``), when that check flags at
most ``target_fpr`` of the validation sessions. With the end threshold and the combination check
fixed, K is the smallest number of likeliest next keys for which at most ``target_fpr`` of the normal
validation sessions are flagged by any of the checks.
Test labels never enter here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from logwarden.core.errors import LogWardenError


@dataclass
class Calibration:
    k: int
    target_fpr: float
    validation_fpr: float  # fraction of normal validation sessions flagged at this K
    temperature: float  # margin scale of the [0, 1] score: score = sigmoid(margin / temperature)
    n_sessions: int
    n_events: int
    # A session's end is anomalous when its surprisal exceeds this; None (no end threshold: ends not
    # scored, or a format-1 model, see core.artifact.config): the end is judged like any event, by top-K.
    end_surprisal: float | None = None
    # Share of normal validation sessions whose template combination was rare (see combinations);
    # None: the combination check was not run (switched off, or not affordable).
    combination_fpr: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# Never call an end early that the model gives at least 1% probability, however confidently the
# validation sessions ended (small validation sets of rigid workflows would otherwise set a hair trigger).
END_SURPRISAL_FLOOR = math.log(100.0)


def end_threshold(end_surprisals: Sequence[float]) -> float | None:
    """The surprisal of the least likely end among normal validation sessions, at least the floor
    (None: no validation session had an end)."""
    values = np.asarray(end_surprisals, dtype=np.float64)
    values = values[np.isfinite(values)]
    return max(float(values.max()), END_SURPRISAL_FLOOR) if values.size else None


def choose_k(session_max_ranks: Sequence[float], target_fpr: float, vocab_size: int) -> tuple[int, float]:
    """Smallest K flagging at most ``target_fpr`` of normal sessions; returns (K, achieved FPR).

    ``session_max_ranks`` holds, per normal validation session, the worst rank of any of its events
    (``inf`` for a session that another check flags whatever K).
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
