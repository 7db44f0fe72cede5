"""``POST /v1/score/event``: one Logstash event in, the fields Logstash's ``http`` filter sets back out.

Logstash's ``http`` filter (logstash-filter-http) — the contract this endpoint is shaped for:

* It sends only what ``body`` says (field references are filled in with ``%{...}``), as JSON with
  ``body_format => "json"`` (content-type application/json), or as text with the default ``"text"``
  (content-type text/plain: then the body is the raw line and ``source`` / ``session_key`` come from the
  query). Its default verb is GET: set ``verb => "POST"``. A reference to a field the event lacks stays
  literally ``%{[host][name]}``; the gateway treats such a value as absent.
* The message is ``message`` (else ``event.original``); the source is the top-level ``source``, else
  ``host.name``, ``host.hostname``, or a string ``host``; the session key is the top-level
  ``session_key`` (else the model's session rule finds it in the line, else the source). Query
  parameters change that per pipeline: ``message_field``, ``source_field``, ``session_field`` take field
  paths (``host.name`` or ``[host][name]``; comma-separated fallbacks), ``source`` / ``session_key`` take
  values. Events are scored in stream mode (the window of their (source, session) continues).
* On a 2xx JSON response the filter parses the body and *sets* (does not deep-merge) it at
  ``target_body``. The body is ``{"logwarden": {status, score, verdict, anomalous, template, template_id,
  new_template, rank, reason, reason_code, expected, model_version, source, session_key, warnings}, "event":
  {risk_score, risk_score_norm}}`` (ECS: both on a 0–100 scale). Put it under ``[@metadata][logwarden]``
  and copy the parts into place, which keeps the event's other ``event.*`` fields::

      http { url => "https://logwarden:8080/v1/score/event?source_field=host.name" verb => "POST"
             body_format => "json" body => { "message" => "%{message}" "host" => { "name" => "%{[host][name]}" } }
             headers => { "Authorization" => "Bearer ${LOGWARDEN_TOKEN}" } target_body => "[@metadata][logwarden]" }
      mutate { copy => { "[@metadata][logwarden][logwarden]" => "[logwarden]"
                         "[@metadata][logwarden][event][risk_score]" => "[event][risk_score]"
                         "[@metadata][logwarden][event][risk_score_norm]" => "[event][risk_score_norm]" } }

* On any other status, or when the connection fails, the filter logs an error, adds the
  ``_httprequestfailure`` tag and passes the event on unchanged: it never drops it, and it does not
  retry an error status (the client's ``automatic_retries`` covers I/O failures, by default not of a
  POST). Bound the wait with ``headers => { "X-Request-Timeout-Ms" => "2000" }``. So
  an overloaded or draining gateway (429/503) costs scores, never events; mark those events with
  ``if "_httprequestfailure" in [tags] { mutate { add_field => { "[logwarden][status]" => "unscored" } } }``.
  A 400 here (no message, an empty line, a field of the wrong type) means that event will never score.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from logwarden.grpc_server.gateway.wire import kind, printable
from logwarden.grpc_server.service.errors import InvalidRequest
from logwarden.grpc_server.service.schema import EventIn, EventOut

MAX_FIELD_CANDIDATES = 8
DEFAULT_MESSAGE_FIELDS = ("message", "event.original")
DEFAULT_SOURCE_FIELDS = ("source", "host.name", "host.hostname", "host")
DEFAULT_SESSION_FIELDS = ("session_key",)
ANSWER_FIELDS = (
    "status",
    "score",
    "verdict",
    "anomalous",
    "template",
    "template_id",
    "new_template",
    "rank",
    "reason",
    "reason_code",
    "expected",
    "model_version",
    "source",
    "session_key",
    "warnings",
)
_UNRESOLVED = re.compile(r"%\{[^}]*\}")  # a Logstash sprintf reference to a field the event did not have


class Query(BaseModel):
    """The query parameters of ``POST /v1/score/event`` (the OpenAPI document lists them from here)."""

    message_field: str = Field(
        "", description="field path(s) of the line, comma-separated (default: message, event.original)"
    )
    source_field: str = Field(
        "", description="field path(s) of the source (default: source, host.name, host.hostname, host)"
    )
    session_field: str = Field("", description="field path(s) of the session key (default: session_key)")
    source: str = Field("", description="the source itself")
    session_key: str = Field("", description="the session key itself")


def event_from_text(line: str, query: Mapping[str, str], limit: int) -> tuple[EventIn, dict[str, str]]:
    """``body_format => "text"``: the body is the line; the source and the session come from the query."""
    return _event(line, {}, query, limit, {"message": "body"})


def event_from_json(body: Any, query: Mapping[str, str], limit: int) -> tuple[EventIn, dict[str, str]]:
    """A JSON Logstash event; also returns where each event field came from (for errors)."""
    if not isinstance(body, dict):
        raise InvalidRequest("body", f"must be an object, not {kind(body)}")
    message, where = _pick(body, query, "message_field", DEFAULT_MESSAGE_FIELDS, limit)
    if message is None:
        raise InvalidRequest(where, "missing: the event has no log line to score")
    if not isinstance(message, str):
        raise InvalidRequest(where, f"must be a string, not {kind(message)}")
    return _event(message, body, query, limit, {"message": where})


def _event(
    message: str, body: dict, query: Mapping[str, str], limit: int, where: dict[str, str]
) -> tuple[EventIn, dict[str, str]]:
    values: dict[str, str] = {}
    for name, fields_param, defaults in (
        ("source", "source_field", DEFAULT_SOURCE_FIELDS),
        ("session_key", "session_field", DEFAULT_SESSION_FIELDS),
    ):
        if _present(query.get(name)):
            values[name], where[name] = query[name], f"query.{name}"
            continue
        value, where[name] = _pick(body, query, fields_param, defaults, limit, scalar=True)
        values[name] = "" if value is None else str(value)
    return EventIn(message=message, source=values["source"], session_key=values["session_key"]), where


def refused(result: EventOut, where: dict[str, str]) -> InvalidRequest:
    """An invalid result as the error naming the request's own field (``host.name``, ``query.source``)."""
    attr = result.error_field.removeprefix("events[0].")
    return InvalidRequest(where.get(attr, attr), result.error.removeprefix(f"{result.error_field}: "))


def answer(result: EventOut) -> dict:
    """The body for Logstash's ``target_body``: a ``logwarden`` object and ECS ``event.risk_score*`` (0–100)."""
    risk = round(result.score * 100, 3)
    d = result.to_dict()
    return {"logwarden": {k: d[k] for k in ANSWER_FIELDS}, "event": {"risk_score": risk, "risk_score_norm": risk}}


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
    body: dict, query: Mapping[str, str], param: str, defaults: tuple[str, ...], limit: int, scalar: bool = False
) -> tuple[Any, str]:
    """The first present field among the query's ``param`` paths (else ``defaults``): (value, path)."""
    configured = query.get(param)
    if configured is not None and len(configured.encode("utf-8", "surrogatepass")) > limit:
        raise InvalidRequest(param, f"longer than {limit} bytes")
    paths = [p.strip() for p in configured.split(",") if p.strip()] if configured else list(defaults)
    if len(paths) > MAX_FIELD_CANDIDATES:
        raise InvalidRequest(param, f"more than {MAX_FIELD_CANDIDATES} field paths")
    for path in paths:
        value = _lookup(body, path)
        if not _present(value):
            continue
        if scalar and (isinstance(value, bool) or not isinstance(value, str | int | float)):
            if configured:  # the pipeline named this field: its type is a configuration error
                raise InvalidRequest(printable(path), f"must be a string or a number, not {kind(value)}")
            continue  # e.g. ECS's object ``host`` among the defaults: try the next one
        return value, printable(path)
    return None, printable(paths[0]) if paths else param
