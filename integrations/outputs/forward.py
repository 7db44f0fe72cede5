"""Forward next hop: re-emits records to a Fluentd or Fluent Bit ``in_forward`` (an aggregator).

Each ``send`` writes one frame — PackedForward ``[tag, <entries packed as bin>, options]``, or
CompressedPackedForward (``compress="gzip"``) — with a ``chunk`` id (base64 of the first 16 bytes of SHA-512 of
the packed entries, as Fluent Bit makes it, so a resend carries the same id) and waits for
``{"ack": chunk}``. Entries keep their shape (``[[time, metadata], record]`` stays so unless
``retain_metadata`` is off, for Fluentd older than the v2 shape). Shared-key handshake and TLS as
``in_forward`` expects them. Connections are pooled; a failed try closes its connection and is retried with
backoff until ``budget_s`` runs out, then ``NextHopError``.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import random
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from logwarden.integrations.fluent.handshake import ClientHandshake, HandshakeError, raw_unpacker
from logwarden.integrations.fluent.protocol import packer, unpacker
from logwarden.integrations.outputs.base import Chunk, NextHopError

log = structlog.get_logger("logwarden.outputs.forward")


@dataclass(frozen=True)
class ForwardConfig:
    host: str = "127.0.0.1"
    port: int = 24224
    shared_key: str | None = None
    self_hostname: str = "logwarden"
    username: str = ""
    password: str = ""
    tls: bool = False
    ca_file: Path | None = None
    tls_verify: bool = True
    server_name: str | None = None
    compress: str = "none"  # none | gzip
    retain_metadata: bool = True
    require_ack: bool = True
    connections: int = 4
    timeout_s: float = 10.0  # per try: connect, handshake, write and ack
    budget_s: float = 30.0  # per send, retries included


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.unpacker = unpacker(1 << 20)

    async def read_message(self) -> Any:
        while True:
            for message in self.unpacker:
                return message
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("the next hop closed the connection")
            self.unpacker.feed(data)

    def close(self) -> None:
        self.writer.close()


class ForwardOutput:
    name = "forward"

    def __init__(self, config: ForwardConfig) -> None:
        self.config = config
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(config.connections)
        self._ssl = self._ssl_context() if config.tls else None

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.config.ca_file) if self.config.ca_file else None)
        if not self.config.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    async def _connect(self) -> _Connection:
        c = self.config
        reader, writer = await asyncio.open_connection(
            c.host, c.port, ssl=self._ssl, server_hostname=(c.server_name or c.host) if self._ssl else None
        )
        conn = _Connection(reader, writer)
        if c.shared_key is not None:
            try:
                await self._handshake(conn)
            except BaseException:
                conn.close()
                raise
        return conn

    async def _handshake(self, conn: _Connection) -> None:
        c = self.config
        shake = ClientHandshake(c.shared_key.encode(), c.self_hostname, c.username, c.password)
        raw = raw_unpacker()

        async def message() -> Any:
            while True:
                for m in raw:
                    return m
                data = await conn.reader.read(4096)
                if not data:
                    raise ConnectionError("the next hop closed the connection during the handshake")
                raw.feed(data)

        conn.writer.write(shake.ping(await message()))
        shake.check_pong(await message())

    def _frame(self, chunk: Chunk) -> tuple[bytes, str | None]:
        """A PackedForward frame (the entries packed once, as Fluent Bit's own ``forward`` output sends them),
        gzip-compressed when configured, and its chunk id when acks are required."""
        c = self.config
        pack = packer()
        if c.retain_metadata:
            entries = [
                [r.time, r.record] if r.metadata is None else [[r.time, r.metadata], r.record] for r in chunk.records
            ]
        else:
            entries = [[r.time, r.record] for r in chunk.records]
        payload = b"".join(map(pack.pack, entries))
        options: dict[str, Any] = {"size": len(entries), "fluent_signal": 0}
        body = payload
        if c.compress == "gzip":
            body = gzip.compress(payload, compresslevel=1, mtime=0)
            options["compressed"] = "gzip"
        chunk_id = None
        if c.require_ack:
            chunk_id = base64.b64encode(hashlib.sha512(payload).digest()[:16]).decode()
            options["chunk"] = chunk_id
        return pack.pack([chunk.tag, body, options]), chunk_id

    async def send(self, chunk: Chunk) -> None:
        if not chunk.records:
            return
        frame, chunk_id = self._frame(chunk)
        await self._deliver(frame, chunk_id, chunk.tag)

    async def send_signal(self, tag: str, payload: bytes, options: dict[str, Any]) -> None:
        """Metrics/traces chunks go on as they came, with our own chunk id for the ack."""
        options = {k: v for k, v in options.items() if k != "chunk"}
        chunk_id = None
        if self.config.require_ack:
            chunk_id = base64.b64encode(hashlib.sha512(payload).digest()[:16]).decode()
            options["chunk"] = chunk_id
        await self._deliver(packer().pack([tag, payload, options]), chunk_id, tag)

    async def _deliver(self, frame: bytes, chunk_id: str | None, tag: str) -> None:
        c = self.config
        deadline = time.monotonic() + c.budget_s
        failures = 0
        while True:
            try:
                async with self._slots:
                    await asyncio.wait_for(self._try(frame, chunk_id), min(c.timeout_s, deadline - time.monotonic()))
                return
            except (OSError, ConnectionError, TimeoutError, HandshakeError, ValueError) as exc:
                failures += 1
                reason = f"{type(exc).__name__}: {exc}"
                delay = random.uniform(0, min(2.0, 0.05 * 2**failures))
                if isinstance(exc, HandshakeError) or time.monotonic() + delay >= deadline:
                    raise NextHopError(f"forward {c.host}:{c.port}: {reason}") from None
                log.warning("next hop try failed", next_hop="forward", tag=tag, failures=failures, error=reason)
                await asyncio.sleep(delay)

    async def _try(self, frame: bytes, chunk_id: str | None) -> None:
        conn = self._idle.pop() if self._idle else await self._connect()
        ok = False
        try:
            conn.writer.write(frame)
            await conn.writer.drain()
            if chunk_id is not None:
                answer = await conn.read_message()
                if not isinstance(answer, dict) or answer.get("ack") != chunk_id:
                    raise ValueError(f"unexpected answer instead of the ack: {str(answer)[:80]}")
            ok = True
        finally:
            if ok:
                self._idle.append(conn)
            else:
                conn.close()
