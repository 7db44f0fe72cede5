"""``POST /v1/score/event``: one Logstash event in, the fields Logstash's ``http`` filter sets back out.

Logstash's ``http`` filter (logstash-filter-http) — the contract this endpoint is shaped for:

* It sends only what ``body`` says (field references are filled in with ``%{...}``), as JSON with
  ``body_format => "json"`` (content-type application/json), or as text with the default ``"text"``
  (content-type text/plain: then the body is the raw line and ``source`` / ``session_key`` come from the
  query). Its default verb is GET: set ``verb => "POST"``. A reference to a field the event lacks stays
  literally ``%{[host][name]}``; the gateway treats such a value as absent.
* The event's fields are read as from any shipper's record (``records.py``): the message is ``message``
  (else ``log``, ``event.original``); the source is the top-level ``source``, else ``host.name``,
  ``host.hostname``, or a string ``host``; the session key is ``session_key`` (else the model's session
  rule finds it in the line, else the source); ``id``, ``timestamp`` (else ``@timestamp``), ``attributes``
  and ``session_end`` (a pipeline that knows a session closed, e.g. with the ``aggregate`` filter, sets
  it: the session's end is judged and a ``session`` verdict comes back). Query parameters change that per
  pipeline: ``message_field``, ``source_field``, ``session_field``, ``id_field``, ``timestamp_field``,
  ``attributes_field``, ``session_end_field`` take field paths (``host.name`` or ``[host][name]``;
  comma-separated fallbacks), ``source`` / ``session_key`` take values, ``model`` picks the model route.
  Events are scored in stream mode (the window of their (source, session) continues).
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

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from logwarden.grpc_server.gateway.records import (
    VALUE_PARAMS,
    FieldQuery,
    event_from_record,
    event_from_values,
    pick_fields,
)
from logwarden.grpc_server.service.errors import InvalidRequest
from logwarden.grpc_server.service.schema import EventIn, EventOut, SessionOut

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
SESSION_FIELDS = ("score", "verdict", "anomalous", "reason", "reason_code", "events", "anomalous_events")


class Query(FieldQuery):
    """The query parameters of ``POST /v1/score/event`` (the OpenAPI document lists them from here)."""

    model: str = Field("", description="the model route to score with (empty: the routing rules, else the default)")


def event_from_text(line: str, query: Mapping[str, str], limit: int) -> tuple[EventIn, dict[str, str]]:
    """``body_format => "text"``: the body is the line; the source and the session come from the query."""
    values, where = pick_fields({}, query, limit, VALUE_PARAMS)
    return event_from_values({**values, "message": line}), {**where, "message": "body"}


def event_from_json(body: Any, query: Mapping[str, str], limit: int) -> tuple[EventIn, dict[str, str]]:
    """A JSON Logstash event (a record, ``records.py``); also where each event field came from (for errors)."""
    return event_from_record(body, query, limit)


def refused(result: EventOut, where: dict[str, str]) -> InvalidRequest:
    """An invalid result as the error naming the request's own field (``host.name``, ``query.source``)."""
    attr = result.error_field.removeprefix("events[0].")
    return InvalidRequest(where.get(attr, attr), result.error.removeprefix(f"{result.error_field}: "))


def answer(result: EventOut, sessions: Sequence[SessionOut] = ()) -> dict:
    """The body for Logstash's ``target_body``: a ``logwarden`` object and ECS ``event.risk_score*`` (0–100);
    when the event ended its session, ``logwarden.session`` is the session's verdict."""
    risk = round(result.score * 100, 3)
    d = result.to_dict()
    fields = {k: d[k] for k in ANSWER_FIELDS}
    if sessions:
        s = sessions[0].to_dict()
        fields["session"] = {k: s[k] for k in SESSION_FIELDS}
    return {"logwarden": fields, "event": {"risk_score": risk, "risk_score_norm": risk}}
