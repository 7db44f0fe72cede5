"""One analyst verdict on an event or a session, validated on construction.

Every check raises ``LabelError`` whose ``field`` names the offending field, so the server can answer
``INVALID_ARGUMENT`` / 400 naming it. Sizes are bounded: labels come from people and from SIEM
alert actions, and a label store must not become a dumping ground for megabyte comments.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from logwarden.core.detect.reasons import parse_reason_code
from logwarden.core.errors import LogWardenError

TARGETS = ("event", "session")
VERDICTS = ("anomaly", "normal")

MAX_SOURCE = 256
MAX_SESSION_KEY = 512
MAX_TEMPLATE_ID = 64
MAX_EVENT_ID = 256
MAX_MESSAGE = 65536  # the reader's default --max-line-bytes
MAX_MODEL_VERSION = 128
MAX_REASON = 1024
MAX_ANALYST = 128
MAX_COMMENT = 4096
MAX_KEYS = 10_000
MAX_KEY = 64
MAX_EXTERNAL_ID = 512
MAX_ATTRIBUTES = 16
MAX_ATTRIBUTE_KEY = 128
MAX_ATTRIBUTE_VALUE = 1024

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width, so stored strings sort in time order
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class LabelError(LogWardenError):
    """A label field is invalid; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"label field {field!r}: {problem}")
        self.field = field
        self.problem = problem


def utc_timestamp(value: datetime | str | None = None, field: str = "created_at") -> str:
    """``value`` (now when None) as a fixed-width UTC ISO string; naive times are taken as UTC."""
    if value is None:
        value = datetime.now(UTC)
    elif isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise LabelError(field, f"not an ISO 8601 time: {value[:40]!r}") from exc
    elif not isinstance(value, datetime):
        raise LabelError(field, "must be an ISO 8601 string or a datetime")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime(TIME_FORMAT)


@dataclass(frozen=True, kw_only=True)
class Label:
    """An analyst's verdict. ``predicted`` is what the model said (``anomaly``/``normal``), when known;
    ``reason`` / ``reason_code`` are the model's alert reason and its code (``ReasonCode``; recalibration
    keys on the code); ``keys`` is the session's log-key sequence, which lets a
    retrain fold a false positive into the normal training data. ``id`` and ``created_at`` are set
    by the store."""

    target: str
    verdict: str
    source: str
    analyst: str
    session_key: str = ""  # required for session labels
    template_id: str | None = None
    event_id: str | None = None
    message: str | None = None
    model_version: str = ""
    predicted: str | None = None
    reason: str = ""
    comment: str = ""
    keys: tuple[str, ...] | None = None
    reason_code: str | None = None  # the model's ReasonCode for the labelled verdict, when known
    external_id: str | None = None  # the caller's id of what is labelled: unique among a store's live labels
    attributes: dict[str, str] | None = None  # where the labelled event lives (index, document id, search id)
    id: int | None = None
    created_at: str | None = None
    retracted_at: str | None = None  # set by the store when the label was withdrawn or replaced

    def __post_init__(self) -> None:
        _choice(self, "target", TARGETS)
        _choice(self, "verdict", VERDICTS)
        if self.predicted is not None:
            _choice(self, "predicted", VERDICTS)
        for name, limit in (("source", MAX_SOURCE), ("analyst", MAX_ANALYST)):
            _text(self, name, limit, required=True, single_line=True)
        _text(self, "session_key", MAX_SESSION_KEY, required=self.target == "session", single_line=True)
        _text(self, "model_version", MAX_MODEL_VERSION, single_line=True)
        _text(self, "reason", MAX_REASON, single_line=True)
        _text(self, "comment", MAX_COMMENT)
        for name, limit in (("template_id", MAX_TEMPLATE_ID), ("event_id", MAX_EVENT_ID), ("message", MAX_MESSAGE)):
            if getattr(self, name) is not None:
                _text(self, name, limit, single_line=name != "message")
        if self.template_id is not None and (not self.template_id or any(c.isspace() for c in self.template_id)):
            raise LabelError("template_id", "must be a non-empty id without whitespace")
        if self.target == "event" and not (self.event_id or self.template_id or self.message):
            raise LabelError("event_id", "an event label needs event_id, template_id or message")
        if self.keys is not None:
            object.__setattr__(self, "keys", _keys(self.keys))
        if self.reason_code is not None:
            try:
                object.__setattr__(self, "reason_code", parse_reason_code(self.reason_code))
            except ValueError as exc:
                raise LabelError("reason_code", str(exc)) from None
        if self.external_id is not None:
            _text(self, "external_id", MAX_EXTERNAL_ID, required=True, single_line=True)
        if self.attributes is not None:
            object.__setattr__(self, "attributes", _attributes(self.attributes))
        if self.id is not None and (not isinstance(self.id, int) or isinstance(self.id, bool) or self.id < 1):
            raise LabelError("id", "must be a positive integer")
        for name in ("created_at", "retracted_at"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, utc_timestamp(getattr(self, name), name))

    @property
    def subject(self) -> str:
        """What the label is about: its session, else (an event label without one) its event."""
        return self.session_key or f"event:{self.event_id or self.template_id or ''}"

    @property
    def false_positive(self) -> bool:
        """The model alerted (or is assumed to have: analysts label alerts) and the analyst says normal."""
        return self.verdict == "normal" and self.predicted != "normal"

    @property
    def missed(self) -> bool:
        """The model passed it and the analyst says it is an anomaly."""
        return self.verdict == "anomaly" and self.predicted == "normal"

    @property
    def content(self) -> tuple:
        """What the label says: everything but the store's bookkeeping and the attributes, which say where the
        labelled event lives and which search sent it (the same verdict sent again from another search is a
        duplicate, not a change)."""
        ignored = ("id", "created_at", "retracted_at", "attributes")
        data = {k: v for k, v in self.to_dict().items() if k not in ignored}
        return (json.dumps(data, sort_keys=True, ensure_ascii=False),)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["keys"] = None if self.keys is None else list(self.keys)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Label:
        """Build from a JSON object (an API request, an export line); unknown fields are an error."""
        if not isinstance(data, dict):
            raise LabelError("label", "must be a JSON object")
        unknown = sorted(set(data) - FIELD_NAMES)
        if unknown:
            raise LabelError(str(unknown[0]), "unknown field")
        for name in ("target", "verdict", "source", "analyst"):
            if data.get(name) in (None, ""):
                raise LabelError(name, "is required")
        return cls(**data)


FIELD_NAMES = frozenset(f.name for f in fields(Label))


def _choice(label: Label, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(label, name)
    if value not in allowed:
        raise LabelError(name, f"must be one of {', '.join(allowed)}, got {str(value)[:40]!r}")


def _text(label: Label, name: str, limit: int, *, required: bool = False, single_line: bool = False) -> None:
    value = getattr(label, name)
    if not isinstance(value, str):
        raise LabelError(name, f"must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise LabelError(name, "must not be empty")
    if len(value) > limit:
        raise LabelError(name, f"longer than {limit} characters ({len(value)})")
    if single_line and _CONTROL.search(value):
        raise LabelError(name, "must not contain control characters (newlines, tabs, ...)")


def _keys(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise LabelError("keys", "must be a list of log keys (template ids)")
    if len(value) > MAX_KEYS:
        raise LabelError("keys", f"more than {MAX_KEYS} keys ({len(value)})")
    for i, key in enumerate(value):
        if not isinstance(key, str) or not key or len(key) > MAX_KEY or any(c.isspace() for c in key):
            raise LabelError(
                "keys",
                f"item {i} must be a non-empty key of at most {MAX_KEY} characters "
                f"without whitespace, got {str(key)[:40]!r}",
            )
    return tuple(value)


def _attributes(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise LabelError("attributes", "must be an object of strings")
    if len(value) > MAX_ATTRIBUTES:
        raise LabelError("attributes", f"more than {MAX_ATTRIBUTES} attributes ({len(value)})")
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > MAX_ATTRIBUTE_KEY or _CONTROL.search(key):
            raise LabelError(
                "attributes", f"keys must be 1 to {MAX_ATTRIBUTE_KEY} characters on one line, got {str(key)[:40]!r}"
            )
        if not isinstance(item, str) or len(item) > MAX_ATTRIBUTE_VALUE or _CONTROL.search(item):
            raise LabelError(
                f"attributes[{key[:40]!r}]", f"must be a string of at most {MAX_ATTRIBUTE_VALUE} characters on one line"
            )
    return dict(value)
