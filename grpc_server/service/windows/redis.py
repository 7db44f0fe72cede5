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
import time
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
INDEX = "~index"  # an ad-hoc scope's sorted set of its windows by last use (the quota)


class WindowStoreUnavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE
    http_status = 503


class RedisWindowStore(WindowStore):
    """``url`` as redis-py takes it (``redis://``, ``rediss://`` for TLS, ``unix://``)."""

    def __init__(
        self,
        url: str | None,
        *,
        max_sessions: int,
        ttl_s: float,
        prefix: str = PREFIX,
        timeout_s: float = 2.0,
        client=None,
        quota: bool = False,
    ) -> None:
        # max_sessions is advisory for the default scope (Redis' maxmemory policy bounds it, see above); with
        # ``quota`` (ad-hoc window scopes) it is enforced: an index of the scope's windows by last use drops
        # the oldest beyond it, so a big ad-hoc search never grows into the memory the live windows need.
        self.max_sessions = max_sessions
        self.ttl_ms = max(1, round(ttl_s * 1000))
        self.prefix = prefix
        self.quota = quota
        self._owns_client = client is None
        self.client = client if client is not None else connect(url or "", timeout_s)
        self._failing = False

    async def run(self, coro):
        """Await a Redis call; failures become WindowStoreUnavailable (UNAVAILABLE / 503: callers retry)."""
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
        values = await self.run(self.client.mget([self.prefix + k for k in keys]))
        return [_load(v) for v in values]

    async def put_many(self, items: Mapping[str, Window]) -> None:
        if not items:
            return
        pipe = self.client.pipeline(transaction=False)
        for key, window in items.items():
            pipe.set(self.prefix + key, json.dumps(window, separators=(",", ":")), px=self.ttl_ms)
        if self.quota:
            index = self.prefix + INDEX
            pipe.zadd(index, {self.prefix + key: time.time() for key in items})
            pipe.pexpire(index, self.ttl_ms)
            pipe.zcard(index)
        results = await self.run(pipe.execute())
        if self.quota and results[-1] > self.max_sessions:
            oldest = await self.run(self.client.zpopmin(index, results[-1] - self.max_sessions))
            if oldest:
                await self.run(self.client.delete(*(name for name, _ in oldest)))

    async def delete_many(self, keys: Sequence[str]) -> None:
        if keys:
            names = [self.prefix + k for k in keys]
            await self.run(self.client.delete(*names))
            if self.quota:
                await self.run(self.client.zrem(self.prefix + INDEX, *names))

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose()


def connect(url: str, timeout_s: float = 2.0):
    """A redis.asyncio client for ``url``; the URL (it may hold a password) never appears in an error."""
    try:
        return aioredis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), 2),
        )
    except ValueError:
        raise LogWardenError("redis_url is not a Redis URL (redis://, rediss:// or unix://)") from None


def _load(value: bytes | None) -> Window | None:
    """A stored window; anything unreadable counts as absent (the session restarts its context)."""
    if value is None:
        return None
    try:
        window = json.loads(value)
    except ValueError:
        return None
    return window if isinstance(window, dict) else None
