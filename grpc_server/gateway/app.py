"""The HTTP/JSON gateway: an aiohttp server in the scoring server's process, on the same ``ScoringService``.

It starts as a companion of ``LogWardenServer`` when ``http_port`` is set, on the same host, with the
same bearer tokens, TLS/mTLS certificates, request size limit (``max_request_bytes``) and drain grace.
The OpenAPI 3.1 description of everything below is served at ``GET /openapi.json`` (``openapi.py``).

Endpoints (JSON in and out, field names as in the proto, snake_case; camelCase is accepted too)::

    POST /v1/score          {"events": [Event], "mode": "stream"|"sequence", "request_id"}
                            -> {"results": [EventResult], "sessions": [SessionResult], "model_version", "request_id"}
    POST /v1/score/event    one Logstash event (or a text/plain raw line) -> {"logwarden": {...}, "event": {...}}
    POST /v1/labels         {"labels": [Label]} -> {"results": [LabelResult]}       (501 without a label store)
    GET  /v1/model          ModelInfo
    POST /v1/model/reload   {"version": "..."} (empty body: the newest) -> {"previous_version", "model", "changed"}
    GET  /healthz           liveness: 200 while the process serves HTTP
    GET  /readyz            readiness: 200 when a model is loaded and the server is not draining, else 503
    GET  /metrics           Prometheus text (the server's registry)
    GET  /openapi.json      this API as an OpenAPI 3.1 document

An ``Event`` is ``{"id", "message" | "raw", "timestamp", "source", "session_key", "attributes",
"session_end"}``: ``raw`` is base64 (the proto JSON mapping of bytes) for lines that are not UTF-8;
``timestamp`` is RFC 3339 or epoch seconds; ``session_end`` (stream mode) marks a session's last event.
As on gRPC, a bad *event* does not fail the batch: its result has ``status: "invalid"``,
``error`` and ``error_field`` (``events[3].message``), and every other event is scored.

Status codes: 400 ``{"error": {"message", "field", "code"}}`` for input that can never succeed (malformed
JSON, a body that is not UTF-8, wrong types, unknown fields, too many events), 413 for a body over
``max_request_bytes``, 401 (``WWW-Authenticate: Bearer``) without a valid token, 404 for an unknown model
version on reload, 409 when a version cannot be loaded, 501 without a label store, and for transient
conditions only 429 (queue full, ``Retry-After``), 503 (draining, ``Retry-After``) and 504 (deadline), so
a shipper that retries on 429/5xx never drops data on a 4xx. Deadlines: ``X-Request-Timeout-Ms`` header
or ``timeout_ms`` query parameter (milliseconds); no work starts once it has passed.

Auth: with ``auth_tokens`` set every route needs ``Authorization: Bearer <token>`` except ``/healthz``
and ``/readyz`` (open for probes unless ``auth_health``) and ``/openapi.json`` (a static description,
no data). ``/metrics`` needs the token: it sits on the port shippers reach; Prometheus sends it with
``authorization: {credentials_file: ...}``, or scrape the token-less ``metrics_port`` on an internal
interface instead. Tokens are compared in constant time and never logged; request bodies are never logged.

Logstash's ``http`` filter (logstash-filter-http) — the contract ``POST /v1/score/event`` is shaped for:

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
  new_template, rank, reason, expected, model_version, source, session_key, warnings}, "event":
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

import asyncio
import base64
import binascii
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from aiohttp import web

from logwarden.core.errors import LogWardenError
from logwarden.grpc_server.gateway.openapi import document, label_fields
from logwarden.grpc_server.security import TokenCheck, ssl_context
from logwarden.grpc_server.service.errors import DeadlineExceeded, InvalidRequest, ServiceError, Unimplemented
from logwarden.grpc_server.service.schema import INVALID, EventIn, EventOut, LabelIn, LabelOut, ScoreOutput

log = structlog.get_logger("logwarden.http")

T = TypeVar("T")
R = TypeVar("R", EventOut, LabelOut)
RETRY_AFTER_S = "1"
MAX_TIMEOUT_MS = 3_600_000
MAX_FIELD_CANDIDATES = 8
OPEN_ROUTES = ("/healthz", "/readyz")
PUBLIC_ROUTES = ("/openapi.json",)
EVENT_FIELDS = ("id", "message", "raw", "timestamp", "source", "session_key", "attributes", "session_end")
MODES = {
    "stream": "stream",
    "sequence": "sequence",
    "": "stream",
    "SCORING_MODE_UNSPECIFIED": "stream",
    "SCORING_MODE_STREAM": "stream",
    "SCORING_MODE_SEQUENCE": "sequence",
}
ENUM_MODES = {None: "stream", 0: "stream", 1: "stream", 2: "sequence"}  # proto JSON may send enum numbers
LABEL_ENUMS = {
    "LABEL_TARGET_EVENT": "event",
    "LABEL_TARGET_SESSION": "session",
    "LABEL_VALUE_ANOMALY": "anomaly",
    "LABEL_VALUE_NORMAL": "normal",
}
DEFAULT_MESSAGE_FIELDS = ("message", "event.original")
DEFAULT_SOURCE_FIELDS = ("source", "host.name", "host.hostname", "host")
DEFAULT_SESSION_FIELDS = ("session_key",)
_UNRESOLVED = re.compile(r"%\{[^}]*\}")  # a Logstash sprintf reference to a field the event did not have
_CAMEL = re.compile(r"(?<!^)([A-Z])")


# -- small helpers ----------------------------------------------------------------------------------


def _snake(name: str) -> str:
    return _CAMEL.sub(r"_\1", name).lower()


def _error_body(message: str, field: str = "", code: str = "") -> dict:
    return {"error": {"message": message, "field": field, "code": code}}


def _json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        data, status=status, headers=headers, dumps=lambda o: json.dumps(o, ensure_ascii=False, separators=(",", ":"))
    )


def _service_error_response(exc: ServiceError) -> web.Response:
    headers = {"Retry-After": RETRY_AFTER_S} if exc.http_status in (429, 503) else None
    return _json_response(_error_body(exc.message, exc.field, exc.code.name), exc.http_status, headers)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _string(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequest(field, f"must be a string, not {_kind(value)}")
    return value


def _bool(value: Any, field: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(field, f"must be a boolean, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _timestamp(value: Any, field: str) -> float | None:
    """RFC 3339 text (the proto JSON mapping of Timestamp) or epoch seconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidRequest(field, "must be an RFC 3339 time or epoch seconds, not a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRequest(field, "not an RFC 3339 time (e.g. 2026-11-02T10:00:00Z)") from None
        seconds = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    else:
        raise InvalidRequest(field, f"must be an RFC 3339 time or epoch seconds, not {_kind(value)}")
    if not math.isfinite(seconds):
        raise InvalidRequest(field, "not a finite time")
    return seconds


def _base64(value: Any, field: str) -> bytes:
    text = _string(value, field)
    text = text.replace("-", "+").replace("_", "/")  # proto JSON accepts URL-safe base64 and no padding
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(field, "not valid base64") from None


def _object(value: Any, field: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidRequest(field, f"must be an object, not {_kind(value)}")
    return value


def _fields(obj: dict, known: tuple[str, ...], where: str) -> dict[str, Any]:
    """``obj`` with camelCase keys mapped to snake_case; an unknown key is an error naming it."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = key if key in known else _snake(key)
        if name not in known:
            raise InvalidRequest(f"{where}{key}"[:200], "unknown field")
        out[name] = value
    return out


def _event_in(i: int, value: Any) -> EventIn:
    where = f"events[{i}]"
    obj = _fields(_object(value, where), EVENT_FIELDS, f"{where}.")
    attributes = obj.get("attributes") or {}
    attributes = _object(attributes, f"{where}.attributes")
    for key, attr in attributes.items():
        _string(attr, f"{where}.attributes[{key[:100]!r}]")
    message = obj.get("message")
    return EventIn(
        id=_string(obj.get("id"), f"{where}.id"),
        message=None if message is None else _string(message, f"{where}.message"),
        raw=None if obj.get("raw") is None else _base64(obj["raw"], f"{where}.raw"),
        timestamp=_timestamp(obj.get("timestamp"), f"{where}.timestamp"),
        source=_string(obj.get("source"), f"{where}.source"),
        session_key=_string(obj.get("session_key"), f"{where}.session_key"),
        attributes=dict(attributes),
        session_end=_bool(obj.get("session_end"), f"{where}.session_end"),
    )


def _label_in(i: int, value: Any, kinds: dict[str, tuple[str, tuple]]) -> LabelIn:
    """Every ``LabelIn`` field is accepted, typed by its annotation (new fields pass through as they appear)."""
    where = f"labels[{i}]"
    obj = _fields(_object(value, where), tuple(kinds), f"{where}.")
    label = LabelIn()
    for name, raw in obj.items():
        if raw is None:
            continue
        kind, field = kinds[name][0], f"{where}.{name}"
        if kind == "time":
            parsed: Any = _timestamp(raw, field)
        elif kind in ("string", "enum"):
            parsed = _string(raw, field)
            parsed = LABEL_ENUMS.get(parsed, parsed) if kind == "enum" else parsed
        elif kind == "bool":
            parsed = _bool(raw, field)
        elif kind == "number":
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise InvalidRequest(field, f"must be a number, not {_kind(raw)}")
            parsed = raw
        elif kind == "strings":
            if not isinstance(raw, list):
                raise InvalidRequest(field, f"must be an array of strings, not {_kind(raw)}")
            parsed = [_string(x, f"{field}[{j}]") for j, x in enumerate(raw)]
        elif isinstance(raw, str | int | float | bool):
            parsed = raw
        else:
            raise InvalidRequest(field, f"must be a string or a number, not {_kind(raw)}")
        setattr(label, name, parsed)
    return label


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


# -- the gateway ------------------------------------------------------------------------------------


class HttpGateway:
    """A ``LogWardenServer`` companion: ``start(server)`` binds ``settings.http_port``; ``stop()`` drains."""

    def __init__(self) -> None:
        self.server: Any = None
        self.port: int | None = None
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._tokens = TokenCheck(())
        self._open: tuple[str, ...] = ()
        self._draining = False

    @property
    def service(self):
        return self.server.service

    # lifecycle

    async def start(self, server) -> None:
        s = server.settings
        self.server = server
        self._tokens = TokenCheck([t.get_secret_value() for t in s.auth_tokens])
        self._open = PUBLIC_ROUTES + (() if s.auth_health else OPEN_ROUTES)
        self.app = app = web.Application(client_max_size=s.max_request_bytes, middlewares=[self._middleware])
        app.on_response_prepare.append(_server_header)
        app.add_routes(
            [
                web.post("/v1/score", self.score),
                web.post("/v1/score/event", self.score_event),
                web.post("/v1/labels", self.labels),
                web.get("/v1/model", self.model),
                web.post("/v1/model/reload", self.reload),
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
                web.get("/metrics", self.metrics),
                web.get("/openapi.json", self.openapi),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=s.shutdown_grace_s)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            s.host,
            s.http_port,
            ssl_context=ssl_context(s.tls_cert, s.tls_key, s.tls_client_ca),
            reuse_address=True,
        )
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise LogWardenError(f"HTTP gateway cannot listen on {s.host}:{s.http_port}: {exc.strerror}") from exc
        self.port = self._runner.addresses[0][1]
        log.info("http gateway serving", host=s.host, port=self.port, tls=bool(s.tls_cert), auth=bool(self._tokens))

    async def stop(self) -> None:
        """Refuse new connections, finish in-flight requests within ``shutdown_grace_s``."""
        if self._runner is None or self._draining:
            return
        self._draining = True
        await self._runner.cleanup()
        log.info("http gateway stopped")

    @property
    def draining(self) -> bool:
        return self._draining or bool(getattr(self.server, "draining", False))

    # plumbing: auth, errors, metrics

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        started = time.perf_counter()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        try:
            if self._tokens and route not in self._open and not self._authorized(request):
                response = _json_response(
                    _error_body("missing or invalid bearer token", "authorization", "UNAUTHENTICATED"),
                    401,
                    {"WWW-Authenticate": 'Bearer realm="logwarden"'},
                )
            else:
                response = await handler(request)
        except ServiceError as exc:
            quiet = exc.http_status in (429, 503)
            (log.debug if quiet else log.info)(
                "http request refused", route=route, status=exc.http_status, error=exc.message
            )
            response = _service_error_response(exc)
        except web.HTTPRequestEntityTooLarge:
            limit = self.server.settings.max_request_bytes
            response = _json_response(
                _error_body(f"body: larger than the limit of {limit} bytes", "body", "INVALID_ARGUMENT"), 413
            )
        except web.HTTPException as exc:  # 404 / 405 from the router
            response = _json_response(
                _error_body(exc.reason, "", ""), exc.status, {k: v for k, v in exc.headers.items() if k == "Allow"}
            )
        except Exception as exc:  # answer 500 (retryable for shippers) and keep serving
            log.error("http request failed", route=route, error=f"{type(exc).__name__}: {exc}")
            response = _json_response(_error_body("internal error", "", "INTERNAL"), 500)
        metrics = self.server.metrics
        metrics.http_requests.labels(route, request.method, str(response.status)).inc()
        metrics.http_latency.labels(route).observe(time.perf_counter() - started)
        return response

    def _authorized(self, request: web.Request) -> bool:
        return self._tokens.accepts(request.headers.get("Authorization"))

    async def _body(self, request: web.Request) -> bytes:
        limit = self.server.settings.max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
        return await request.read()

    async def _json(self, request: web.Request, *, empty: Any = ...) -> Any:
        data = await self._body(request)
        if not data.strip() and empty is not ...:
            return empty
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest(
                "body", f"not valid UTF-8 (byte {exc.start}); send such lines base64 in events[].raw"
            ) from None
        try:
            return json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise InvalidRequest("body", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        except (ValueError, RecursionError) as exc:
            raise InvalidRequest("body", f"not valid JSON: {str(exc)[:200] or 'nested too deeply'}") from None

    def _timeout(self, request: web.Request) -> float | None:
        value = request.headers.get("X-Request-Timeout-Ms")
        field = "X-Request-Timeout-Ms"
        if value is None:
            value, field = request.query.get("timeout_ms"), "timeout_ms"
        if value is None:
            return None
        try:
            ms = float(value)
        except ValueError:
            raise InvalidRequest(field, "must be a number of milliseconds") from None
        if not math.isfinite(ms) or not 0 <= ms <= MAX_TIMEOUT_MS:
            raise InvalidRequest(field, f"must be between 0 and {MAX_TIMEOUT_MS} milliseconds")
        return ms / 1000

    async def _bounded(self, call: Awaitable[T], timeout: float | None) -> T:
        """Run ``call``; past the deadline it is cancelled (the scheduler drops its queued work) and 504."""
        if timeout is None:
            return await call
        try:
            async with asyncio.timeout(timeout):
                return await call
        except TimeoutError:
            raise DeadlineExceeded("deadline exceeded while scoring") from None

    def _batch(self, body: dict, name: str) -> list:
        """``body[name]``: a non-empty array within the per-request limit."""
        items = body.get(name)
        if not isinstance(items, list):
            raise InvalidRequest(
                name, "missing or not an array" if items is None else f"must be an array, not {_kind(items)}"
            )
        if not items:
            raise InvalidRequest(name, "empty batch: send at least one item")
        if len(items) > self.service.limits.max_events:
            raise InvalidRequest(
                name, f"{len(items)} items exceed the limit of {self.service.limits.max_events} per request"
            )
        return items

    # handlers

    async def score(self, request: web.Request) -> web.Response:
        timeout = self._timeout(request)
        body = _fields(
            _object(await self._json(request), "body"),
            ("events", "mode", "request_id", "idempotency_key", "model", "window_scope", "partial_sessions"),
            "",
        )
        request_id = _string(body.get("request_id"), "request_id")
        if len(request_id.encode()) > self.service.limits.max_field_bytes:
            raise InvalidRequest("request_id", f"longer than {self.service.limits.max_field_bytes} bytes")
        raw_mode = body.get("mode")
        if isinstance(raw_mode, str):
            mode = MODES.get(raw_mode)
        else:
            mode = None if isinstance(raw_mode, bool | float | list | dict) else ENUM_MODES.get(raw_mode)
        if mode is None:
            raise InvalidRequest("mode", "unknown mode: use stream or sequence")
        events = self._batch(body, "events")
        decoded: list[EventIn | InvalidRequest] = []
        for i, value in enumerate(events):
            try:
                decoded.append(_event_in(i, value))
            except InvalidRequest as exc:
                decoded.append(exc)
        good = [(i, e) for i, e in enumerate(decoded) if isinstance(e, EventIn)]
        if good:
            out = await self._bounded(self.service.score([e for _, e in good], mode, timeout=timeout), timeout)
        else:
            out = ScoreOutput([], [], self.service.model_info().version)
        results: list[EventOut] = []
        k = 0  # the event's index among the decodable ones, as the service numbered them
        for i, item in enumerate(decoded):
            if isinstance(item, InvalidRequest):
                source = events[i].get("source") if isinstance(events[i], dict) else None
                results.append(
                    EventOut(
                        id=_event_id(events[i]),
                        status=INVALID,
                        error=item.message,
                        error_field=item.field,
                        model_version=out.model_version,
                        source=source if isinstance(source, str) else "",
                    )
                )
                continue
            results.append(_reindex(out.results[k], "events", k, i))
            k += 1
        invalid = sum(isinstance(item, InvalidRequest) for item in decoded)
        if invalid:
            self.server.metrics.events.labels(out.model_version, "invalid").inc(invalid)
        response = ScoreOutput(results, out.sessions, out.model_version).to_dict()
        response["request_id"] = request_id
        return _json_response(response)

    async def score_event(self, request: web.Request) -> web.Response:
        timeout = self._timeout(request)
        query = request.query
        limit = self.service.limits.max_field_bytes
        where: dict[str, str] = {}
        if request.content_type == "text/plain":
            data = await self._body(request)
            try:
                message: Any = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidRequest("body", f"not valid UTF-8 (byte {exc.start})") from None
            body: dict = {}
            where["message"] = "body"
        else:
            body = _object(await self._json(request), "body")
            message, where["message"] = self._pick(body, query, "message_field", DEFAULT_MESSAGE_FIELDS, limit)
            if message is None:
                raise InvalidRequest(where["message"], "missing: the event has no log line to score")
            if not isinstance(message, str):
                raise InvalidRequest(where["message"], f"must be a string, not {_kind(message)}")
        values: dict[str, str] = {}
        for name, fields_param, defaults in (
            ("source", "source_field", DEFAULT_SOURCE_FIELDS),
            ("session_key", "session_field", DEFAULT_SESSION_FIELDS),
        ):
            if _present(query.get(name)):
                values[name], where[name] = query[name], f"query.{name}"
                continue
            value, where[name] = self._pick(body, query, fields_param, defaults, limit, scalar=True)
            values[name] = "" if value is None else str(value)
        event = EventIn(message=message, source=values["source"], session_key=values["session_key"])
        out = await self._bounded(self.service.score([event], "stream", timeout=timeout), timeout)
        (result,) = out.results
        if result.status == INVALID:
            attr = result.error_field.removeprefix("events[0].")
            field = where.get(attr, attr)
            raise InvalidRequest(field, result.error.removeprefix(f"{result.error_field}: "))
        return _json_response(logstash_response(result))

    @staticmethod
    def _pick(
        body: dict, query, param: str, defaults: tuple[str, ...], limit: int, scalar: bool = False
    ) -> tuple[Any, str]:
        """The first present field among the query's ``param`` paths (else ``defaults``): (value, path)."""
        configured = query.get(param)
        if configured is not None and len(configured.encode()) > limit:
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
                    raise InvalidRequest(path, f"must be a string or a number, not {_kind(value)}")
                continue  # e.g. ECS's object ``host`` among the defaults: try the next one
            return value, path
        return None, paths[0] if paths else param

    async def labels(self, request: web.Request) -> web.Response:
        if self.service.labels is None:
            raise Unimplemented("this server has no label store configured (set label_db)")
        body = _fields(_object(await self._json(request), "body"), ("labels",), "")
        items = self._batch(body, "labels")
        decoded: list[LabelIn | InvalidRequest] = []
        kinds = label_fields()
        for i, value in enumerate(items):
            try:
                decoded.append(_label_in(i, value, kinds))
            except InvalidRequest as exc:
                decoded.append(exc)
        good = [(i, x) for i, x in enumerate(decoded) if isinstance(x, LabelIn)]
        stored = await self.service.submit_labels([x for _, x in good]) if good else []
        results: list[LabelOut] = []
        k = 0
        for i, item in enumerate(decoded):
            if isinstance(item, InvalidRequest):
                results.append(LabelOut(_event_id(items[i]), False, item.message, item.field))
                continue
            results.append(_reindex(stored[k], "labels", k, i))
            k += 1
        return _json_response({"results": [r.to_dict() for r in results]})

    async def model(self, request: web.Request) -> web.Response:
        return _json_response(self.service.model_info().to_dict())

    async def reload(self, request: web.Request) -> web.Response:
        body = _fields(_object(await self._json(request, empty={}), "body"), ("version",), "")
        version = _string(body.get("version"), "version") or None
        previous, info, changed = await self.service.reload_model(version)
        log.info("model reloaded", previous=previous, version=info.version, changed=changed, via="http")
        return _json_response({"previous_version": previous, "model": info.to_dict(), "changed": changed})

    async def healthz(self, request: web.Request) -> web.Response:
        return _json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        reason = ""
        if self.draining:
            reason = "draining"
        elif self.server.service is None:
            reason = "starting"
        else:
            try:
                version = self.service.model_info().version
            except ServiceError:
                reason = "no model loaded"
        if reason:
            return _json_response({"status": "not ready", "reason": reason}, 503, {"Retry-After": RETRY_AFTER_S})
        return _json_response({"status": "ready", "model_version": version})

    async def metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.server.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def openapi(self, request: web.Request) -> web.Response:
        return _json_response(document(self.service.limits.max_events))


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = "logwarden"  # not aiohttp's name and version


def _event_id(value: Any) -> str:
    ident = value.get("id") if isinstance(value, dict) else None
    return ident[:1024] if isinstance(ident, str) else ""


def _reindex(result: R, name: str, j: int, i: int) -> R:
    """The service numbered the item ``j`` (among the decodable ones); the request numbers it ``i``."""
    old, new = f"{name}[{j}]", f"{name}[{i}]"
    if result.error_field.startswith(old):
        result.error_field = new + result.error_field[len(old) :]
        result.error = result.error.replace(old, new, 1)
    return result


def logstash_response(result: EventOut) -> dict:
    """The body for Logstash's ``target_body``: a ``logwarden`` object and ECS ``event.risk_score*`` (0–100)."""
    risk = round(result.score * 100, 3)
    d = result.to_dict()
    keys = (
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
    return {"logwarden": {k: d[k] for k in keys}, "event": {"risk_score": risk, "risk_score_norm": risk}}
