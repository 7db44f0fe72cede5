"""Redis window store: replicas behind a load balancer share stream-mode windows.

Each window is one Redis string ``logwarden:window:<window_key>`` holding the window's JSON, written
with ``SET ... PX <ttl>`` so every put restarts its TTL; reads are one ``MGET``, writes one pipelined
batch of SETs (no MULTI: windows are independent). Bounding: Redis itself evicts, so ``max_sessions``
is not counted here — TTL drops idle windows, and the Redis instance must have ``maxmemory`` set
(about ``max_sessions`` × (60 + 4 × window_size) bytes) with ``maxmemory-policy volatile-lru`` (or
``allkeys-lru`` on a Redis of its own): every window key has a TTL, so LRU eviction applies to it.

A Redis that cannot be reached (or refuses a write, e.g. ``OOM`` under ``noeviction``) fails the call
with ``WindowStoreUnavailable`` — UNAVAILABLE on gRPC, 503 over HTTP — so shippers retry and no event
is lost; a window is written only after its events were scored, so a retried call scores them again
on the same context. The URL (it may carry a password) is never logged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import grpc
import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError

from logwarden.core.errors import LogWardenError
from logwarden.grpc_server.service.errors import ServiceError
from logwarden.grpc_server.service.windows import Window, WindowStore

log = structlog.get_logger("logwarden.windows")
PREFIX = "logwarden:window:"


class WindowStoreUnavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE
    http_status = 503


class RedisWindowStore(WindowStore):
    """``url`` as redis-py takes it (``redis://``, ``rediss://`` for TLS, ``unix://``)."""

    def __init__(
        self, url: str, *, max_sessions: int, ttl_s: float, prefix: str = PREFIX, timeout_s: float = 2.0
    ) -> None:
        self.max_sessions = max_sessions  # advisory: Redis' maxmemory policy bounds the store (see above)
        self.ttl_ms = max(1, round(ttl_s * 1000))
        self.prefix = prefix
        try:
            self.client = aioredis.from_url(
                url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), 2),
            )
        except ValueError:  # the message would repeat the URL, password included
            raise LogWardenError("redis_url is not a Redis URL (redis://, rediss:// or unix://)") from None
        self._failing = False

    async def _run(self, coro):
        try:
            result = await coro
        except RedisError as exc:
            if not self._failing:
                log.warning("window store unavailable", error=f"{type(exc).__name__}: {exc}")
            self._failing = True
            raise WindowStoreUnavailable(
                f"session window store (Redis) unavailable: {type(exc).__name__}; retry"
            ) from exc
        if self._failing:
            log.info("window store reachable again")
            self._failing = False
        return result

    async def get_many(self, keys: Sequence[str]) -> list[Window | None]:
        if not keys:
            return []
        values = await self._run(self.client.mget([self.prefix + k for k in keys]))
        return [_load(v) for v in values]

    async def put_many(self, items: Mapping[str, Window]) -> None:
        if not items:
            return
        pipe = self.client.pipeline(transaction=False)
        for key, window in items.items():
            pipe.set(self.prefix + key, json.dumps(window, separators=(",", ":")), px=self.ttl_ms)
        await self._run(pipe.execute())

    async def delete_many(self, keys: Sequence[str]) -> None:
        if keys:
            await self._run(self.client.delete(*(self.prefix + k for k in keys)))

    async def close(self) -> None:
        await self.client.aclose()


def _load(value: bytes | None) -> Window | None:
    """A stored window; anything unreadable counts as absent (the session restarts its context)."""
    if value is None:
        return None
    try:
        window = json.loads(value)
    except ValueError:
        return None
    return window if isinstance(window, dict) else None
