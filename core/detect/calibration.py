"""Thresholds from held-out *normal* data only: the end-of-session threshold, the novelty threshold, the top-K
size, the score scale.

Three questions, three rules. *Is the next key one of the likely ones?* The observed key must be among
the K likeliest. *Could the session end here?* A yes/no question that ranks answer badly (after a
session's second event the end may rank 7th among keys while being 10,000 times less likely than at
any normal end), so the end is judged by its surprisal: a session ended early when the model finds
ending there less likely than at the least likely end of any normal validation session (and than 1%).
*Has this set of templates been seen together?* A complete session whose template combination is
rare in normal training is flagged too (``logwarden.core.detect.combinations``), when that check flags at
most ``target_fpr`` of the validation sessions. *Is a template the model does not know anomalous?* Its
novelty (``core.detect.novelty``) must exceed a threshold: ``NOVELTY_PRIOR`` when the validation sessions
flagged that way fit the budget, else the level that leaves at most half the budget to it (the rest stays
with the next-key check, which would otherwise be switched off by a K covering the whole vocabulary).
With those fixed, K is the smallest number of likeliest next keys for which at most ``target_fpr`` of the
normal validation sessions are flagged by any of the checks. The validation false-positive rate that a
model reports is then measured by scoring the validation sessions with the finished detector.
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
    # A template the model does not know is anomalous when its novelty exceeds this; None: always (the
    # novelty mode 'always', and models saved before novelty was judged).
    novelty_threshold: float | None = None
    novelty_fpr: float | None = None  # share of normal validation sessions flagged by the novelty check
    # A window whose count of a template exceeds this multiple of the most in one normal training window is
    # anomalous (see counts); None: the count check is off (sessions named by a key, or switched off).
    count_threshold: float | None = None
    count_fpr: float | None = None  # share of normal validation sessions flagged by the count check

    def to_dict(self) -> dict:
        return asdict(self)


# Never call an end early that the model gives at least 1% probability, however confidently the
# validation sessions ended (small validation sets of rigid workflows would otherwise set a hair trigger).
END_SURPRISAL_FLOOR = math.log(100.0)


# A threshold sits this far above the largest normal value it must pass, so that the last digits of
# another backend's arithmetic (onnxruntime vs torch) cannot flag that validation session.
TOLERANCE = 1e-4

NOVELTY_PRIOR = 0.5  # novelty above which an unknown template alerts, unless validation data asks for more


def end_threshold(end_surprisals: Sequence[float]) -> float | None:
    """The surprisal of the least likely end among normal validation sessions, at least the floor
    (None: no validation session had an end)."""
    values = np.asarray(end_surprisals, dtype=np.float64)
    values = values[np.isfinite(values)]
    return max(float(values.max()) + TOLERANCE, END_SURPRISAL_FLOOR) if values.size else None


COUNT_PRIOR = 1.0  # a window alerts when a template appears more often than in any normal training window


def threshold_within(values: Sequence[float], prior: float, target_fpr: float) -> float:
    """A check's threshold (flag when value > threshold): ``prior`` when the validation sessions it flags fit
    ``target_fpr``, else the smallest value that flags at most half of it (the other half stays with the
    next-template check), and at least one session when the budget holds one (with few validation
    sessions, half a session would mean passing the single most extreme one, a hair trigger the other
    way). ``values`` holds each normal validation session's statistic (-inf: none)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or float((values > prior).mean()) <= target_fpr:
        return prior
    budget = values.size * target_fpr
    allowed = max(math.floor(budget / 2), 1 if budget >= 1 else 0)
    ranked = np.sort(values)[::-1]
    return max(float(ranked[allowed]), prior)


def novelty_threshold(session_novelty: Sequence[float], target_fpr: float) -> float:
    """The novelty threshold (see ``threshold_within``; ``session_novelty`` holds each normal validation
    session's largest novelty, ``-inf`` when the model knew all its templates)."""
    return threshold_within(session_novelty, NOVELTY_PRIOR, target_fpr)


def novelty_scores(novelty: np.ndarray, threshold: float | None) -> np.ndarray:
    """Map novelties to [0, 1] scores: 0.5 at the threshold, 1 at novelty 1, linear on both sides
    (threshold None: every unknown template scores 1)."""
    novelty = np.asarray(novelty, dtype=np.float64)
    if threshold is None:
        return np.ones_like(novelty)
    below = 0.5 * novelty / threshold if threshold > 0 else np.full_like(novelty, 0.5)
    above = 0.5 + 0.5 * (novelty - threshold) / (1.0 - threshold) if threshold < 1 else np.full_like(novelty, 1.0)
    return np.clip(np.where(novelty > threshold, above, below), 0.0, 1.0)


def choose_k(session_max_ranks: Sequence[float], target_fpr: float, vocab_size: int) -> tuple[int, float]:
    """Smallest K flagging at most ``target_fpr`` of normal sessions; returns (K, achieved FPR).

    ``session_max_ranks`` holds, per normal validation session, the worst rank of any of its events
    (``inf`` for a session that another check flags whatever K). ``vocab_size`` is the number of next keys
    the model can predict (K never exceeds it).
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
