"""Building gRPC method handlers of the same shape as a given one, around other behaviour.

Interceptors (auth, the concurrency limit) replace or wrap a method's behaviour; the handler they
return must keep the method's shape (unary or streaming on each side) and (de)serialisers.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import grpc

_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def behaviour(handler: grpc.RpcMethodHandler) -> Callable:
    """The servicer function a handler calls."""
    shape = (handler.request_streaming, handler.response_streaming)
    return {
        (False, False): handler.unary_unary,
        (False, True): handler.unary_stream,
        (True, False): handler.stream_unary,
        (True, True): handler.stream_stream,
    }[shape]


def _rebuilt(handler: grpc.RpcMethodHandler, function: Callable) -> grpc.RpcMethodHandler:
    factory = _FACTORIES[(handler.request_streaming, handler.response_streaming)]
    return factory(
        function,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def same_shape(handler: grpc.RpcMethodHandler, refuse: Callable) -> grpc.RpcMethodHandler:
    """A handler of ``handler``'s shape whose behaviour is ``refuse(request, context)`` (which aborts)."""
    if not handler.response_streaming:
        return _rebuilt(handler, refuse)

    async def refuse_stream(request, context):
        await refuse(request, context)
        yield  # pragma: no cover - makes this an async generator

    return _rebuilt(handler, refuse_stream)


def wrapped(
    handler: grpc.RpcMethodHandler, around: Callable[[grpc.aio.ServicerContext], AbstractAsyncContextManager]
) -> grpc.RpcMethodHandler:
    """``handler`` with its behaviour run inside ``around(context)`` (an async context manager)."""
    inner = behaviour(handler)
    if not handler.response_streaming:

        async def unary(request, context):
            async with around(context):
                return await inner(request, context)

        return _rebuilt(handler, unary)

    async def streaming(request, context):
        async with around(context):
            async for response in inner(request, context):
                yield response

    return _rebuilt(handler, streaming)
