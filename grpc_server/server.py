"""The ``grpc.aio`` server: LogWarden's services, standard health and reflection, auth, TLS, limits,
graceful shutdown (SIGTERM/SIGINT drain in-flight calls) and hot reload (SIGHUP or ReloadModel).

Shutdown order: health turns NOT_SERVING, open streams end after their current message (UNAVAILABLE:
what they sent after it is not scored, see ``rpc/servicers.py``), the server stops accepting calls
and waits up to ``shutdown_grace_s`` for accepted ones, then the scheduler finishes what is queued.
Companions (the HTTP/JSON gateway, the standalone metrics endpoint) are objects with ``async
start(server)`` and ``async stop()`` appended to ``server.companions`` before ``start``; they reach the
scorer as ``server.service`` and the metrics as ``server.metrics.render()``.

Overload: at most ``max_concurrent_rpcs`` calls run (``rpc/limits.py``); every overload answer carries
the ``logwarden-overloaded`` mark, so that a RESOURCE_EXHAUSTED without it (gRPC's own answer to a
message over ``max_request_bytes``) is known for what it is: too large, never worth a retry.

Labels: with ``label_db`` set (and no ``labels`` sink passed in) the server opens that SQLite label
store, recalibrates K per source from the labels on the served version at start and after each
reload, and closes the store after the drain. Without it SubmitLabels answers UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from logwarden.grpc_server import heap
from logwarden.grpc_server.gateway.app import HttpGateway, MetricsEndpoint
from logwarden.grpc_server.observability import ServerMetrics
from logwarden.grpc_server.rpc.auth import HEALTH_PREFIX, BearerTokenInterceptor
from logwarden.grpc_server.rpc.limits import ConcurrencyLimit
from logwarden.grpc_server.rpc.otlp import OtlpIngest
from logwarden.grpc_server.rpc.servicers import add_all
from logwarden.grpc_server.security import grpc_credentials
from logwarden.grpc_server.service.idempotency import Idempotency, MemoryIdempotency, RedisIdempotency
from logwarden.grpc_server.service.label_sink import StoreLabelSink, open_label_sink
from logwarden.grpc_server.service.model_holder import ModelRegistry
from logwarden.grpc_server.service.scheduler import Scheduler
from logwarden.grpc_server.service.scoring import KLookup, LabelSink, ScoringService
from logwarden.grpc_server.service.validation import Limits
from logwarden.grpc_server.service.windows import WindowStore
from logwarden.grpc_server.service.windows.memory import MemoryWindowStore
from logwarden.grpc_server.service.windows.scoped import ScopedWindows
from logwarden.grpc_server.settings import Settings

log = structlog.get_logger("logwarden.server")


def open_window_store(settings: Settings) -> WindowStore:
    """The default scope's windows: in memory, or in Redis when ``redis_url`` is set (replicas share them)."""
    if not settings.redis_url:
        return MemoryWindowStore(
            settings.window_max_sessions, settings.window_ttl_s, max_bytes=settings.window_max_bytes
        )
    from logwarden.grpc_server.service.windows.redis import RedisWindowStore

    return RedisWindowStore(settings.redis_url, max_sessions=settings.window_max_sessions, ttl_s=settings.window_ttl_s)


def open_scopes(settings: Settings, default: WindowStore) -> ScopedWindows:
    """Ad-hoc window scopes beside ``default``, each with its own TTL and quota, in the same backend."""
    s = settings
    if isinstance(default, MemoryWindowStore):

        def make(scope: str) -> WindowStore:
            return MemoryWindowStore(
                s.window_scope_max_sessions, s.window_scope_ttl_s, max_bytes=s.window_scope_max_bytes
            )

    else:
        from logwarden.grpc_server.service.windows.redis import PREFIX, RedisWindowStore

        def make(scope: str) -> WindowStore:
            digest = hashlib.sha256(scope.encode("utf-8", "surrogatepass")).hexdigest()[:32]
            return RedisWindowStore(
                None,
                max_sessions=s.window_scope_max_sessions,
                ttl_s=s.window_scope_ttl_s,
                prefix=f"{PREFIX}scope:{digest}:",
                client=default.client,
                quota=True,
            )

    return ScopedWindows(default, make, s.window_scopes_max)


def open_idempotency(settings: Settings, default: WindowStore) -> Idempotency:
    """Idempotent answers where the windows are: shared in Redis by replicas, else in this process."""
    if isinstance(default, MemoryWindowStore):
        return MemoryIdempotency(
            settings.idempotency_ttl_s, settings.idempotency_max_entries, settings.idempotency_max_bytes
        )
    return RedisIdempotency(default.client, settings.idempotency_ttl_s, run=default.run)


class LogWardenServer:
    def __init__(
        self,
        settings: Settings,
        *,
        labels: LabelSink | None = None,
        k_lookup: KLookup | None = None,
        windows: WindowStore | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = ServerMetrics()
        self.models = ModelRegistry.from_settings(
            settings,
            backend=settings.model_backend,
            device=settings.model_device,
            parser_cache_bytes=settings.parser_cache_max_bytes,
        )
        self.holder = self.models.default
        default_windows = windows or open_window_store(settings)
        self.windows = open_scopes(settings, default_windows)
        self.idempotency = open_idempotency(settings, default_windows)
        self.labels = labels
        self.k_lookup = k_lookup
        self.label_sink: StoreLabelSink | None = None  # the label_db store, when this server opened one
        self.companions: list = [HttpGateway()] if settings.http_port is not None else []
        if settings.metrics_port is not None:
            self.companions.append(MetricsEndpoint())
        self.service: ScoringService | None = None
        self.scheduler: Scheduler | None = None
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._draining = False
        self._drain_started = asyncio.Event()  # open streams end (UNAVAILABLE) when it is set
        self._stopped = asyncio.Event()

    async def start(self) -> int:
        """Load the model, bind, start serving; returns the bound gRPC port."""
        s = self.settings
        await asyncio.to_thread(self.models.load_all)
        for holder in self.models.holders.values():
            self.metrics.set_model(holder.current.version)
        model = self.holder.current
        if self.labels is None and s.label_db is not None:
            self.label_sink = await open_label_sink(s.label_db, self.holder)
            self.labels = self.label_sink
            self.k_lookup = self.k_lookup or self.label_sink.k_for_source
            log.info("label store", path=str(s.label_db), labels=self.label_sink.store.count())
        self.scheduler = Scheduler(
            max_wait_s=s.batch_wait_ms / 1000,
            max_batch_events=s.batch_max_events,
            max_queue_events=s.queue_max_events,
            metrics=self.metrics,
        )
        self.scheduler.start()
        limits = Limits(s.max_events_per_request, s.max_message_bytes, s.max_field_bytes, s.max_attributes)
        self.service = ScoringService(
            models=self.models,
            scheduler=self.scheduler,
            windows=self.windows,
            limits=limits,
            window_size=s.window_size,
            metrics=self.metrics,
            k_lookup=self.k_lookup,
            labels=self.labels,
            on_model_change=self.label_sink.model_changed if self.label_sink else None,
            idempotency=self.idempotency,
        )
        tokens = s.tokens
        interceptors: list[grpc.aio.ServerInterceptor] = []
        if tokens:
            open_prefixes = () if s.auth_health else (HEALTH_PREFIX,)
            interceptors.append(BearerTokenInterceptor(s.tokens, open_prefixes, admin_tokens=s.admin_token_values))
        if s.max_concurrent_rpcs is not None:
            interceptors.append(ConcurrencyLimit(s.max_concurrent_rpcs, exempt_prefixes=(HEALTH_PREFIX,)))
        options = [("grpc.max_receive_message_length", s.max_request_bytes), ("grpc.so_reuseport", 0)]
        self._server = grpc.aio.server(interceptors=interceptors, options=options)
        names = add_all(self._server, self.service, self._drain_started)
        if s.otlp.enabled:
            names.append(OtlpIngest.register(self))
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        for name in ("", *names):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server)
        address = f"{s.host}:{s.grpc_port}"
        if s.tls_cert and s.tls_key:
            self.port = self._server.add_secure_port(address, grpc_credentials(s.tls_cert, s.tls_key, s.tls_client_ca))
        else:
            self.port = self._server.add_insecure_port(address)
        await self._server.start()
        try:
            for companion in self.companions:
                await companion.start(self)
        except Exception:  # e.g. the HTTP port is taken: stop what started, then fail
            await self.stop(0)
            raise
        log.info(
            "serving",
            host=s.host,
            port=self.port,
            model_version=model.version,
            tls=bool(s.tls_cert),
            mtls=bool(s.tls_client_ca),
            auth=bool(tokens),
            backend=s.model_backend,
        )
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Drain: refuse new calls, finish accepted ones (up to ``grace`` seconds), stop the worker."""
        if self._draining:
            await self._stopped.wait()
            return
        self._draining = True
        self._drain_started.set()
        grace = self.settings.shutdown_grace_s if grace is None else grace
        log.info("draining", grace_s=grace)
        await self._health.enter_graceful_shutdown()
        stops = [companion.stop() for companion in reversed(self.companions)]  # they drain beside gRPC
        if self._server is not None:
            stops.append(self._server.stop(grace))
        await asyncio.gather(*stops)
        if self.scheduler is not None:
            await self.scheduler.close()
        await self.idempotency.close()
        await self.windows.close()
        if self.label_sink is not None:
            await self.label_sink.close()
        log.info("stopped")
        self._stopped.set()

    @property
    def draining(self) -> bool:
        return self._draining

    async def reload(self, version: str | None = None) -> None:
        """SIGHUP: reload the newest version; failures are logged and the old version keeps serving."""
        assert self.service is not None
        try:
            previous, info, changed = await self.service.reload_model(version)
        except Exception as exc:  # a failed reload must never stop the server
            log.error("model reload failed", error=str(exc))
            return
        log.info("model reloaded", previous=previous, version=info.version, changed=changed)

    async def serve(self) -> None:
        """Start, then run until SIGTERM/SIGINT (drain) — SIGHUP reloads the model."""
        await self.start()
        heap.freeze()  # the loaded model's objects out of the collector's way (see heap.py)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        reloads: set[asyncio.Task] = set()

        def on_hup() -> None:
            task = loop.create_task(self.reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, on_hup)
        await stop.wait()
        await self.stop()
