"""The HTTP/JSON gateway: an aiohttp server in the scoring server's process, on the same ``ScoringService``.

It starts as a companion of ``LogWardenServer`` when ``http_port`` is set, on the same host, with the
same bearer tokens, TLS/mTLS certificates, request size limit (``max_request_bytes``) and drain grace.
Bodies are decoded by ``wire.py`` (pydantic models; the OpenAPI 3.1 document at ``GET /openapi.json``
is generated from them by ``openapi.py``); ``POST /v1/score/event`` is Logstash's (``logstash.py``).

Endpoints (JSON in and out, field names as in the proto, snake_case; camelCase is accepted too)::

    POST /v1/score          {"events": [Event], "mode": "stream"|"sequence", "request_id"}, or a shippers' batch:
                            NDJSON (application/x-ndjson) or a bare array of Events or records (batches.py)
                            -> {"results": [EventResult], "sessions": [SessionResult], "model_version", "request_id"}
    POST /v1/score/event    one Logstash event (or a text/plain raw line) -> {"logwarden": {...}, "event": {...}}
    POST /v1/score/completion  {"input": "<line>" | "<source>\u001f<session>\u001f<line>"}
                            -> {"completion": "<the /v1/score/event answer as JSON text>"} (Elasticsearch's
                            ``custom`` inference service, completion task: it takes only strings back)
    POST /v1/labels         {"labels": [Label]} -> {"results": [LabelResult]}       (501 without a label store)
    GET  /v1/labels         ?since=&after_id=&source=&limit=&include_retracted= -> {"labels": [...], "next_after_id"}
    POST /v1/labels/retract {"label_ids": [...], "external_ids": [...], "analyst"} -> {"results": [RetractResult]}
    GET  /v1/model          ModelInfo
    POST /v1/model/reload   {"version": "..."} (empty body: the newest) -> {"previous_version", "model", "changed"}
    GET  /healthz           liveness: 200 while the process serves HTTP
    GET  /readyz            readiness: 200 when a model is loaded and the server is not draining, else 503
    GET  /metrics           Prometheus text (the server's registry)
    GET  /openapi.json      this API as an OpenAPI 3.1 document

As on gRPC, a bad *event* does not fail the batch: its result has ``status: "invalid"``, ``error`` and
``error_field`` (``events[3].message``; an NDJSON line that is not JSON: ``events[3]``, "line 4: ..."),
and every other event is scored.

Status codes: 400 ``{"error": {"message", "field", "code"}}`` for input that can never succeed (malformed
JSON, a body that is not UTF-8, wrong types, unknown fields, text that is not valid Unicode, too many
events), 413 for a body over ``max_request_bytes``, 408 for a body not received within
``http_read_timeout_s``, 401 (``WWW-Authenticate: Bearer``) without a valid token, 403 for a scoring
token on an admin call, 404 for an unknown model version on reload, 409 when a version cannot be
loaded, 501 without a label store, and for transient conditions only 429 (queue full, ``Retry-After``),
503 (draining, ``Retry-After``) and 504 (deadline), so a shipper that retries on 429/5xx never drops data
on a 4xx; 500 only for the server's own faults. Error messages never hold server paths. Deadlines:
``X-Request-Timeout-Ms`` header or ``timeout_ms`` query parameter (milliseconds); no work starts once it
has passed.

Auth: with ``auth_tokens`` or ``admin_tokens`` set every route needs ``Authorization: Bearer <token>``
except ``/healthz`` and ``/readyz`` (open for probes unless ``auth_health``) and ``/openapi.json`` (a
static description, no data); ``/v1/model/reload`` needs an admin token. ``/metrics`` needs a token:
it sits on the port shippers reach; Prometheus sends it with ``authorization: {credentials_file: ...}``.
The standalone ``metrics_port`` (``MetricsEndpoint``) serves ``/metrics`` alone, with the same TLS and
tokens. Tokens are compared in constant time and never logged; request bodies are never logged.

Connections: a connection must send a request's headers within ``http_header_timeout_s`` (of opening,
or of its previous answer) and its body within ``http_read_timeout_s``, else it is closed (slow-loris);
at most ``http_max_connections`` are open, more are closed at once.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import structlog
from aiohttp import web

from logwarden.core.errors import LogWardenError
from logwarden.grpc_server.gateway import batches, logstash, wire
from logwarden.grpc_server.gateway.openapi import document
from logwarden.grpc_server.security import TokenCheck, ssl_context
from logwarden.grpc_server.service.errors import DeadlineExceeded, InvalidRequest, ServiceError, Unimplemented
from logwarden.grpc_server.service.schema import INVALID, EventIn, EventOut, LabelIn, LabelOut, ScoreOutput

log = structlog.get_logger("logwarden.http")

T = TypeVar("T")
R = TypeVar("R", EventOut, LabelOut)
RETRY_AFTER_S = "1"
MAX_TIMEOUT_MS = 3_600_000
OPEN_ROUTES = ("/healthz", "/readyz")
PUBLIC_ROUTES = ("/openapi.json",)
ADMIN_ROUTES = ("/v1/model/reload",)


# -- responses ---------------------------------------------------------------------------------------


def _dumps(data: Any) -> bytes:
    """Compact JSON (orjson: the answers are large); a lone surrogate echoed from the request, which orjson
    refuses, is written as its JSON escape by the standard library instead, never an error."""
    try:
        return orjson.dumps(data)
    except orjson.JSONEncodeError:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")


def _json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_dumps(data), status=status, headers=headers, content_type="application/json")


def _error_response(status: int, message: str, field: str = "", code: str = "", headers=None) -> web.Response:
    return _json_response({"error": {"message": message, "field": field, "code": code}}, status, headers)


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = "logwarden"  # not aiohttp's name and version


# -- the server: connections, TLS, tokens, errors, metrics --------------------------------------------


class _BoundedSite(web.TCPSite):
    """A TCP site that refuses connections past ``max_connections`` (closed at once) and bounds TLS handshakes."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self.max_connections = max_connections

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None

        def protocol():
            return _Refused() if len(server.connections) >= self.max_connections else server()

        self._server = await asyncio.get_running_loop().create_server(
            protocol,
            self._host,
            self._port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self._handshake_timeout if self._ssl_context else None,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
        )

    _handshake_timeout = 10.0


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _HttpSite:
    """One aiohttp server of the scoring server: TLS, bearer tokens, error mapping, metrics, limits.
    Subclasses add their routes in ``routes()``."""

    name = "http"

    def __init__(self) -> None:
        self.server: Any = None
        self.port: int | None = None
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._tokens = TokenCheck(())
        self._admin = TokenCheck(())
        self._open: tuple[str, ...] = ()
        self._draining = False

    @property
    def service(self):
        return self.server.service

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def listen_port(self, settings) -> int:
        raise NotImplementedError

    async def start(self, server) -> None:
        s = server.settings
        self.server = server
        self._tokens = TokenCheck(s.tokens)
        self._admin = TokenCheck(s.admin_token_values)
        self._open = PUBLIC_ROUTES + (() if s.auth_health else OPEN_ROUTES)
        self.app = app = web.Application(client_max_size=s.max_request_bytes, middlewares=[self._middleware])
        app.on_response_prepare.append(_server_header)
        app.add_routes(self.routes())
        # an idle connection (no complete request headers) is closed after keepalive_timeout: from its
        # opening, and from each answer on (aiohttp's keep-alive timer): the header timeout
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=s.shutdown_grace_s, keepalive_timeout=s.http_header_timeout_s
        )
        await self._runner.setup()
        port = self.listen_port(s)
        site = _BoundedSite(
            self._runner,
            s.host,
            port,
            max_connections=s.http_max_connections,
            ssl_context=ssl_context(s.tls_cert, s.tls_key, s.tls_client_ca),
            reuse_address=True,
        )
        site._handshake_timeout = s.http_header_timeout_s
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise LogWardenError(f"{self.name} cannot listen on {s.host}:{port}: {exc.strerror}") from exc
        self.port = self._runner.addresses[0][1]
        log.info(f"{self.name} serving", host=s.host, port=self.port, tls=bool(s.tls_cert), auth=bool(self._tokens))

    async def stop(self) -> None:
        """Refuse new connections, finish in-flight requests within ``shutdown_grace_s``."""
        if self._runner is None or self._draining:
            return
        self._draining = True
        await self._runner.cleanup()
        log.info(f"{self.name} stopped")

    @property
    def draining(self) -> bool:
        return self._draining or bool(getattr(self.server, "draining", False))

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        started = time.perf_counter()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        try:
            response = self._refusal(request, route) or await handler(request)
        except ServiceError as exc:
            quiet = exc.http_status in (429, 503)
            (log.debug if quiet else log.info)(
                "http request refused", route=route, status=exc.http_status, error=exc.message
            )
            headers = {"Retry-After": RETRY_AFTER_S} if exc.http_status in (429, 503) else None
            response = _error_response(exc.http_status, exc.message, exc.field, exc.code.name, headers)
        except web.HTTPRequestEntityTooLarge:
            limit = self.server.settings.max_request_bytes
            response = _error_response(413, f"body: larger than the limit of {limit} bytes", "body", "INVALID_ARGUMENT")
        except _BodyTimeout as exc:
            response = _error_response(408, str(exc), "body", "DEADLINE_EXCEEDED", {"Connection": "close"})
            response.force_close()
        except web.HTTPException as exc:  # 404 / 405 from the router
            allow = {k: v for k, v in exc.headers.items() if k == "Allow"}
            response = _error_response(exc.status, exc.reason, headers=allow)
        except Exception as exc:  # answer 500 (retryable for shippers) and keep serving
            log.error("http request failed", route=route, error=type(exc).__name__)
            response = _error_response(500, "internal error", code="INTERNAL")
        metrics = self.server.metrics
        metrics.http_requests.labels(route, request.method, str(response.status)).inc()
        metrics.http_latency.labels(route).observe(time.perf_counter() - started)
        return response

    def _refusal(self, request: web.Request, route: str) -> web.Response | None:
        """401 without a valid token, 403 for a scoring token on an admin route; None when allowed."""
        if not self._tokens or route in self._open:
            return None
        authorization = request.headers.get("Authorization")
        if not self._tokens.accepts(authorization):
            headers = {"WWW-Authenticate": 'Bearer realm="logwarden"'}
            return _error_response(401, "missing or invalid bearer token", "authorization", "UNAUTHENTICATED", headers)
        if route in ADMIN_ROUTES and not self._admin.accepts(authorization):
            message = "this call needs an admin token (admin_tokens)"
            return _error_response(403, message, "authorization", "PERMISSION_DENIED")
        return None

    async def metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.server.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})


class _BodyTimeout(Exception):
    """The request body did not arrive within ``http_read_timeout_s``."""


class MetricsEndpoint(_HttpSite):
    """``GET /metrics`` alone on ``metrics_port``, with the gateway's TLS and tokens."""

    name = "metrics endpoint"

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/metrics", self.metrics)]

    def listen_port(self, settings) -> int:
        return settings.metrics_port


class HttpGateway(_HttpSite):
    """A ``LogWardenServer`` companion: ``start(server)`` binds ``settings.http_port``; ``stop()`` drains."""

    name = "http gateway"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/score", self.score),
            web.post("/v1/score/event", self.score_event),
            web.post("/v1/score/completion", self.score_completion),
            web.post("/v1/labels", self.labels),
            web.get("/v1/labels", self.list_labels),
            web.post("/v1/labels/retract", self.retract_labels),
            web.get("/v1/model", self.model),
            web.post("/v1/model/reload", self.reload),
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.metrics),
            web.get("/openapi.json", self.openapi),
        ]

    def listen_port(self, settings) -> int:
        return settings.http_port

    # reading requests

    async def _body(self, request: web.Request) -> bytes:
        settings = self.server.settings
        if request.content_length is not None and request.content_length > settings.max_request_bytes:
            raise web.HTTPRequestEntityTooLarge(max_size=settings.max_request_bytes, actual_size=request.content_length)
        try:
            async with asyncio.timeout(settings.http_read_timeout_s):
                return await request.read()
        except TimeoutError:
            raise _BodyTimeout(f"body: not received within {settings.http_read_timeout_s:g} s") from None

    async def _text(self, request: web.Request, hint: str = "") -> str:
        data = await self._body(request)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest("body", f"not valid UTF-8 (byte {exc.start}){hint}") from None

    async def _json(self, request: web.Request, *, empty: Any = ...) -> Any:
        text = await self._text(request, "; send such lines base64 in events[].raw")
        if not text.strip() and empty is not ...:
            return empty
        try:
            return json.loads(text, parse_constant=wire.reject_constant)
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

    # handlers

    async def score(self, request: web.Request) -> web.Response:
        """``{"events": [...]}``, or a shipper's batch: NDJSON or a bare array (``batches.py``)."""
        timeout = self._timeout(request)
        limits = self.service.limits
        key = request.headers.get("Idempotency-Key", "")
        if batches.is_ndjson(request.content_type):
            items: list[tuple[int | None, Any]] = batches.ndjson_items(await self._body(request))
            body: Any = None
        else:
            body = await self._json(request)
            items = [(None, x) for x in body] if isinstance(body, list) else []
        if body is None or isinstance(body, list):
            query = batches.query_options(request.query)
            decoded = batches.decode_items(items, request.query, limits)
            raw = [value for _, value in items]
            mode, request_id = query.mode, query.request_id
            options = _options(key, query.model, query.window_scope, query.partial_sessions)
        else:
            decoded_request, decoded = wire.decode_score(body, limits)
            raw, mode, request_id = body["events"], decoded_request.mode, decoded_request.request_id
            options = _options(
                key or decoded_request.idempotency_key,
                decoded_request.model,
                decoded_request.window_scope,
                decoded_request.partial_sessions,
            )
        if len(request_id.encode("utf-8", "surrogatepass")) > limits.max_field_bytes:
            raise InvalidRequest("request_id", f"longer than {limits.max_field_bytes} bytes")
        response = (await self._scored(decoded, raw, mode, options, timeout)).to_dict()
        response["request_id"] = request_id
        return _json_response(response)

    async def _scored(
        self, decoded: list[EventIn | InvalidRequest], raw: list, mode: str, options: dict, timeout: float | None
    ) -> ScoreOutput:
        """Score the decodable events; the others are answered invalid at their own positions."""
        good = [e for e in decoded if isinstance(e, EventIn)]
        if good:
            out = await self._bounded(self.service.score(good, mode, timeout=timeout, **options), timeout)
        else:
            out = ScoreOutput([], [], self.service.model_info().version)
        results: list[EventOut] = []
        k = 0  # the event's index among the decodable ones, as the service numbered them
        for i, item in enumerate(decoded):
            if isinstance(item, InvalidRequest):
                results.append(_invalid_event(raw[i], item, out.model_version))
                continue
            results.append(_reindex(out.results[k], "events", k, i))
            k += 1
        invalid = len(decoded) - len(good)
        if invalid:
            self.server.metrics.events.labels(out.model_version, "invalid").inc(invalid)
        return ScoreOutput(results, out.sessions, out.model_version, out.replayed, out.model)

    async def score_event(self, request: web.Request) -> web.Response:
        timeout = self._timeout(request)
        limit = self.service.limits.max_field_bytes
        if request.content_type == "text/plain":
            event, where = logstash.event_from_text(await self._text(request), request.query, limit)
        else:
            event, where = logstash.event_from_json(await self._json(request), request.query, limit)
        options = _options(model=request.query.get("model", ""))
        out = await self._bounded(self.service.score([event], "stream", timeout=timeout, **options), timeout)
        (result,) = out.results
        if result.status == INVALID:
            raise logstash.refused(result, where)
        return _json_response(logstash.answer(result, out.sessions))

    async def score_completion(self, request: web.Request) -> web.Response:
        timeout = self._timeout(request)
        event = wire.decode_completion(await self._json(request))
        out = await self._bounded(self.service.score([event], "stream", timeout=timeout), timeout)
        (result,) = out.results
        if result.status == INVALID:
            raise logstash.refused(result, {"message": "input", "source": "input", "session_key": "input"})
        return _json_response({"completion": _dumps(logstash.answer(result)).decode("utf-8")})

    async def labels(self, request: web.Request) -> web.Response:
        if self.service.labels is None:
            raise Unimplemented("this server has no label store configured (set label_db)")
        body = await self._json(request)
        decoded = wire.decode_labels(body, self.service.limits)
        good = [x for x in decoded if isinstance(x, LabelIn)]
        stored = await self.service.submit_labels(good) if good else []
        results: list[LabelOut] = []
        k = 0
        for i, item in enumerate(decoded):
            if isinstance(item, InvalidRequest):
                results.append(LabelOut(_given_id(body["labels"][i]), False, item.message, item.field))
                continue
            results.append(_reindex(stored[k], "labels", k, i))
            k += 1
        return _json_response({"results": [r.to_dict() for r in results]})

    async def list_labels(self, request: web.Request) -> web.Response:
        page = await self.service.list_labels(wire.decode_label_query(request.query))
        return _json_response(page.to_dict())

    async def retract_labels(self, request: web.Request) -> web.Response:
        body = wire.decode_retract(await self._json(request))
        results = await self.service.retract_labels(body.label_ids, body.external_ids, body.analyst)
        return _json_response({"results": [r.to_dict() for r in results]})

    async def model(self, request: web.Request) -> web.Response:
        route = request.query.get("model", "")
        return _json_response(self.service.model_info(route).to_dict())

    async def reload(self, request: web.Request) -> web.Response:
        version, route = wire.decode_reload(await self._json(request, empty={}))
        previous, info, changed = await self.service.reload_model(version, route)
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

    async def openapi(self, request: web.Request) -> web.Response:
        return _json_response(document(self.service.limits.max_events))


def _options(
    idempotency_key: str = "", model: str = "", window_scope: str = "", partial_sessions: bool = False
) -> dict[str, Any]:
    """A score request's options, as ``ScoringService.score`` takes them."""
    return {
        "idempotency_key": idempotency_key,
        "model": model,
        "window_scope": window_scope,
        "partial_sessions": partial_sessions,
    }


def _given_id(value: Any) -> str:
    ident = value.get("id") if isinstance(value, dict) else None
    return ident[:1024] if isinstance(ident, str) else ""


def _invalid_event(value: Any, error: InvalidRequest, model_version: str) -> EventOut:
    source = value.get("source") if isinstance(value, dict) else None
    return EventOut(
        id=_given_id(value),
        status=INVALID,
        error=error.message,
        error_field=error.field,
        model_version=model_version,
        source=source if isinstance(source, str) else "",
    )


def _reindex(result: R, name: str, j: int, i: int) -> R:
    """The service numbered the item ``j`` (among the decodable ones); the request numbers it ``i``."""
    old, new = f"{name}[{j}]", f"{name}[{i}]"
    if result.error_field.startswith(old):
        result.error_field = new + result.error_field[len(old) :]
        result.error = result.error.replace(old, new, 1)
    return result
