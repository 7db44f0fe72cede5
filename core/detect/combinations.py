"""Which templates occur together: the template combinations of normal sessions.

A next-key model judges each event by what came before it; some anomalies are plain in a session's
*set* of templates and barely visible event by event. On HDFS, a block that is replicated and then
deleted has a delete event that ranks 3rd to 5th among the next templates the model expects (no K
catches it), yet no normal training session has that combination of templates.
So a complete session is also checked as a whole: its set of templates must be one that at least
``min_sessions`` normal training sessions had (the same rarity bar as single templates), else it
is a *rare combination*. The check is kept only when calibration finds it affordable: if more than
the target share of the normal validation sessions had rare combinations (systems whose sessions
vary a lot, or long windows), it is switched off and the model relies on the next-key checks alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from logwarden.core.errors import LogWardenError

RARE_COMBINATION = "rare combination of templates"
MAX_COMBINATIONS = 100_000  # bound on what a model stores (each has at least min_sessions sessions)
MAX_COMPARED = 1_000  # an explanation compares with the commonest combinations only (bounded cost per session)


@dataclass(frozen=True, slots=True)
class Difference:
    """How a session's templates differ from the closest normal combination."""

    sessions: int  # normal training sessions with that closest combination
    extra: tuple[str, ...]  # templates of the session that combination lacks
    missing: tuple[str, ...]  # templates of that combination the session lacks


class Combinations:
    """The established template combinations (sets of keys) of normal training sessions."""

    def __init__(self, known: dict[frozenset[str], int], min_sessions: int) -> None:
        if min_sessions < 1:
            raise LogWardenError(f"min_sessions must be at least 1, got {min_sessions}")
        self.min_sessions = min_sessions
        self.known = {keys: n for keys, n in known.items() if n >= min_sessions}
        self._by_count = sorted(self.known.items(), key=lambda item: (-item[1], sorted(item[0])))
        self._compared = self._by_count[:MAX_COMPARED]  # what explanations search

    @classmethod
    def build(cls, sessions: Iterable[Sequence[str | None]], min_sessions: int) -> Combinations:
        """Count each session's set of keys; keep those seen in at least ``min_sessions`` sessions."""
        counts = Counter(frozenset(k for k in keys if k is not None) for keys in sessions)
        known = dict(counts.most_common(MAX_COMBINATIONS))
        return cls(known, min_sessions)

    def __len__(self) -> int:
        return len(self.known)

    def is_rare(self, keys: Iterable[str | None]) -> bool:
        """True when this set of keys is not an established normal combination (new templates count too)."""
        keys = list(keys)
        return None in keys or frozenset(keys) not in self.known

    def closest(self, keys: Iterable[str | None]) -> Difference | None:
        """Of the commonest established combinations, the one with the fewest templates added or missing
        (ties: the commonest)."""
        if not self._compared:
            return None
        mine = frozenset(k for k in keys if k is not None)
        best = min(self._compared, key=lambda item: len(mine ^ item[0]))  # min keeps the first (commonest) tie
        return Difference(best[1], tuple(sorted(mine - best[0])), tuple(sorted(best[0] - mine)))

    def to_dict(self) -> dict:
        known = [{"keys": sorted(k), "sessions": n} for k, n in self._by_count]
        return {"min_sessions": self.min_sessions, "known": known}

    @classmethod
    def from_dict(cls, data: dict) -> Combinations:
        try:
            known = {frozenset(str(k) for k in entry["keys"]): int(entry["sessions"]) for entry in data["known"]}
            return cls(known, int(data["min_sessions"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise LogWardenError(f"bad template combinations in the model config ({exc})") from exc
