"""Shippers' batch bodies on ``POST /v1/score``: NDJSON (``application/x-ndjson``, one JSON object per line)
and a bare JSON array, as syslog-ng's ``http()``, Fluent Bit's ``http`` output (``json_lines`` / ``json``)
and Vector send them.

Each line (array item) is one event: an object whose keys are all Event fields is an ``Event`` (strict, as
in ``{"events": [...]}``); any other object is a shipper's record, mapped by ``records.py`` (``message`` /
``log``, ``host``, ``ts`` / ``date`` / ``timestamp``, ...; query parameters name other fields). Blank lines
are skipped. A line that is not valid UTF-8 or JSON, or not an object, is an *invalid event* named by its
position and line (``events[3]``: ``line 4: not valid JSON ...``): the other events are scored, never a 400
for the whole body (Fluent Bit drops a batch on a 400; syslog-ng retries it forever).

The request's options are query parameters (``ScoreQuery``): ``mode``, ``model``, ``window_scope``,
``partial_sessions``, ``request_id``, and the field parameters; the idempotency key is the
``Idempotency-Key`` header.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from logwarden.grpc_server.gateway import records, wire
from logwarden.grpc_server.service.errors import InvalidRequest
from logwarden.grpc_server.service.schema import EventIn
from logwarden.grpc_server.service.validation import Limits, check_batch

NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")
EVENT_KEYS = frozenset(name for field in wire.Event.model_fields for name in (field, to_camel(field)))


class ScoreQuery(records.FieldQuery):
    """The query parameters of ``POST /v1/score`` with an NDJSON or array body."""

    model_config = ConfigDict(extra="forbid")

    mode: Annotated[str, BeforeValidator(wire._mode)] = Field(
        "stream", description="stream (windows continue across calls) or sequence (whole sessions)"
    )
    model: str = Field("", description="the model route to score with (empty: the routing rules, else the default)")
    window_scope: str = Field("", description="stream mode: the scope of the windows (own TTL and quota)")
    partial_sessions: bool = Field(
        False, description="sequence mode: sessions without an event marked session_end are open (not judged whole)"
    )
    request_id: str = Field("", description="echoed in the response")
    timeout_ms: float | None = Field(None, description="deadline in milliseconds")


def is_ndjson(content_type: str) -> bool:
    return content_type in NDJSON_TYPES


def query_options(query: Mapping[str, str]) -> ScoreQuery:
    """The request's options from its query string; a bad parameter raises naming it."""
    return wire.decode_query(ScoreQuery, query)


class BadLine:
    """A line that is no JSON value: what is wrong with it."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def ndjson_items(data: bytes) -> list[tuple[int, Any]]:
    """The body's non-blank lines as (line number, JSON value or ``BadLine``)."""
    out: list[tuple[int, Any]] = []
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.append((number, BadLine(f"not valid UTF-8 (byte {exc.start})")))
            continue
        try:
            out.append((number, json.loads(text, parse_constant=wire.reject_constant)))
        except json.JSONDecodeError as exc:
            out.append((number, BadLine(f"not valid JSON: {exc.msg} (column {exc.colno})")))
        except (ValueError, RecursionError) as exc:
            out.append((number, BadLine(f"not valid JSON: {str(exc)[:200] or 'nested too deeply'}")))
    return out


def decode_items(
    items: list[tuple[int | None, Any]], query: Mapping[str, str], limits: Limits
) -> list[EventIn | InvalidRequest]:
    """Each item (with its line number, None for an array item) as an event, or the error naming it."""
    check_batch(items, limits, "events")
    return [_decode(i, line, value, query, limits) for i, (line, value) in enumerate(items)]


def _decode(i: int, line: int | None, value: Any, query: Mapping[str, str], limits: Limits) -> EventIn | InvalidRequest:
    where = f"events[{i}]"
    at = f"line {line}: " if line is not None else ""
    if isinstance(value, BadLine):
        return InvalidRequest(where, at + value.problem)
    if not isinstance(value, dict):
        return InvalidRequest(where, f"{at}must be an object (an Event or a shipper's record), not {wire.kind(value)}")
    try:
        if value.keys() <= EVENT_KEYS:
            try:
                return wire.Event.model_validate(value).to_service()
            except ValidationError as exc:
                raise wire.as_invalid(wire.Event, exc.errors()[0]) from None
        return records.event_from_record(value, query, limits.max_field_bytes)[0]
    except InvalidRequest as exc:
        problem = exc.message.removeprefix(f"{exc.field}: ")
        return InvalidRequest(f"{where}.{exc.field}", at + problem)
