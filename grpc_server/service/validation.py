"""Per-event and per-request input checks. Errors name the field, e.g. ``events[3].message``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from logwarden.core.labels import LabelError
from logwarden.core.parsing.sessions import in_time_range
from logwarden.grpc_server.service.errors import InvalidRequest
from logwarden.grpc_server.service.label_sink import to_label, wire_field
from logwarden.grpc_server.service.schema import EventIn, LabelIn

REPLACED_BYTES = "raw bytes were not valid UTF-8; invalid sequences were replaced with U+FFFD"


@dataclass(frozen=True, slots=True)
class Limits:
    max_events: int = 2000
    max_message_bytes: int = 64 * 1024
    max_field_bytes: int = 1024
    max_attributes: int = 64


def check_batch(items: Sequence, limits: Limits, name: str = "events") -> None:
    if not items:
        raise InvalidRequest(name, "empty batch: send at least one item")
    if len(items) > limits.max_events:
        raise InvalidRequest(name, f"{len(items)} items exceed the limit of {limits.max_events} per request")


def _check_text(field: str, value: str, limit: int) -> None:
    """Within ``limit`` bytes of UTF-8, and valid Unicode (a lone surrogate such as "\\ud800" is not)."""
    if value.isascii():
        if len(value) > limit:
            raise InvalidRequest(field, f"{len(value)} bytes exceed the limit of {limit}")
        return
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidRequest(field, f"not valid Unicode: a lone surrogate at character {exc.start}") from None
    if size > limit:
        raise InvalidRequest(field, f"{size} bytes exceed the limit of {limit}")


def check_event(i: int, event: EventIn, limits: Limits) -> tuple[str, list[str]]:
    """The event's text and warnings; ``InvalidRequest`` names the first bad field."""
    where = f"events[{i}]"
    _check_text(f"{where}.id", event.id, limits.max_field_bytes)
    _check_text(f"{where}.source", event.source, limits.max_field_bytes)
    _check_text(f"{where}.session_key", event.session_key, limits.max_field_bytes)
    if len(event.attributes) > limits.max_attributes:
        raise InvalidRequest(
            f"{where}.attributes", f"{len(event.attributes)} attributes exceed the limit of {limits.max_attributes}"
        )
    for key, value in event.attributes.items():
        _check_text(f"{where}.attributes", key, limits.max_field_bytes)
        _check_text(f"{where}.attributes[{key[:100]!r}]", value, limits.max_field_bytes)
    if event.timestamp is not None and not math.isfinite(event.timestamp):
        raise InvalidRequest(f"{where}.timestamp", "not a finite time")
    if event.timestamp is not None and not in_time_range(event.timestamp):
        raise InvalidRequest(f"{where}.timestamp", "out of range: not a time between the years 1 and 9999")
    if event.message is not None and event.raw is not None:
        raise InvalidRequest(f"{where}.message", "set message or raw, not both")
    warnings: list[str] = []
    if event.raw is not None:
        if len(event.raw) > limits.max_message_bytes:
            raise InvalidRequest(
                f"{where}.raw", f"{len(event.raw)} bytes exceed the limit of {limits.max_message_bytes}"
            )
        try:
            text = event.raw.decode("utf-8")
        except UnicodeDecodeError:
            text = event.raw.decode("utf-8", "replace")
            warnings.append(REPLACED_BYTES)
        field = f"{where}.raw"
    elif event.message is not None:
        text, field = event.message, f"{where}.message"
        _check_text(field, text, limits.max_message_bytes)
    else:
        raise InvalidRequest(f"{where}.message", "missing: set message (or raw, for bytes that are not UTF-8)")
    if not text.strip():
        raise InvalidRequest(field, "empty log line")
    return text, warnings


def check_label(i: int, label: LabelIn, limits: Limits) -> None:
    where = f"labels[{i}]"
    if label.target not in ("event", "session"):
        raise InvalidRequest(f"{where}.target", "must be event or session")
    if label.value not in ("anomaly", "normal"):
        raise InvalidRequest(f"{where}.value", "must be anomaly or normal")
    if label.target == "session" and not label.session_key:
        raise InvalidRequest(f"{where}.session_key", "a session label needs the session key")
    if label.target == "event" and not (label.event_id or label.message or label.template_id):
        raise InvalidRequest(f"{where}.template_id", "an event label needs template_id, event_id or message")
    for name in ("id", "analyst", "source", "session_key", "template_id", "event_id", "model_version"):
        _check_text(f"{where}.{name}", getattr(label, name), limits.max_field_bytes)
    _check_text(f"{where}.comment", label.comment, limits.max_message_bytes)
    _check_text(f"{where}.message", label.message, limits.max_message_bytes)
    if label.time is not None and not math.isfinite(label.time):
        raise InvalidRequest(f"{where}.time", "not a finite time")
    if label.predicted not in ("", "anomaly", "normal"):
        raise InvalidRequest(f"{where}.predicted", "must be anomaly, normal or unset")
    _check_text(f"{where}.reason", label.reason, limits.max_field_bytes)
    for j, key in enumerate(label.keys):
        _check_text(f"{where}.keys[{j}]", key, limits.max_field_bytes)
    try:  # the label store's own rules (required analyst and source, single-line fields, log keys)
        to_label(label)
    except LabelError as exc:
        raise InvalidRequest(f"{where}.{wire_field(exc.field)}", exc.problem) from exc
