"""Bearer-token authentication as a server interceptor (``authorization: Bearer <token>`` metadata).

Calls without a valid token get UNAUTHENTICATED. Health checks stay open by default so load
balancers and Kubernetes probes need no secret (``auth_health`` closes them). Tokens are compared
in constant time and never logged.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from logwarden.grpc_server.security import TokenCheck

HEALTH_PREFIX = "/grpc.health.v1.Health/"


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, tokens: Sequence[str], open_prefixes: Sequence[str] = (HEALTH_PREFIX,)) -> None:
        self._check = TokenCheck(tokens)
        self._open = tuple(open_prefixes)

    def _authorized(self, metadata) -> bool:
        for key, value in metadata or ():
            if key == "authorization":
                return self._check.accepts(value)
        return False

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = await continuation(details)
        if handler is None or details.method.startswith(self._open) or self._authorized(details.invocation_metadata):
            return handler
        return _refusal(handler)


async def _deny(request, context: grpc.aio.ServicerContext):
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")


async def _deny_stream(request, context: grpc.aio.ServicerContext):
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
    yield  # pragma: no cover - makes this an async generator


def _refusal(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that refuses the call."""
    kw = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_deny_stream, **kw)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_deny, **kw)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(_deny_stream, **kw)
    return grpc.unary_unary_rpc_method_handler(_deny, **kw)
