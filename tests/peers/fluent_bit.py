"""A stand-in for Fluent Bit v5.1's ``forward`` output, byte for byte as INTEGRATIONS.md §3.1-3.2 records it
(Fluent Bit itself is not installable here): v2 entries ``[[EventTime, {metadata}], record]``, CompressedPackedForward
with one gzip member per flush, options ``{chunk, size, compressed, fluent_signal: 0}`` where ``chunk`` is
base64 of the first 16 bytes of SHA-512 of the payload, the shared-key handshake with a salt of 16 raw bytes
packed as a msgpack *str*, the PONG checked as v5.0.9+ checks it, and ``Retry_Limit no_limits``: a chunk that
gets no ack (connection closed, timeout) is sent again, on a new connection, until it is acked.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import os
import struct
import time
from typing import Any

import msgpack
from msgpack import ExtType


def event_time(seconds: int, nanos: int = 0) -> ExtType:
    return ExtType(0, struct.pack(">II", seconds, nanos))


def v2_entry(record: dict, seconds: int = 1_700_000_000, nanos: int = 0, metadata: dict | None = None) -> list:
    return [[event_time(seconds, nanos), metadata or {}], record]


def pack_entries(entries: list) -> bytes:
    packer = msgpack.Packer(use_bin_type=True)
    return b"".join(packer.pack(e) for e in entries)


def chunk_id(payload: bytes) -> str:
    return base64.b64encode(hashlib.sha512(payload).digest()[:16]).decode()


def compressed_frame(tag: str, entries: list, *, ack: bool = True, members: int = 1) -> tuple[bytes, str | None]:
    """CompressedPackedForward as Fluent Bit sends it (``members`` > 1 splits the gzip stream in members)."""
    payload = pack_entries(entries)
    if members == 1:
        body = gzip.compress(payload, compresslevel=1, mtime=0)
    else:
        step = max(1, len(payload) // members)
        body = b"".join(gzip.compress(payload[i : i + step], mtime=0) for i in range(0, len(payload), step))
    options: dict[str, Any] = {"size": len(entries), "compressed": "gzip", "fluent_signal": 0}
    cid = None
    if ack:
        cid = options["chunk"] = chunk_id(payload)
    return msgpack.packb([tag, body, options], use_bin_type=True), cid


def ping(
    helo: list, shared_key: bytes, hostname: bytes = b"fb-edge", username=b"", password=b""
) -> tuple[bytes, bytes]:
    """Fluent Bit's PING for a raw-decoded HELO: (the PING's bytes, the salt); the salt is 16 raw bytes packed
    as a msgpack str (``use_bin_type=False`` packs bytes with the str type)."""
    options = helo[1]
    nonce, auth = options[b"nonce"], options.get(b"auth") or b""
    salt = os.urandom(15) + b"\xff"  # never valid UTF-8
    digest = hashlib.sha512(salt + hostname + nonce + shared_key).hexdigest().encode()
    password_digest = hashlib.sha512(auth + username + password).hexdigest().encode() if auth else b""
    message = [b"PING", hostname, salt, digest, username, password_digest]
    return msgpack.packb(message, use_bin_type=False), salt


def check_pong(pong: list, salt: bytes, nonce: bytes, shared_key: bytes) -> None:
    """Fluent Bit ≥ 5.0.9's PONG check (``forward.c``): 5 elements, a bool, a 128-hex digest that matches."""
    if len(pong) != 5 or pong[0] != b"PONG" or not isinstance(pong[1], bool):
        raise AssertionError(f"malformed PONG: {pong!r}")
    if not pong[1]:
        raise PermissionError(pong[2].decode())
    digest = pong[4]
    if len(digest) != 128 or hashlib.sha512(salt + pong[3] + nonce + shared_key).hexdigest().encode() != digest:
        raise AssertionError("PONG shared_key digest mismatch")


class FluentBitSender:
    """One Fluent Bit output worker: chunks sent one at a time on a connection, each retried until acked."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        shared_key: bytes | None = None,
        retry_wait_s: float = 0.2,
        ack_timeout_s: float = 30.0,
        ssl=None,
    ) -> None:
        self.host, self.port, self.shared_key, self.ssl = host, port, shared_key, ssl
        self.retry_wait_s, self.ack_timeout_s = retry_wait_s, ack_timeout_s
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.retries = 0

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, ssl=self.ssl)
        if self.shared_key is not None:
            raw = msgpack.Unpacker(raw=True)
            helo = await self._read(raw)
            message, salt = ping(helo, self.shared_key)
            self.writer.write(message)
            check_pong(await self._read(raw), salt, helo[1][b"nonce"], self.shared_key)

    async def _read(self, unpacker: msgpack.Unpacker) -> Any:
        while True:
            for value in unpacker:
                return value
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("receiver closed the connection")
            unpacker.feed(data)

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def send(self, frame: bytes, cid: str | None) -> float:
        """Send until acked (forever, as with Retry_Limit no_limits); returns the seconds of the try that won."""
        while True:
            started = time.perf_counter()
            try:
                if self.writer is None:
                    await self._connect()
                self.writer.write(frame)
                await self.writer.drain()
                if cid is None:
                    return time.perf_counter() - started
                answer = await asyncio.wait_for(self._read(msgpack.Unpacker(raw=False)), self.ack_timeout_s)
                if answer != {"ack": cid}:
                    raise ConnectionError(f"unexpected answer {answer!r}")
                return time.perf_counter() - started
            except (OSError, ConnectionError, TimeoutError, ValueError):
                self._close()
                self.retries += 1
                await asyncio.sleep(self.retry_wait_s)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self.writer.wait_closed()
        self.reader = self.writer = None
