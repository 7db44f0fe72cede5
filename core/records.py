"""The record types that flow through the detection pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class LogRecord:
    """One log line read from a source and split into header fields and the templated content."""

    content: str
    source: str = ""
    line_no: int = 0
    timestamp: float | None = None
    fields: dict[str, str] = field(default_factory=dict)
    label: int | None = None  # 1 anomalous / 0 normal when the data carries per-line labels
