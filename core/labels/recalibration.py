"""Per-source top-K from analysts' labels, applied right away and kept within bounds.

The policy (pure and deterministic; the same labels always give the same K, in any process):

* Only the latest label of each session counts (an analyst correcting a verdict replaces it), and a
  session counts once however many of its events were labelled: a flood of clicks is one vote
  (event labels without a session key count per event id).
* A false positive is a ``normal`` verdict on something the model flagged (``predicted`` is
  ``anomaly``, or unknown: analysts label alerts). Every ``fp_per_step`` false-positive sessions of a
  source raise that source's K by one (more likely next keys accepted, fewer alerts).
* A missed anomaly is an ``anomaly`` verdict on a session the model passed (``predicted`` is
  ``normal``). Every ``missed_per_step`` of them lower the source's K by one (more alerts).
* False positives the model gave for a new or rare template, a session that ended early, or a rare
  combination of templates, do not move K: no K stops those alerts (retraining with them in the
  normal data does), and raising K for them would only blind the source to sequence anomalies.
* K = clamp(base K + FP steps − missed steps, min_k, max_k); by default ``min_k`` is half the
  calibrated K (at least 1) and ``max_k`` twice it (at most the vocabulary size), so a noisy host
  can dull its own alerts at most by this much, and never anyone else's: K is per source only.

``SourceThresholds`` holds the result for the server: it updates on each new label, rebuilds from the
label store at startup, and when given the model version counts only labels on that version (after a
retrain has folded the false positives into the training data, the adjustments start afresh).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from logwarden.core.detect.reasons import K_INDEPENDENT
from logwarden.core.errors import LogWardenError
from logwarden.core.labels.label import Label
from logwarden.core.labels.store import LabelStore


@dataclass(frozen=True)
class KBounds:
    """The range a source's K may move in."""

    min_k: int
    max_k: int

    def __post_init__(self) -> None:
        if not 1 <= self.min_k <= self.max_k:
            raise LogWardenError(f"K bounds need 1 <= min_k <= max_k, got {self.min_k}..{self.max_k}")

    @classmethod
    def around(cls, base_k: int, vocab_size: int | None = None, factor: float = 2.0) -> KBounds:
        """``base_k / factor`` .. ``base_k * factor`` (at least one step each way where possible)."""
        if base_k < 1 or factor < 1:
            raise LogWardenError(f"need base_k >= 1 and factor >= 1, got {base_k} and {factor}")
        high = max(base_k + 1, int(base_k * factor))
        high = min(high, vocab_size) if vocab_size else high
        low = min(max(1, int(base_k / factor)), base_k - 1) if base_k > 1 else 1
        return cls(max(1, min(low, high)), max(high, base_k, 1))


@dataclass(frozen=True)
class Policy:
    fp_per_step: int = 5
    missed_per_step: int = 2

    def __post_init__(self) -> None:
        if self.fp_per_step < 1 or self.missed_per_step < 1:
            raise LogWardenError("recalibration steps need at least 1 label each")


DEFAULT_POLICY = Policy()


def outcome(label: Label) -> str | None:
    """``false_positive``, ``missed`` or None (agreement, or a verdict K cannot fix)."""
    if label.false_positive:
        return None if label.reason_code in K_INDEPENDENT else "false_positive"
    return "missed" if label.missed else None


def latest_outcomes(labels: Iterable[Label]) -> dict[str, str | None]:
    """Subject (session key, else event) → outcome of its latest label (by id, else as given)."""
    ordered = sorted(enumerate(labels), key=lambda p: (p[1].id is None, p[1].id or 0, p[0]))
    return {label.subject: outcome(label) for _, label in ordered}


def k_from_counts(base_k: int, fps: int, missed: int, bounds: KBounds, policy: Policy = DEFAULT_POLICY) -> int:
    k = base_k + fps // policy.fp_per_step - missed // policy.missed_per_step
    return max(bounds.min_k, min(bounds.max_k, k))


def compute_source_k(
    base_k: int, labels_for_source: Iterable[Label], bounds: KBounds, policy: Policy = DEFAULT_POLICY
) -> int:
    """The K one source's labels give (see the module docstring)."""
    outcomes = list(latest_outcomes(labels_for_source).values())
    return k_from_counts(base_k, outcomes.count("false_positive"), outcomes.count("missed"), bounds, policy)


class SourceThresholds:
    """Source → K, updated label by label; thread-safe. ``k_for_source`` is None while a source keeps
    the calibrated K, so the caller passes ``k_for_source(s) or base_k`` to ``Detector.score_keys``."""

    def __init__(
        self,
        base_k: int,
        bounds: KBounds | None = None,
        *,
        policy: Policy = DEFAULT_POLICY,
        model_version: str | None = None,
    ) -> None:
        self.base_k = base_k
        self.bounds = bounds or KBounds.around(base_k)
        self.policy = policy
        self.model_version = model_version
        self._lock = threading.Lock()
        self._outcomes: dict[str, dict[str, str | None]] = {}  # source → session key → outcome
        self._counts: dict[str, dict[str | None, int]] = {}
        self._k: dict[str, int] = {}

    @classmethod
    def from_store(
        cls,
        store: LabelStore,
        base_k: int,
        bounds: KBounds | None = None,
        *,
        policy: Policy = DEFAULT_POLICY,
        model_version: str | None = None,
    ) -> SourceThresholds:
        thresholds = cls(base_k, bounds, policy=policy, model_version=model_version)
        thresholds.rebuild(store)
        return thresholds

    def rebuild(self, store: LabelStore) -> None:
        """Start over from every stored label (oldest first), e.g. at server start."""
        with self._lock:
            self._outcomes.clear()
            self._counts.clear()
            self._k.clear()
        for label in store.iter_labels(model_version=self.model_version):
            self.observe(label)

    def observe(self, label: Label) -> int | None:
        """Take a new label into account; returns its source's K afterwards (None: unchanged base K)."""
        if self.model_version is not None and label.model_version != self.model_version:
            return self.k_for_source(label.source)
        with self._lock:
            sessions = self._outcomes.setdefault(label.source, {})
            counts = self._counts.setdefault(label.source, {"false_positive": 0, "missed": 0, None: 0})
            if label.subject in sessions:
                counts[sessions[label.subject]] -= 1
            sessions[label.subject] = now = outcome(label)
            counts[now] += 1
            k = k_from_counts(self.base_k, counts["false_positive"], counts["missed"], self.bounds, self.policy)
            if k == self.base_k:
                self._k.pop(label.source, None)
            else:
                self._k[label.source] = k
            return self._k.get(label.source)

    def k_for_source(self, source: str) -> int | None:
        with self._lock:
            return self._k.get(source)

    def snapshot(self) -> dict[str, int]:
        """Sources whose K differs from the calibrated one (for model info and metrics)."""
        with self._lock:
            return dict(self._k)
