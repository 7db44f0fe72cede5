"""Chronological train/test splits: a cut time, from a date the user names or from a share of the records.

Models of logs are judged on what comes *after* their training data (a random split of windows would let
the test period leak into training, and hide the drift a deployed model meets). ``train --until TIME``
keeps the records before a cut, ``evaluate --from TIME`` those at or after it, and ``logwarden split``
writes the two parts of a log as files (``cut_time`` finds the cut that leaves a given share before it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import numpy as np

from logwarden.core.errors import LogWardenError
from logwarden.core.records import LogRecord


def parse_time(text: str) -> float:
    """Epoch seconds of ``text``: a number (epoch seconds) or an ISO 8601 date/time (UTC unless it says)."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise LogWardenError(
                f"cannot read the time {text!r}: give epoch seconds or an ISO 8601 time such as 2005-11-09T12:00:00"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if not math.isfinite(seconds):
        raise LogWardenError(f"cannot read the time {text!r}: not a finite number")
    return seconds


def format_time(seconds: float) -> str:
    """An epoch time as ISO 8601 UTC (what ``parse_time`` reads back exactly)."""
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def cut_time(timestamps: Iterable[float | None], fraction: float) -> float:
    """The time before which ``fraction`` of the (timed) records lie: the first record after the cut is the
    one at that share of the records in time order."""
    if not 0.0 < fraction < 1.0:
        raise LogWardenError(f"the training share must be between 0 and 1, got {fraction}")
    times = np.sort(np.array([t for t in timestamps if t is not None], dtype=np.float64))
    if times.size < 2:
        raise LogWardenError("a chronological split needs at least 2 lines with a timestamp")
    return float(times[min(times.size - 1, max(1, round(times.size * fraction)))])


def before(records: Iterable[LogRecord], until: float) -> Iterator[LogRecord]:
    """The records strictly before ``until`` (a record without a timestamp is an error: it cannot be placed)."""
    for record in records:
        if _time(record) < until:
            yield record


def after(records: Iterable[LogRecord], start: float) -> Iterator[LogRecord]:
    """The records at or after ``start``."""
    for record in records:
        if _time(record) >= start:
            yield record


def _time(record: LogRecord) -> float:
    if record.timestamp is None:
        raise LogWardenError(
            f"{record.source}:{record.line_no} has no timestamp: a split by time needs a format that reads one"
        )
    return record.timestamp
