"""The Forward receiver: an asyncio server that scores every record, enriches it and re-emits it to the next
hop, and only then acknowledges the chunk (INTEGRATIONS.md §3.5).

Per connection: the optional shared-key handshake (decoded raw), then frames fed to msgpack's streaming
unpacker as bytes arrive (a frame may be split at any byte). Frames are handled one at a time, in order; the
connection is not read while one is handled, so a slow next hop slows the sender down (back-pressure by not
reading) instead of filling memory. For each chunk:

1. decode (all four modes, both entry shapes; limits ``max_frame_bytes`` and ``max_chunk_bytes``);
2. score through the client library (stream mode, ``idempotency_key`` = the chunk id, else SHA-256 of the
   entries); the scorer down, slow or overloaded ⇒ the records go on marked ``logwarden.status: unscored``;
3. re-emit to the next hop; when it does not accept them, close the connection **without an ack** (Fluent
   Bit retries the chunk from its own buffer, so the receiver needs no disk queue);
4. answer ``{"ack": chunk}`` when the chunk asked for one.

Bad input (garbage, a truncated or malformed frame, a frame or chunk over the limits, a corrupt gzip member,
a wrong shared key) gets one clear log line and the connection closed; other connections go on. Chunks of
other signals (``fluent_signal`` metrics/traces) are passed on unscored when the next hop carries them, else
logged, counted and acked. SIGTERM: stop accepting, let each connection finish (and ack) the frame in hand,
close idle connections, then stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any

import msgpack
import structlog
from aiohttp import web

from logwarden.grpc_server.security import ssl_context
from logwarden.integrations.fluent.handshake import HandshakeError, ServerHandshake, raw_unpacker
from logwarden.integrations.fluent.metrics import ReceiverMetrics
from logwarden.integrations.fluent.protocol import Frame, ProtocolError, ack, decode_frame, unpacker
from logwarden.integrations.fluent.settings import FluentReceiverSettings
from logwarden.integrations.ingest.scoring import FieldMap, RecordScorer, Scorer
from logwarden.integrations.outputs.base import Chunk, NextHop, NextHopError, Unsupported
from logwarden.integrations.outputs.settings import build_next_hop

log = structlog.get_logger("logwarden.fluent")

READ_BYTES = 256 * 1024
HANDSHAKE_TIMEOUT_S = 30.0


class _Conn:
    """One client connection's state, for the drain."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.busy = False
        self.peer = str(writer.get_extra_info("peername"))


class FluentReceiver:
    def __init__(
        self,
        settings: FluentReceiverSettings,
        *,
        scorer: Scorer | None = None,
        next_hop: NextHop | None = None,
        metrics: ReceiverMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or ReceiverMetrics()
        self.next_hop = next_hop
        self._scorer = scorer
        self._client = None  # the AsyncLogWardenClient this receiver made (closed at stop)
        self.records: RecordScorer | None = None
        self.port: int | None = None
        self.http_port: int | None = None
        self._server: asyncio.Server | None = None
        self._runner: web.AppRunner | None = None
        self._conns: dict[asyncio.Task, _Conn] = {}
        self._slots = asyncio.Semaphore(settings.max_connections)
        self._draining = False
        self._stopped = asyncio.Event()

    # -- life cycle -------------------------------------------------------------------------------

    async def start(self) -> int:
        s = self.settings
        scorer = self._scorer
        if scorer is None and not s.passthrough:
            from logwarden.integrations.client import AsyncLogWardenClient

            token = s.scorer_token.get_secret_value() if s.scorer_token else None
            self._client = scorer = AsyncLogWardenClient(
                s.scorer,
                token=token,
                tls=s.scorer_tls,
                ca_file=s.scorer_ca_file,
                timeout_s=s.score_timeout_s,
                budget_s=s.score_budget_s,
            )
        fields = FieldMap(tuple(s.message_keys), s.source_key, s.session_key, s.model, s.model_key)
        self.records = RecordScorer(None if s.passthrough else scorer, fields, budget_s=s.score_budget_s)
        if self.next_hop is None:
            self.next_hop = build_next_hop(s)
        await self.next_hop.start()
        tls = ssl_context(s.tls_cert, s.tls_key, s.tls_client_ca, alpn=())
        self._server = await asyncio.start_server(self._handle, s.host, s.port, ssl=tls, limit=READ_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]
        if s.http_port is not None:
            await self._start_http(s.host, s.http_port)
        log.info(
            "receiving",
            host=s.host,
            port=self.port,
            http_port=self.http_port,
            tls=tls is not None,
            shared_key=s.shared_key is not None,
            next_hop=self.next_hop.name,
            scorer=None if s.passthrough else s.scorer,
        )
        return self.port

    async def _start_http(self, host: str, port: int) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/readyz", self._ready)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.http_port = site._server.sockets[0].getsockname()[1]

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _ready(self, _request: web.Request) -> web.Response:
        if self._draining or self._server is None:
            return web.json_response({"status": "draining"}, status=503, headers={"Retry-After": "1"})
        return web.json_response({"status": "ready", "connections": len(self._conns)})

    async def _metrics(self, _request: web.Request) -> web.Response:
        body, content_type = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting; connections finish and ack the frame in hand (up to ``grace`` s); close the rest."""
        if self._draining:
            await self._stopped.wait()
            return
        self._draining = True
        grace = self.settings.shutdown_grace_s if grace is None else grace
        log.info("draining", connections=len(self._conns), grace_s=grace)
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns.values()):
            if not conn.busy:
                conn.writer.close()  # idle: nothing to finish
        tasks = list(self._conns)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)
        if self.next_hop is not None:
            await self.next_hop.close()
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()
        log.info("stopped")
        self._stopped.set()

    async def serve(self) -> None:
        """Start, then run until SIGTERM/SIGINT, then drain."""
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()
        await self.stop()

    # -- connections ------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        conn = _Conn(writer)
        self._conns[task] = conn
        self.metrics.connections.inc()
        try:
            async with self._slots:
                if self._draining:
                    return
                leftover = b""
                if self.settings.shared_key is not None:
                    leftover = await self._handshake(reader, writer, conn)
                    if leftover is None:
                        return
                await self._frames(reader, writer, conn, leftover)
        except (ConnectionError, TimeoutError, OSError) as exc:
            log.debug("connection ended", peer=conn.peer, error=str(exc))
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug must cost one connection (unacked: resent), never the receiver
            log.exception("connection failed", peer=conn.peer)
        finally:
            self.metrics.connections.dec()
            del self._conns[task]
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _handshake(self, reader, writer, conn: _Conn) -> bytes | None:
        """HELO, PING checked, PONG; the bytes that came after the PING, or None when refused."""
        s = self.settings
        users = {u: p.get_secret_value() for u, p in s.users.items()}
        shake = ServerHandshake(s.shared_key.get_secret_value().encode(), s.server_hostname, users)
        writer.write(shake.helo())
        await writer.drain()
        raw, received = raw_unpacker(), bytearray()
        while True:
            try:
                for message in raw:
                    try:
                        pong = shake.check_ping(message)
                    except HandshakeError as exc:
                        self.metrics.handshakes.labels("refused").inc()
                        log.warning("handshake refused: closing the connection", peer=conn.peer, reason=str(exc))
                        writer.write(exc.pong)
                        await writer.drain()
                        return None
                    self.metrics.handshakes.labels("ok").inc()
                    writer.write(pong)
                    await writer.drain()
                    return bytes(received[raw.tell() :])
            except (ValueError, msgpack.UnpackException) as exc:
                log.warning("handshake: not a PING: closing the connection", peer=conn.peer, error=str(exc))
                return None
            data = await asyncio.wait_for(reader.read(4096), HANDSHAKE_TIMEOUT_S)
            if not data:
                return None
            try:
                raw.feed(data)
            except msgpack.BufferFull:
                log.warning("handshake: PING too large: closing the connection", peer=conn.peer)
                return None
            received += data

    async def _frames(self, reader, writer, conn: _Conn, leftover: bytes) -> None:
        s = self.settings
        frames = unpacker(s.max_frame_bytes)
        data = leftover
        while True:
            try:
                if data:
                    frames.feed(data)
                for value in frames:
                    conn.busy = True
                    try:
                        if not await self._chunk(value, writer, conn):
                            return
                    finally:
                        conn.busy = False
            except msgpack.BufferFull:
                self.metrics.chunks.labels("refused").inc()
                log.error(
                    "frame larger than max_frame_bytes: closing the connection",
                    peer=conn.peer,
                    max_frame_bytes=s.max_frame_bytes,
                )
                return
            except (ValueError, msgpack.UnpackException) as exc:
                self.metrics.chunks.labels("refused").inc()
                log.warning("input is not msgpack: closing the connection", peer=conn.peer, error=str(exc))
                return
            if self._draining:
                return
            data = await reader.read(READ_BYTES)
            if not data:
                return

    async def _chunk(self, value: Any, writer: asyncio.StreamWriter, conn: _Conn) -> bool:
        """Handle one frame; False when the connection must close (bad input or the next hop failed)."""
        started = time.perf_counter()
        try:
            frame = decode_frame(value, self.settings.max_chunk_bytes)
        except ProtocolError as exc:
            self.metrics.chunks.labels("refused").inc()
            log.warning("bad frame: closing the connection without an ack", peer=conn.peer, error=str(exc))
            return False
        if frame is None:  # heartbeat
            return True
        if frame.signal:
            if not await self._signal(frame, conn):
                return False
        elif not await self._logs(frame, conn):
            return False
        self.metrics.ack_seconds.observe(time.perf_counter() - started)
        self.metrics.chunks.labels("done" if frame.chunk is None else "acked").inc()  # counted before the peer knows
        if frame.chunk is not None:
            writer.write(ack(frame.chunk))
            await writer.drain()
        return True

    async def _logs(self, frame: Frame, conn: _Conn) -> bool:
        assert self.records is not None and self.next_hop is not None
        self.metrics.records_in.labels(frame.mode).inc(len(frame.records))
        key = frame.key()
        result = await self.records.enrich(frame.tag, frame.records, key)
        sent = time.perf_counter()
        try:
            await self.next_hop.send(Chunk(frame.tag, frame.records, key))
        except NextHopError as exc:
            self.metrics.next_hop_errors.labels(self.next_hop.name).inc()
            self.metrics.chunks.labels("failed").inc()
            log.error(
                "next hop did not accept the chunk: no ack, closing the connection (the sender retries)",
                peer=conn.peer,
                tag=frame.tag,
                records=len(frame.records),
                error=str(exc),
            )
            return False
        self.metrics.next_hop_seconds.labels(self.next_hop.name).observe(time.perf_counter() - sent)
        for status, count in result.statuses.items():
            self.metrics.records_out.labels(status).inc(count)
        return True

    async def _signal(self, frame: Frame, conn: _Conn) -> bool:
        assert self.next_hop is not None
        try:
            await self.next_hop.send_signal(frame.tag, frame.payload or b"", frame.options)
        except Unsupported as exc:
            self.metrics.signals.labels("dropped").inc()
            log.warning("non-log chunk not passed on", tag=frame.tag, fluent_signal=frame.signal, reason=str(exc))
            return True
        except NextHopError as exc:
            self.metrics.next_hop_errors.labels(self.next_hop.name).inc()
            log.error("next hop did not accept a non-log chunk: no ack", peer=conn.peer, error=str(exc))
            return False
        self.metrics.signals.labels("passed").inc()
        return True
