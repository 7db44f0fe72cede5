"""The client library the integrations use to reach the LogWarden scoring server.

    from logwarden.integrations.client import LogWardenClient, HttpClient

    with LogWardenClient("logwarden:50051", token=token, tls=True, ca_file="ca.pem") as client:
        for event, result in zip(events, client.score(events)):       # stream mode (the default)
            event["logwarden"] = result.fields()                     # status, score, verdict, reason, ...

    client = HttpClient("https://logwarden:8080", token=token)       # standard library only (Splunk)
    results, sessions = client.score_sessions(events)                # sequence mode: whole sessions

``LogWardenClient`` speaks gRPC (``AsyncLogWardenClient`` is the ``grpc.aio`` twin); ``HttpClient`` speaks
the HTTP/JSON gateway and imports nothing outside the standard library (this package imports grpcio only
when ``LogWardenClient`` is first used). Events are ``Event`` objects, raw lines, or dicts with Event's
fields (``id``, ``message`` | ``raw``, ``source``, ``session_key``, ``timestamp``, ``attributes``,
``session_end``: in stream mode, the session's last event; its end is judged and a session verdict comes back).

**Fail-open contract (never lose an event).** ``score`` and ``score_sessions`` return exactly one
``ScoredEvent`` per input event, in input order, carrying the caller's ``id``, and do not raise for
anything the server or the network does. When the scorer is down (connection refused, UNAVAILABLE /
5xx), overloaded past the retry budget (RESOURCE_EXHAUSTED / 429), too slow (no answer within
``timeout_s`` per try or ``budget_s`` for the whole call), or refuses the call (e.g. a bad token), the
affected events come back with ``status="unscored"`` and a ``reason`` ("scorer unavailable: ...",
"scorer overloaded: ...", "deadline exceeded: ...", "scorer refused the call: ..."); the caller passes
them on (``logwarden.status: unscored``) and keeps going. A call takes at most about ``budget_s``
(default 30 s). Only caller mistakes raise (``ValueError`` / ``TypeError``: an unknown mode, an
event that is not an Event, str or dict). ``status="invalid"`` means the server refused that one event
(``error`` / ``error_field``); retrying will not change it. Labels and model info are not scoring:
``submit_labels``, ``list_labels``, ``iter_labels``, ``retract_labels`` and ``model_info`` retry the same
way, then raise ``ScorerUnavailable``.

Labels: ``submit_labels`` results say ``duplicate`` (the same ``external_id`` and content was stored
before: the same ``label_id`` back) and ``replaced`` (a changed label replaced the stored one);
``list_labels(since=, after_id=, source=, limit=, include_retracted=)`` gives one page
(``{"labels": [{"label_id", "label", "retracted"}], "next_after_id"}``), ``iter_labels`` every page, and
``retract_labels(label_ids=, external_ids=, analyst=)`` withdraws labels (one result per id).

Batching: inputs are split into requests of at most ``max_batch_events`` events and
``max_batch_bytes`` bytes (keep both under the server's ``max_events_per_request`` and
``max_request_bytes``); each batch succeeds or fails open on its own. Stream mode sends events in
input order, so each session continues across batches. Sequence mode keeps every session the caller
keyed (``source``, ``session_key``) in one request; events without a session key may be split. The HTTP
client's ``max_in_flight`` (default 1) sends that many sequence-mode requests at once, each on its own
connection; the answers land at their input positions whatever order they come back in.

Retries: UNAVAILABLE and RESOURCE_EXHAUSTED (HTTP 429, 500, 502, 503) are retried with exponential
backoff and full jitter (``RetryPolicy``), at least as late as the server's ``Retry-After`` (or gRPC's
``grpc-retry-pushback-ms``) asks, while ``budget_s`` lasts. A deadline is not retried: the events go
back unscored at once. (A stream-mode batch retried after the server scored it but its answer was lost
enters that session's server-side window twice; the results the caller gets are from the last try.)

Security: ``token`` is sent as ``authorization: Bearer <token>`` and is never logged or shown in a repr;
TLS with ``tls=True`` / ``ca_file`` (gRPC) or an ``https://`` URL (HTTP), mTLS with ``cert_file`` +
``key_file``. Unscored events are logged (``logging`` logger ``logwarden.client``) as counts and
reasons only, never event contents.
"""

from __future__ import annotations

from typing import Any

from .common import (
    INVALID,
    SCORED,
    UNSCORED,
    Event,
    Expected,
    RetryPolicy,
    ScoredEvent,
    ScoreOptions,
    ScorerUnavailable,
    SessionVerdict,
)
from .http_client import HttpClient

__all__ = [
    "INVALID",
    "SCORED",
    "UNSCORED",
    "AsyncLogWardenClient",
    "Event",
    "Expected",
    "HttpClient",
    "LogWardenClient",
    "RetryPolicy",
    "ScoreOptions",
    "ScoredEvent",
    "ScorerUnavailable",
    "SessionVerdict",
]


def __getattr__(name: str) -> Any:
    if name in ("LogWardenClient", "AsyncLogWardenClient"):  # grpcio only when asked for
        from . import grpc_client

        return getattr(grpc_client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
