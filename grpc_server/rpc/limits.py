"""The bound on gRPC calls in progress (``max_concurrent_rpcs``), as a server interceptor.

gRPC's own ``maximum_concurrent_rpcs`` answers RESOURCE_EXHAUSTED too, but so does gRPC when a request
is larger than ``max_request_bytes``, which no retry can fix. So that clients can tell the two apart,
every overload answer of this server (this limit, a full scoring queue) carries the trailing metadata
``logwarden-overloaded`` (``OVERLOADED``); a RESOURCE_EXHAUSTED without it means "too large".
Health checks are not counted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from logwarden.grpc_server.rpc.handlers import wrapped

OVERLOADED = (("logwarden-overloaded", "1"),)


class ConcurrencyLimit(grpc.aio.ServerInterceptor):
    def __init__(self, limit: int, exempt_prefixes: tuple[str, ...] = ()) -> None:
        self.limit = limit
        self.active = 0
        self._exempt = exempt_prefixes

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = await continuation(details)
        if handler is None or details.method.startswith(self._exempt):
            return handler
        return wrapped(handler, self._slot)

    @asynccontextmanager
    async def _slot(self, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        if self.active >= self.limit:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many calls in progress ({self.limit}); retry with backoff",
                trailing_metadata=OVERLOADED,
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
