"""How often a template appears in one window: bursts of known messages.

An alert storm repeats a message the system logs anyway ("temperature above threshold", "no answer from
any datasource"), so every line is a known template in a plausible place, and the next-template model,
which copies what it has just seen, finds each repetition likely. What is unusual is the count: more
occurrences of a template in one window than any normal training window had. So a complete window is also
checked template by template: the ``ratio`` of its count to the most that template had in one normal
training window must not exceed the calibrated threshold (``core.detect.calibration``: 1, "more than ever",
unless normal validation windows ask for more). The event that passes it is the anomalous one, and the
reason names the template and both counts.

Only windows (time or count) are checked: sessions named by a key (HDFS blocks) have counts set by their
workflow, which the next-template model already knows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from logwarden.core.errors import LogWardenError

MAX_TEMPLATES = 100_000


@dataclass(frozen=True, slots=True)
class Excess:
    """The template of a window furthest above its normal count."""

    key: str
    count: int  # occurrences in the window
    most: int  # the most in one normal training window
    ratio: float  # count / most


class Counts:
    """The most occurrences of each template in one normal training window."""

    def __init__(self, most: dict[str, int]) -> None:
        self.most = most

    @classmethod
    def build(cls, sessions: Iterable[Sequence[str | None]]) -> Counts:
        most: dict[str, int] = {}
        for keys in sessions:
            for key, n in Counter(k for k in keys if k is not None).items():
                if n > most.get(key, 0):
                    most[key] = n
        top = sorted(most.items(), key=lambda item: (-item[1], item[0]))[:MAX_TEMPLATES]
        return cls(dict(top))

    def excess(self, keys: Sequence[str | None]) -> Excess | None:
        """The known template whose count is furthest above its normal most (None: no known template)."""
        best = None
        for key, n in Counter(k for k in keys if k is not None and k in self.most).items():
            ratio = n / self.most[key]
            if best is None or ratio > best.ratio:
                best = Excess(key, n, self.most[key], ratio)
        return best

    def to_dict(self) -> dict:
        return {"most": self.most}

    @classmethod
    def from_dict(cls, data: dict) -> Counts:
        try:
            most = {str(k): int(v) for k, v in dict(data["most"]).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise LogWardenError(f"bad template counts in the model config ({exc})") from exc
        if len(most) > MAX_TEMPLATES or any(v < 1 for v in most.values()):
            raise LogWardenError("bad template counts in the model config")
        return cls(most)
