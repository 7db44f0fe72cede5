"""A shipper's record (any JSON object that is not an Event) as the service's ``EventIn``.

Shippers send their own records, not LogWarden Events: a Logstash event (``POST /v1/score/event``),
syslog-ng's ``format-json`` (``message``, ``host``, ``ts``), Fluent Bit's ``json_lines``
(``{"date": <epoch float>, "log": ..., "host": ...}``), Vector's (``message``, ``host``, ``timestamp``).
Each event field is read from the first present field among its candidates; a query parameter names
other ones (field paths such as ``host.name`` or ``[host][name]``; comma-separated fallbacks)::

    event field   query parameter       default candidates
    message       message_field         message, log, event.original   (a string)
    source        source_field          source, host.name, host.hostname, host
    session_key   session_field         session_key
    id            id_field              id
    timestamp     timestamp_field       timestamp, @timestamp, date, ts (RFC 3339 or epoch seconds)
    attributes    attributes_field      attributes                      (an object of scalars)
    session_end   session_end_field     session_end                     (true/false, or the text "true"/"false")

``source`` and ``session_key`` may also be given as values (query parameters of those names). A value
of the wrong kind in a *default* candidate is passed over (ECS's ``host`` and ``log`` are objects); in a
field the query named it is an error naming that field. A Logstash reference to a field the event
lacks (a literal ``%{[host][name]}``) counts as absent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, Field

from logwarden.grpc_server.gateway.wire import _time, kind, printable
from logwarden.grpc_server.service.errors import InvalidRequest
from logwarden.grpc_server.service.schema import EventIn

MAX_FIELD_CANDIDATES = 8
_UNRESOLVED = re.compile(r"%\{[^}]*\}")  # a Logstash sprintf reference to a field the event did not have


class FieldQuery(BaseModel):
    """The query parameters that say where a record's event fields are (the OpenAPI document lists them)."""

    message_field: str = Field(
        "", description="field path(s) of the line, comma-separated (default: message, log, event.original)"
    )
    source_field: str = Field(
        "", description="field path(s) of the source (default: source, host.name, host.hostname, host)"
    )
    session_field: str = Field("", description="field path(s) of the session key (default: session_key)")
    id_field: str = Field("", description="field path(s) of the event id, echoed in the result (default: id)")
    timestamp_field: str = Field(
        "",
        description="field path(s) of the time, RFC 3339 or epoch seconds (default: timestamp, @timestamp, date, ts)",
    )
    attributes_field: str = Field("", description="field path(s) of an object of attributes (default: attributes)")
    session_end_field: str = Field(
        "", description="field path(s) of a boolean: the session's last event (default: session_end)"
    )
    source: str = Field("", description="the source itself")
    session_key: str = Field("", description="the session key itself")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value)


def _timestamp(value: Any) -> float | None:
    try:
        return _time(value)
    except ValueError:
        return None


def _attributes(value: Any) -> dict[str, str] | None:
    if not isinstance(value, dict):
        return None
    out: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, str):
            out[key] = item
        elif isinstance(item, bool | int | float):
            out[key] = json.dumps(item)
        elif item is not None:  # null: left out
            return None
    return out


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


# event field -> (query parameter, default candidates, conversion (None: not this kind), what it must be)
FIELDS: dict[str, tuple[str, tuple[str, ...], Callable[[Any], Any], str]] = {
    "message": ("message_field", ("message", "log", "event.original"), _text, "a string"),
    "source": ("source_field", ("source", "host.name", "host.hostname", "host"), _scalar, "a string or a number"),
    "session_key": ("session_field", ("session_key",), _scalar, "a string or a number"),
    "id": ("id_field", ("id",), _scalar, "a string or a number"),
    "timestamp": (
        "timestamp_field",
        ("timestamp", "@timestamp", "date", "ts"),
        _timestamp,
        "an RFC 3339 time or epoch seconds (years 1 to 9999)",
    ),
    "attributes": ("attributes_field", ("attributes",), _attributes, "an object of strings, numbers or booleans"),
    "session_end": ("session_end_field", ("session_end",), _flag, "a boolean (or the text true or false)"),
}
VALUE_PARAMS = ("source", "session_key")  # query parameters that give the value itself


def event_from_record(record: Any, query: Mapping[str, str], limit: int) -> tuple[EventIn, dict[str, str]]:
    """The event of a record, and where each of its fields came from (``host.name``, ``query.source``), so
    that the service's errors can name the record's own field. ``InvalidRequest`` names a bad field."""
    if not isinstance(record, dict):
        raise InvalidRequest("body", f"must be an object, not {kind(record)}")
    values, where = pick_fields(record, query, limit)
    if values.get("message") is None:
        found = _lookup(record, where["message"])
        if _present(found):  # a default candidate of the wrong kind, and no other
            raise InvalidRequest(where["message"], f"must be a string, not {kind(found)}")
        candidates = query.get("message_field") or ", ".join(FIELDS["message"][1])
        raise InvalidRequest(where["message"], f"missing: the record has no log line ({printable(candidates)})")
    return event_from_values(values), where


def pick_fields(
    record: dict, query: Mapping[str, str], limit: int, names: tuple[str, ...] = tuple(FIELDS)
) -> tuple[dict[str, Any], dict[str, str]]:
    """The event fields ``names`` read from ``record`` (absent ones left out) and where each came from."""
    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    for name in names:
        if name in VALUE_PARAMS and _present(query.get(name)):
            values[name], where[name] = query[name], f"query.{name}"
            continue
        param, defaults, convert, expected = FIELDS[name]
        value, where[name] = _pick(record, query, param, defaults, limit, convert, expected)
        if value is not None:
            values[name] = value
    return values, where


def event_from_values(values: Mapping[str, Any]) -> EventIn:
    return EventIn(
        id=values.get("id", ""),
        message=values.get("message"),
        timestamp=values.get("timestamp"),
        source=values.get("source", ""),
        session_key=values.get("session_key", ""),
        attributes=values.get("attributes", {}),
        session_end=values.get("session_end", False),
    )


def _lookup(body: dict, path: str) -> Any:
    """A field by path: ``host.name``, ``[host][name]``, or a literal top-level ``"host.name"`` key."""
    if path in body:
        return body[path]
    parts = re.findall(r"\[([^\]]*)\]", path) if path.startswith("[") else path.split(".")
    value: Any = body
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _present(value: Any) -> bool:
    return value is not None and value != "" and not (isinstance(value, str) and _UNRESOLVED.fullmatch(value))


def _pick(
    body: dict,
    query: Mapping[str, str],
    param: str,
    defaults: tuple[str, ...],
    limit: int,
    convert: Callable[[Any], Any],
    expected: str,
) -> tuple[Any, str]:
    """The first present field among the query's ``param`` paths (else ``defaults``), converted: (value, path)."""
    configured = query.get(param)
    if configured is not None and len(configured.encode("utf-8", "surrogatepass")) > limit:
        raise InvalidRequest(param, f"longer than {limit} bytes")
    paths = [p.strip() for p in configured.split(",") if p.strip()] if configured else list(defaults)
    if len(paths) > MAX_FIELD_CANDIDATES:
        raise InvalidRequest(param, f"more than {MAX_FIELD_CANDIDATES} field paths")
    passed_over = None
    for path in paths:
        value = _lookup(body, path)
        if not _present(value):
            continue
        converted = convert(value)
        if converted is None:
            if configured:  # the pipeline named this field: its kind is a configuration error
                raise InvalidRequest(printable(path), f"must be {expected}, not {_shown(value)}")
            passed_over = passed_over or path  # e.g. ECS's object ``host`` among the defaults: try the next one
            continue
        return converted, printable(path)
    return None, printable(passed_over or paths[0]) if paths else param


def _shown(value: Any) -> str:
    return kind(value) if not isinstance(value, str) else f"{printable(value[:40])!r}"
