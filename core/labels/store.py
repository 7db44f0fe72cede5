"""The label store interface: one small abstract class, one short module per backend (drain3's style).

A backend implements ``add_many``, ``query``, ``count`` and ``close``; paging, export and per-source
statistics are built on those here (a backend may override them with something faster).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import IO

from logwarden.core.errors import LogWardenError
from logwarden.core.labels.label import Label

MAX_QUERY = 10_000
PAGE = 500


class LabelStore(ABC):
    """Durable analyst labels. Ids grow with insertion order and are never reused."""

    @abstractmethod
    def add_many(self, labels: Iterable[Label]) -> list[int]:
        """Store labels atomically (all or none); returns their new ids. Each gets a ``created_at``
        (now, unless the label already carries one, e.g. when importing an export)."""

    @abstractmethod
    def query(
        self,
        *,
        source: str | None = None,
        since: datetime | str | None = None,
        model_version: str | None = None,
        after_id: int = 0,
        limit: int = 100,
        newest_first: bool = True,
    ) -> list[Label]:
        """Labels matching every given filter; ``since`` is inclusive, ``limit`` at most ``MAX_QUERY``."""

    @abstractmethod
    def count(self, source: str | None = None) -> int:
        """How many labels (of ``source``) are stored."""

    @abstractmethod
    def close(self) -> None:
        """Release the backend; later calls raise ``LogWardenError``."""

    def add(self, label: Label) -> int:
        return self.add_many([label])[0]

    def iter_labels(
        self, *, source: str | None = None, since: datetime | str | None = None, model_version: str | None = None
    ) -> Iterator[Label]:
        """Every matching label, oldest first, fetched page by page (never all in memory)."""
        after = 0
        while True:
            page = self.query(
                source=source, since=since, model_version=model_version, after_id=after, limit=PAGE, newest_first=False
            )
            yield from page
            if len(page) < PAGE:
                return
            after = page[-1].id or after

    def export(self, file: IO[str], fmt: str = "jsonl", **filters) -> int:
        """Stream matching labels to ``file`` as ``jsonl`` or ``csv``; returns how many were written."""
        from logwarden.core.labels.export import write_labels

        return write_labels(self.iter_labels(**filters), file, fmt)

    def stats_by_source(self) -> dict[str, dict[str, int | str]]:
        """Per source: total, anomaly, normal, false_positive, missed, first_at, last_at."""
        out: dict[str, dict[str, int | str]] = {}
        for label in self.iter_labels():
            row = out.setdefault(
                label.source,
                {
                    "total": 0,
                    "anomaly": 0,
                    "normal": 0,
                    "false_positive": 0,
                    "missed": 0,
                    "first_at": label.created_at or "",
                },
            )
            row["total"] = int(row["total"]) + 1
            row[label.verdict] = int(row[label.verdict]) + 1
            row["false_positive"] = int(row["false_positive"]) + label.false_positive
            row["missed"] = int(row["missed"]) + label.missed
            row["last_at"] = label.created_at or ""
        return out

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_limit(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_QUERY:
        raise LogWardenError(f"label query limit must be an integer in [1, {MAX_QUERY}], got {limit!r}")
    return limit
