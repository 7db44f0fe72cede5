"""``logwarden es-proxy``: a bulk-compatible proxy that adds anomaly fields to documents on their way into
Elasticsearch (INTEGRATIONS.md §5.6).

Shippers (Fluent Bit ``es``, Logstash ``elasticsearch``, Filebeat, syslog-ng ``elasticsearch-http()``, the
Python client) point their Elasticsearch output here. Every request goes to the cluster verbatim (method,
path, query, headers, body) and its answer comes back verbatim (status, headers, body), except
``POST|PUT /_bulk`` and ``/{index}/_bulk``: there the proxy decompresses the body, finds the ``index`` and
``create`` documents whose index has a rule and whose message field is set, scores them in stream mode in
one call per bulk (idempotency key: SHA-256 of the decompressed body), adds ``ScoredEvent.document()`` (the
``logwarden`` object and ECS ``event.risk_score``/``risk_score_norm``) to their source, and forwards the
bulk with the same query string and headers (re-compressed when the shipper compressed it). The
cluster's answer is relayed unchanged, so each shipper keeps its own per-item retry rules; item count and
order never change and the proxy never invents an item error.

* Scorer down, slow or refusing: the documents go on with ``logwarden.status: unscored`` and a reason.
* Cluster unreachable: 502 (504 on a timeout) with an Elasticsearch-style error body and
  ``X-Elastic-Product``; every shipper retries those.
* A shipper's retry of a bulk (same bytes) reuses the enrichment of the first try (kept for
  ``replay_cache_bytes``; a bulk with unscored documents is scored again), and a bulk still in flight
  is not scored a second time.
* ``retry_429`` (off by default): items the cluster answered 429 are retried inside the proxy and their
  later answers put in their places (needs per-item statuses in the answer, i.e. no ``filter_path`` that
  drops them); for Fluent Bit, which drops such items when another item of the chunk succeeded (§5.3).
"""

from __future__ import annotations

import asyncio
import functools
import re
import signal
import ssl
import time
from collections import Counter, OrderedDict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import aiohttp
import structlog
from aiohttp import hdrs, web
from multidict import CIMultiDict
from yarl import URL

from logwarden.integrations.client.common import UNSCORED, Event
from logwarden.integrations.elasticsearch.bulk import (
    BodyError,
    BulkBody,
    body_key,
    compress,
    decompress,
    dumps,
    loads,
    lookup,
)
from logwarden.integrations.elasticsearch.metrics import ProxyMetrics
from logwarden.integrations.elasticsearch.settings import ProxySettings, rule_for

log = structlog.get_logger("logwarden.es_proxy")

BULK_PATH = re.compile(r"^/(?:(?P<index>[^/_][^/]*)/)?_bulk/?$")
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "expect",
}
PRODUCT = {"X-Elastic-Product": "Elasticsearch"}


def es_error(status: int, error_type: str, reason: str) -> web.Response:
    """An answer in Elasticsearch's error shape, with the product header shippers check."""
    cause = {"type": error_type, "reason": reason}
    body = {"error": {"root_cause": [cause], **cause}, "status": status}
    return web.Response(status=status, body=dumps(body), content_type="application/json", headers=PRODUCT)


def _forwarded_headers(headers) -> CIMultiDict:
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP)


class ReplayCache:
    """Enriched bulk bodies by idempotency key, least recently used dropped past ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.size = max_bytes, 0
        self._items: OrderedDict[str, bytes] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        body = self._items.get(key)
        if body is not None:
            self._items.move_to_end(key)
        return body

    def put(self, key: str, body: bytes) -> None:
        if len(body) > self.max_bytes or key in self._items:
            return
        self._items[key] = body
        self.size += len(body)
        while self.size > self.max_bytes:
            _, dropped = self._items.popitem(last=False)
            self.size -= len(dropped)


class Upstream:
    """The cluster behind the proxy: one aiohttp session, responses read whole and never decompressed."""

    def __init__(self, settings: ProxySettings) -> None:
        self.base = settings.upstream.rstrip("/")
        ssl_option: Any = None
        if self.base.startswith("https://"):
            if not settings.upstream_verify:
                ssl_option = False
            else:
                ssl_option = ssl.create_default_context(
                    cafile=str(settings.upstream_ca) if settings.upstream_ca else None
                )
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=settings.upstream_connections, ssl=ssl_option),
            timeout=aiohttp.ClientTimeout(total=settings.upstream_timeout_s),
            auto_decompress=False,
            skip_auto_headers=(hdrs.USER_AGENT, hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.CONTENT_TYPE),
        )

    async def send(self, method: str, raw_path: str, headers: CIMultiDict, body: bytes | None):
        """``(status, headers, body)`` of the cluster's answer; aiohttp's errors propagate."""
        url = URL(self.base + raw_path, encoded=True)
        async with self.session.request(method, url, headers=headers, data=body) as response:
            payload = await response.read()
            return response.status, response.headers.copy(), payload

    async def close(self) -> None:
        await self.session.close()


class EsProxy:
    """The proxy's HTTP side, its upstream and its scorer. ``await start()``, ``await stop()``; ``port``."""

    def __init__(self, settings: ProxySettings, *, metrics: ProxyMetrics | None = None, scorer=None) -> None:
        self.settings = settings
        self.metrics = metrics or ProxyMetrics()
        self.scorer = scorer  # an AsyncLogWardenClient (made in start() when None)
        self.upstream: Upstream | None = None
        self.replays = ReplayCache(settings.replay_cache_bytes)
        self._inflight: dict[str, asyncio.Future] = {}
        self._runners: list[web.AppRunner] = []
        self.port: int | None = None
        self.metrics_port: int | None = None
        self._ready = False

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        from logwarden.grpc_server.security import ssl_context

        s = self.settings
        if self.scorer is None and s.score:
            from logwarden.integrations.client import AsyncLogWardenClient

            self.scorer = AsyncLogWardenClient(s.scorer, **s.scorer_options(s.score_budget_s))
        self.upstream = Upstream(s)
        app = web.Application(client_max_size=s.max_body_bytes)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(
            app, access_log=None, auto_decompress=False, handle_signals=False, shutdown_timeout=s.shutdown_grace_s
        )
        await runner.setup()
        site = web.TCPSite(runner, s.host, s.port, ssl_context=ssl_context(s.tls_cert, s.tls_key, s.tls_client_ca))
        await site.start()
        self._runners.append(runner)
        self.port = site._server.sockets[0].getsockname()[1]
        if s.metrics_port is not None:
            ops = web.Application()
            ops.router.add_get("/metrics", self._metrics)
            ops.router.add_get("/healthz", self._healthz)
            ops.router.add_get("/readyz", self._readyz)
            ops_runner = web.AppRunner(ops, access_log=None, handle_signals=False)
            await ops_runner.setup()
            ops_site = web.TCPSite(ops_runner, s.host, s.metrics_port)
            await ops_site.start()
            self._runners.append(ops_runner)
            self.metrics_port = ops_site._server.sockets[0].getsockname()[1]
        self._ready = True
        log.info("es proxy listening", port=self.port, upstream=s.upstream, scoring=s.score, metrics=self.metrics_port)

    async def stop(self) -> None:
        """Stop accepting, finish requests in flight (up to ``shutdown_grace_s``), close the clients."""
        self._ready = False
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        if self.upstream is not None:
            await self.upstream.close()
        if self.scorer is not None and hasattr(self.scorer, "close"):
            await self.scorer.close()
        log.info("es proxy stopped")

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT, then stop gracefully."""
        await self.start()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await stopping.wait()
        log.info("es proxy draining", grace_s=self.settings.shutdown_grace_s)
        await self.stop()

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.metrics.render()
        return web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        if not self._ready:
            return web.json_response({"status": "stopping"}, status=503, headers={"Retry-After": "1"})
        return web.json_response({"status": "ready", "upstream": self.settings.upstream})

    # -- requests ---------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        self.metrics.in_flight.inc()
        kind = "other"
        try:
            match = BULK_PATH.match(request.path)
            if match and request.method in ("POST", "PUT"):
                kind = "bulk"
                index = match.group("index")
                response = await self._bulk(request, unquote(index) if index else None)
            else:
                response = await self._relay(request, await self._read(request))
        except _TooLarge:
            response = es_error(
                413, "content_too_long_exception", f"request body is larger than {self.settings.max_body_bytes} bytes"
            )
        except (asyncio.CancelledError, web.HTTPException):
            raise
        except Exception as exc:  # a fault of the proxy's own: 500 (shippers retry it), never a lost request
            log.error("es proxy: request failed", path=request.path, error=f"{type(exc).__name__}: {exc}")
            response = es_error(500, "logwarden_proxy_exception", f"the proxy failed: {type(exc).__name__}")
        finally:
            self.metrics.in_flight.dec()
        self.metrics.requests.labels(kind, str(response.status)).inc()
        if kind == "bulk":
            self.metrics.bulk_seconds.labels("total").observe(time.perf_counter() - started)
        return response

    async def _read(self, request: web.Request) -> bytes | None:
        if not request.body_exists:
            return None
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _TooLarge() from None

    async def _relay(self, request: web.Request, body: bytes | None) -> web.Response:
        status, headers, payload = await self._send(request, body)
        if status < 0:
            return _upstream_failure(status, payload)
        return _response(status, headers, payload)

    async def _send(self, request: web.Request, body: bytes | None):
        """The cluster's answer, or ``(-502|-504, None, reason)`` when it gave none."""
        try:
            return await self.upstream.send(request.method, request.raw_path, _forwarded_headers(request.headers), body)
        except TimeoutError:
            self.metrics.upstream_errors.labels("timeout").inc()
            log.warning("es proxy: upstream timeout", path=request.path, timeout_s=self.settings.upstream_timeout_s)
            return -504, None, f"no answer from {self.settings.upstream} within {self.settings.upstream_timeout_s} s"
        except aiohttp.ClientError as exc:
            self.metrics.upstream_errors.labels(type(exc).__name__).inc()
            log.warning("es proxy: upstream unreachable", path=request.path, error=f"{type(exc).__name__}: {exc}")
            return -502, None, f"cannot reach {self.settings.upstream}: {type(exc).__name__}: {exc}"

    # -- bulk -------------------------------------------------------------------------------------

    async def _bulk(self, request: web.Request, default_index: str | None) -> web.Response:
        raw = await self._read(request) or b""
        encoding = request.headers.get(hdrs.CONTENT_ENCODING)
        out = raw
        parsed: BulkBody | None = None
        if self.settings.score and raw:
            try:
                body = decompress(raw, encoding)
            except BodyError as exc:
                log.warning("es proxy: bulk body forwarded as it came", reason=str(exc))
            else:
                enriched, parsed = await self._enriched(body, default_index)
                if enriched is not body:
                    out = compress(enriched, encoding)
        started = time.perf_counter()
        status, headers, payload = await self._send(request, out)
        self.metrics.bulk_seconds.labels("upstream").observe(time.perf_counter() - started)
        if status < 0:
            return _upstream_failure(status, payload)
        if status == 200:
            payload = await self._after(request, parsed, encoding, headers, payload)
        return _response(status, headers, payload)

    async def _enriched(self, body: bytes, default_index: str | None) -> tuple[bytes, BulkBody | None]:
        """The body to forward (``body`` itself when nothing changed) and, with ``retry_429``, its parse."""
        key = body_key(body)
        retrying = bool(self.settings.retry_429)
        cached = self.replays.get(key)
        while cached is None and (pending := self._inflight.get(key)) is not None:
            cached = await asyncio.shield(pending)  # the same bulk is being scored for an earlier try
        if cached is not None:
            self.metrics.replays.inc()
            return cached, BulkBody(cached, default_index) if retrying else None
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        enriched = None
        try:
            parsed = BulkBody(body, default_index)
            if not parsed.readable:
                return body, None
            complete = await self._score(parsed, key)
            if complete is None:
                return body, parsed
            enriched = parsed.body()
            if complete:
                self.replays.put(key, enriched)
            return enriched, parsed
        finally:
            del self._inflight[key]
            future.set_result(enriched if enriched is not None and self.replays.get(key) is not None else None)

    async def _score(self, parsed: BulkBody, key: str) -> bool | None:
        """Enrich the documents that have a rule and a message; True when every one was scored, None when
        no document was touched."""
        groups: dict[str, list[tuple[Any, dict, Event]]] = {}
        rules: dict[str | None, Any] = {}  # index -> its rule, found once per bulk
        skipped = 0
        for action in parsed.writes():
            if action.index not in rules:
                rules[action.index] = rule_for(self.settings.rules, action.index)
            rule = rules[action.index]
            source = parsed.source(action) if rule is not None else None
            message = lookup(source, rule.message_field) if source is not None else None
            if not isinstance(message, str) or not message:
                skipped += 1
                continue
            origin = lookup(source, rule.source_field) if rule.source_field else None
            session = lookup(source, rule.session_field) if rule.session_field else None
            event = Event(
                id=str(action.position),
                message=message,
                source=str(origin) if origin not in (None, "") else action.index,
                session_key="" if session in (None, "") else str(session),
                timestamp=_timestamp(lookup(source, "@timestamp")),
                attributes={"index": action.index},
            )
            groups.setdefault(rule.model, []).append((action, source, event))
        if skipped:
            self.metrics.documents.labels("skipped").inc(skipped)
        if not groups:
            return None
        started = time.perf_counter()
        complete = True
        for n, (model, docs) in enumerate(groups.items()):
            idempotency = key if len(groups) == 1 else f"{key}/{n}"
            results = await self.scorer.score(
                [e for _, _, e in docs],
                "stream",
                budget_s=self.settings.score_budget_s,
                idempotency_key=idempotency,
                model=model,
            )
            unscored: Counter[str] = Counter()
            outcomes: Counter[str] = Counter()
            for (action, source, _), result in zip(docs, results, strict=True):
                parsed.add_to_source(action, source, result.document())
                outcomes[result.status] += 1
                if result.status == UNSCORED:
                    unscored[result.reason] += 1
            complete = complete and not unscored
            for outcome, count in outcomes.items():
                self.metrics.documents.labels(outcome).inc(count)
            for reason, count in unscored.items():
                log.warning("es proxy: documents indexed unscored", count=count, reason=reason)
        self.metrics.bulk_seconds.labels("score").observe(time.perf_counter() - started)
        return complete

    async def _after(self, request, parsed: BulkBody | None, encoding, headers, payload: bytes) -> bytes:
        """Count items by status; with ``retry_429``, retry items the cluster answered 429."""
        answer = _json_answer(headers, payload)
        if answer is None:
            return payload
        items = answer.get("items") if isinstance(answer, dict) else None
        retried = False
        if self.settings.retry_429 and parsed is not None and isinstance(items, list):
            retried = await self._retry_429(request, parsed, encoding, items)
        statuses = Counter(_item_status(item) for item in items) if isinstance(items, list) else Counter()
        for status, count in statuses.items():
            if status is not None:
                self.metrics.items.labels(str(status)).inc(count)
        if not retried:
            return payload
        answer["errors"] = any(isinstance(_item_body(i), dict) and "error" in _item_body(i) for i in items)
        out = dumps(answer)
        return compress(out, headers.get(hdrs.CONTENT_ENCODING))

    async def _retry_429(self, request, parsed: BulkBody, encoding, items: list) -> bool:
        if len(items) != len(parsed.actions):
            return False  # filter_path dropped items: positions cannot be matched
        retried = False
        for attempt in range(self.settings.retry_429):
            positions = [i for i, item in enumerate(items) if _item_status(item) == 429]
            if not positions:
                break
            await asyncio.sleep(self.settings.retry_429_backoff_s * 2**attempt)
            sub = compress(parsed.sub_body(positions), encoding)
            status, headers, payload = await self._send(request, sub)
            answer = _json_answer(headers, payload) if status == 200 else None
            again = answer.get("items") if isinstance(answer, dict) else None
            if not isinstance(again, list) or len(again) != len(positions):
                break
            for position, item in zip(positions, again, strict=True):
                items[position] = item
            self.metrics.retried_items.inc(len(positions))
            retried = True
        return retried


class _TooLarge(Exception):
    pass


def _timestamp(value: Any) -> float | None:
    """Epoch seconds of a document's ``@timestamp`` (ISO 8601 text or epoch milliseconds), else None."""
    if isinstance(value, str):
        return _iso_seconds(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value / 1000
    return None


@functools.lru_cache(maxsize=4096)  # a bulk's documents share a handful of timestamps
def _iso_seconds(text: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _item_body(item: Any) -> Any:
    return next(iter(item.values()), None) if isinstance(item, dict) and item else None


def _item_status(item: Any) -> int | None:
    body = _item_body(item)
    status = body.get("status") if isinstance(body, dict) else None
    return status if isinstance(status, int) else None


def _json_answer(headers, payload: bytes) -> Any:
    try:
        return loads(decompress(payload, headers.get(hdrs.CONTENT_ENCODING)))
    except BodyError:
        return None


def _response(status: int, headers, payload: bytes) -> web.Response:
    response = web.Response(status=status, body=payload, headers=_forwarded_headers(headers))
    return response


def _upstream_failure(status: int, reason: str) -> web.Response:
    if status == -504:
        return es_error(504, "logwarden_proxy_timeout_exception", reason)
    return es_error(502, "logwarden_proxy_upstream_exception", reason)
