"""The label store interface: one small abstract class, one short module per backend (drain3's style).

A backend implements ``submit``, ``retract``, ``query``, ``count`` and ``close``; adding, paging and export
are built on those here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from logwarden.core.errors import LogWardenError
from logwarden.core.labels.label import Label

MAX_QUERY = 10_000
PAGE = 500


@dataclass(frozen=True)
class Submitted:
    """What ``submit`` did with one label: its store id; ``duplicate`` when the same label (same external id
    and content) was stored before and nothing was written; ``replaced`` the id of the label it replaced."""

    id: int
    duplicate: bool = False
    replaced: int | None = None


@dataclass(frozen=True)
class Retracted:
    """What ``retract`` did with one id (a store id or an external id, as given)."""

    id: str
    retracted: bool
    error: str = ""
    label: Label | None = None  # the withdrawn label


class LabelStore(ABC):
    """Durable analyst labels. Ids grow with insertion order and are never reused.

    A label with an ``external_id`` is stored once: the same label again is a duplicate (nothing written,
    the stored id returned); a label with the same external id and different content replaces it (the old
    one is retracted). Retracted labels stay in the store for the record but no longer count: queries and
    iteration leave them out unless asked for them.
    """

    @abstractmethod
    def submit(self, labels: Iterable[Label]) -> list[Submitted]:
        """Store labels atomically (all or none). Each new one gets a ``created_at`` (now, unless the label
        already carries one, e.g. when importing an export)."""

    @abstractmethod
    def retract(self, label_ids: Iterable[int] = (), external_ids: Iterable[str] = ()) -> list[Retracted]:
        """Withdraw labels by store id or external id (one transaction); unknown ids are reported, not raised."""

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
        include_retracted: bool = False,
    ) -> list[Label]:
        """Labels matching every given filter; ``since`` is inclusive, ``limit`` at most ``MAX_QUERY``."""

    @abstractmethod
    def count(self, source: str | None = None) -> int:
        """How many live (not retracted) labels (of ``source``) are stored."""

    @abstractmethod
    def close(self) -> None:
        """Release the backend; later calls raise ``LogWardenError``."""

    def add_many(self, labels: Iterable[Label]) -> list[int]:
        """``submit`` returning only the ids."""
        return [s.id for s in self.submit(labels)]

    def add(self, label: Label) -> int:
        return self.add_many([label])[0]

    def iter_labels(
        self,
        *,
        source: str | None = None,
        since: datetime | str | None = None,
        model_version: str | None = None,
        include_retracted: bool = False,
    ) -> Iterator[Label]:
        """Every matching label, oldest first, fetched page by page (never all in memory)."""
        after = 0
        while True:
            page = self.query(
                source=source,
                since=since,
                model_version=model_version,
                after_id=after,
                limit=PAGE,
                newest_first=False,
                include_retracted=include_retracted,
            )
            yield from page
            if len(page) < PAGE:
                return
            after = page[-1].id or after

    def export(self, file: IO[str], fmt: str = "jsonl", **filters) -> int:
        """Stream matching labels to ``file`` as ``jsonl`` or ``csv``; returns how many were written."""
        from logwarden.core.labels.export import write_labels

        return write_labels(self.iter_labels(**filters), file, fmt)

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_limit(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_QUERY:
        raise LogWardenError(f"label query limit must be an integer in [1, {MAX_QUERY}], got {limit!r}")
    return limit
