"""Idempotent scoring: a request carrying an ``idempotency_key`` is scored once; a replay gets the stored answer.

At-least-once shippers resend a batch whose answer they did not get (Fluent Bit after a lost ack, an
Elasticsearch bulk retry, an OpenTelemetry exporter after UNAVAILABLE). In stream mode a resend that was
scored again would enter its session windows twice and change later verdicts. So the first request with
a key *claims* it, is scored, and its ``ScoreOutput`` is kept for ``ttl_s``; a later request with the same
key gets that output back (``replayed``) without touching any window. A replay that arrives while the
first is still being scored waits for it. A key reused for a *different* request (another fingerprint)
is refused: keys name one request.

One small interface, one short class per backend: ``MemoryIdempotency`` (the default; bounded in entries
and bytes, least recently stored first out) and ``RedisIdempotency`` (when windows live in Redis, so
replicas behind a load balancer agree: the claim is ``SET NX`` with a lease, the answer a JSON string with
a TTL).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from logwarden.grpc_server.service.errors import InvalidRequest, ShuttingDown
from logwarden.grpc_server.service.schema import EventIn, ScoreOutput

MAX_KEY_BYTES = 256
POLL_S = 0.02  # Redis: how often a waiting replay looks for the first request's answer


def fingerprint(events: Sequence[EventIn], options: tuple) -> str:
    """A digest of what a request asks (events and options), to tell a replay from a reused key."""
    digest = hashlib.sha256(repr(options).encode())
    for e in events:
        digest.update(
            b"\x1e".join(
                (
                    e.id.encode("utf-8", "surrogatepass"),
                    (e.message or "").encode("utf-8", "surrogatepass"),
                    e.raw or b"",
                    e.source.encode("utf-8", "surrogatepass"),
                    e.session_key.encode("utf-8", "surrogatepass"),
                    b"1" if e.session_end else b"0",
                    repr(e.timestamp).encode(),
                )
            )
        )
        digest.update(b"\x1d")
    return digest.hexdigest()


def check_key(key: str) -> None:
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidRequest("idempotency_key", f"longer than {MAX_KEY_BYTES} bytes")


@dataclass
class Claim:
    """The outcome of ``claim``: the stored answer of an earlier request, or the right to score this one."""

    replay: ScoreOutput | None = None


class Idempotency(ABC):
    @abstractmethod
    async def claim(self, key: str, fingerprint: str, deadline: float | None) -> Claim:
        """The stored answer for ``key``, or the claim to compute it (then ``store`` or ``release`` follows)."""

    @abstractmethod
    async def store(self, key: str, fingerprint: str, output: ScoreOutput) -> None:
        """Keep the answer of a claimed key for the TTL."""

    @abstractmethod
    async def release(self, key: str) -> None:
        """Give a claim up (the request failed): the next request with the key is scored."""

    async def close(self) -> None:  # noqa: B027 - optional for backends without connections
        """Release connections."""


def _mismatch() -> InvalidRequest:
    return InvalidRequest("idempotency_key", "already used for a different request (a key names one request)")


def output_bytes(output: ScoreOutput) -> int:
    """About what a stored answer costs in memory (an estimate, without serialising it)."""
    size = 200
    for r in output.results:
        size += 400 + len(r.id) + len(r.template) + len(r.reason) + sum(len(e.template) + 80 for e in r.expected)
    return size + 300 * len(output.sessions)


class MemoryIdempotency(Idempotency):
    """In-process answers, at most ``max_entries`` and about ``max_bytes``, each kept ``ttl_s``."""

    def __init__(self, ttl_s: float, max_entries: int = 100_000, max_bytes: int = 64 << 20) -> None:
        self.ttl_s, self.max_entries, self.max_bytes = ttl_s, max_entries, max_bytes
        self._done: OrderedDict[str, tuple[float, str, ScoreOutput, int]] = OrderedDict()
        self._pending: dict[str, tuple[str, asyncio.Future]] = {}
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._done)

    async def claim(self, key: str, fingerprint: str, deadline: float | None) -> Claim:
        while True:
            entry = self._done.get(key)
            if entry is not None and entry[0] > time.monotonic():
                if entry[1] != fingerprint:
                    raise _mismatch()
                return Claim(entry[2])
            pending = self._pending.get(key)
            if pending is None:
                self._pending[key] = (fingerprint, asyncio.get_running_loop().create_future())
                return Claim()
            if pending[0] != fingerprint:
                raise _mismatch()
            timeout = None if deadline is None else max(0.0, deadline - asyncio.get_running_loop().time())
            try:  # the first request is being scored: wait for it, then look again
                await asyncio.wait_for(asyncio.shield(pending[1]), timeout)
            except TimeoutError:
                raise ShuttingDown("a request with this idempotency key is still being scored; retry") from None

    async def store(self, key: str, fingerprint: str, output: ScoreOutput) -> None:
        self._drop(key)
        cost = output_bytes(output)
        self._done[key] = (time.monotonic() + self.ttl_s, fingerprint, output, cost)
        self.nbytes += cost
        now = time.monotonic()
        while self._done:
            oldest, (expires, _, _, _) = next(iter(self._done.items()))
            if expires > now and len(self._done) <= self.max_entries and self.nbytes <= self.max_bytes:
                break
            self._drop(oldest)
        self._finish(key)

    async def release(self, key: str) -> None:
        self._finish(key)

    def _finish(self, key: str) -> None:
        pending = self._pending.pop(key, None)
        if pending is not None and not pending[1].done():
            pending[1].set_result(None)

    def _drop(self, key: str) -> None:
        entry = self._done.pop(key, None)
        if entry is not None:
            self.nbytes -= entry[3]

    async def close(self) -> None:
        for key in list(self._pending):
            self._finish(key)
        self._done.clear()
        self.nbytes = 0


class RedisIdempotency(Idempotency):
    """Answers shared by replicas: ``<prefix><key>`` holds ``{"fingerprint", "output"}`` for ``ttl_s``;
    ``<prefix><key>:claim`` (``SET NX`` with a ``lease_s`` lease) marks a request being scored."""

    def __init__(
        self, client, ttl_s: float, *, run, lease_s: float = 30.0, prefix: str = "logwarden:idempotency:"
    ) -> None:
        self.client = client  # the window store's redis.asyncio client
        self.run = run  # its error mapping: Redis trouble is UNAVAILABLE (retry), never a lost answer
        self.ttl_ms, self.lease_ms, self.prefix = max(1, round(ttl_s * 1000)), max(1, round(lease_s * 1000)), prefix

    async def claim(self, key: str, fingerprint: str, deadline: float | None) -> Claim:
        loop = asyncio.get_running_loop()
        while True:
            stored = await self.run(self.client.get(self.prefix + key))
            if stored is not None:
                data = json.loads(stored)
                if data.get("fingerprint") != fingerprint:
                    raise _mismatch()
                return Claim(ScoreOutput.from_dict(data["output"]))
            if await self.run(self.client.set(self.prefix + key + ":claim", fingerprint, nx=True, px=self.lease_ms)):
                return Claim()
            if deadline is not None and loop.time() >= deadline:
                raise ShuttingDown("a request with this idempotency key is still being scored; retry")
            await asyncio.sleep(POLL_S)

    async def store(self, key: str, fingerprint: str, output: ScoreOutput) -> None:
        value = json.dumps({"fingerprint": fingerprint, "output": output.to_dict()}, separators=(",", ":"))
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.prefix + key, value, px=self.ttl_ms)
        pipe.delete(self.prefix + key + ":claim")
        await self.run(pipe.execute())

    async def release(self, key: str) -> None:
        await self.run(self.client.delete(self.prefix + key + ":claim"))
