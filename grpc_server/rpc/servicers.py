"""gRPC servicers: thin adapters from protobuf to ``ScoringService`` and back.

Requests are registered with a decoder that never raises: a message that is not valid protobuf (or
has a string field that is not UTF-8) reaches the servicer as ``BadMessage`` and is answered with
INVALID_ARGUMENT instead of grpc's generic INTERNAL/UNKNOWN. Overload answers (RESOURCE_EXHAUSTED)
carry the ``logwarden-overloaded`` mark (``limits.OVERLOADED``). A fault of the server's own is INTERNAL
"internal error" (logged), never UNKNOWN with the exception's text (which may hold server paths).

Streams and shutdown: a ``ScoreStream`` answers every message it reads, in order. When the server starts
draining, the stream ends with UNAVAILABLE as soon as it is between messages (after the answer in
progress, or at once while it waits for one): messages the client sent that got no answer were not
scored, and the client sends them again, elsewhere. A stream never ends OK with messages unanswered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import structlog
from google.protobuf.message import DecodeError

from logwarden.grpc_server.rpc import convert
from logwarden.grpc_server.rpc.handlers import wrapped
from logwarden.grpc_server.rpc.limits import OVERLOADED
from logwarden.grpc_server.service.errors import ServiceError
from logwarden.grpc_server.service.scoring import ScoringService
from logwarden.protos.logwarden.v1 import (
    labels_pb2,
    labels_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    scoring_pb2,
    scoring_pb2_grpc,
)

log = structlog.get_logger("logwarden.server")


@dataclass(frozen=True, slots=True)
class BadMessage:
    type_name: str
    error: str


def _safe_decoder(cls) -> Callable[[bytes], object]:
    def decode(data: bytes):
        try:
            return cls.FromString(data)
        except (DecodeError, RuntimeError, ValueError) as exc:
            return BadMessage(cls.DESCRIPTOR.full_name, str(exc) or type(exc).__name__)

    return decode


async def _check(request, context: grpc.aio.ServicerContext) -> None:
    if isinstance(request, BadMessage):
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"request: not a valid {request.type_name} ({request.error}); string fields must be "
            "UTF-8 (send other bytes in Event.raw)",
        )


class _Observed:
    """Counts and times one call for the request metrics; maps ServiceError to the call's status."""

    def __init__(self, service: ScoringService, method: str) -> None:
        self.metrics, self.method = service.metrics, method
        self.started = time.perf_counter()

    def done(self, code: grpc.StatusCode) -> None:
        self.metrics.requests.labels(self.method, code.name).inc()
        self.metrics.latency.labels(self.method).observe(time.perf_counter() - self.started)


async def _abort(context: grpc.aio.ServicerContext, obs: _Observed, exc: ServiceError) -> None:
    obs.done(exc.code)
    quiet = exc.code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)  # floods under load
    (log.debug if quiet else log.info)("call refused", method=obs.method, code=exc.code.name, error=exc.message)
    marks = OVERLOADED if exc.code == grpc.StatusCode.RESOURCE_EXHAUSTED else ()
    await context.abort(exc.code, exc.message, trailing_metadata=marks)


DRAINED_STREAM = (
    "the server is shutting down: this stream ends here; messages that got no answer were not scored, "
    "send them again (to another replica)"
)
_END = object()


async def _next_or_drain(messages: AsyncIterator, draining: asyncio.Event):
    """The next message, ``_END`` when the client closed its side, or None when draining began first."""
    if draining.is_set():
        return None
    read = asyncio.ensure_future(anext(messages, _END))
    drain = asyncio.ensure_future(draining.wait())
    try:
        await asyncio.wait((read, drain), return_when=asyncio.FIRST_COMPLETED)
    finally:
        drain.cancel()
    if read.done():
        return read.result()
    read.cancel()
    return None


class ScoringServicer(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self, service: ScoringService, draining: asyncio.Event | None = None) -> None:
        self.service = service
        self.draining = draining or asyncio.Event()

    async def _score(self, request: scoring_pb2.ScoreRequest, context, method: str) -> scoring_pb2.ScoreResponse:
        obs = _Observed(self.service, method)
        try:
            out = await self.service.score(
                [convert.event_in(e) for e in request.events],
                convert.mode(request),
                timeout=context.time_remaining(),
                idempotency_key=request.idempotency_key,
                model=request.model,
                window_scope=request.window_scope,
                partial_sessions=request.partial_sessions,
            )
        except ServiceError as exc:
            await _abort(context, obs, exc)
            raise  # unreachable: abort raises
        obs.done(grpc.StatusCode.OK)
        return convert.score_response(out, request.request_id)

    async def Score(self, request, context):
        await _check(request, context)
        return await self._score(request, context, "Score")

    async def ScoreStream(self, request_iterator, context) -> AsyncIterator[scoring_pb2.ScoreResponse]:
        messages = aiter(request_iterator)
        while True:
            request = await _next_or_drain(messages, self.draining)
            if request is _END:
                return
            if request is None:  # draining: what the client sent after the last answer is not scored
                obs = _Observed(self.service, "ScoreStream")
                obs.done(grpc.StatusCode.UNAVAILABLE)
                await context.abort(grpc.StatusCode.UNAVAILABLE, DRAINED_STREAM)
            await _check(request, context)
            yield await self._score(request, context, "ScoreStream")


class LabelServicer(labels_pb2_grpc.LabelServiceServicer):
    def __init__(self, service: ScoringService) -> None:
        self.service = service

    async def SubmitLabels(self, request, context):
        await _check(request, context)
        obs = _Observed(self.service, "SubmitLabels")
        try:
            results = await self.service.submit_labels([convert.label_in(x) for x in request.labels])
        except ServiceError as exc:
            await _abort(context, obs, exc)
            raise
        obs.done(grpc.StatusCode.OK)
        return convert.labels_response(results)


class ModelServicer(model_pb2_grpc.ModelServiceServicer):
    def __init__(self, service: ScoringService) -> None:
        self.service = service

    async def GetModelInfo(self, request, context):
        await _check(request, context)
        try:
            return convert.model_info(self.service.model_info(request.model))
        except ServiceError as exc:
            await _abort(context, _Observed(self.service, "GetModelInfo"), exc)
            raise

    async def ReloadModel(self, request, context):
        await _check(request, context)
        obs = _Observed(self.service, "ReloadModel")
        try:
            previous, info, changed = await self.service.reload_model(request.version or None, request.model)
        except ServiceError as exc:
            await _abort(context, obs, exc)
            raise
        obs.done(grpc.StatusCode.OK)
        log.info("model reloaded", previous=previous, version=info.version, changed=changed)
        return model_pb2.ReloadModelResponse(previous_version=previous, model=convert.model_info(info), changed=changed)


@asynccontextmanager
async def _internal_errors(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
    try:
        yield
    except (asyncio.CancelledError, grpc.aio.AbortError):
        raise
    except Exception as exc:  # the server's own fault: answered INTERNAL, the details only in the log
        log.error("call failed", error=f"{type(exc).__name__}: {exc}")
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")


_HANDLERS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_servicer(server: grpc.aio.Server, servicer, module, service_name: str) -> str:
    """Register ``servicer`` for ``service_name`` of a generated ``*_pb2`` module; returns the full name."""
    service = module.DESCRIPTOR.services_by_name[service_name]
    handlers = {}
    for method in service.methods:
        request_cls = getattr(module, method.input_type.name)
        response_cls = getattr(module, method.output_type.name)
        factory = _HANDLERS[(method.client_streaming, method.server_streaming)]
        handler = factory(
            getattr(servicer, method.name),
            request_deserializer=_safe_decoder(request_cls),
            response_serializer=response_cls.SerializeToString,
        )
        handlers[method.name] = wrapped(handler, _internal_errors)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)
    return service.full_name


def add_all(server: grpc.aio.Server, service: ScoringService, draining: asyncio.Event) -> list[str]:
    """Register the three LogWarden services; returns their full names (for health and reflection)."""
    return [
        add_servicer(server, ScoringServicer(service, draining), scoring_pb2, "ScoringService"),
        add_servicer(server, LabelServicer(service), labels_pb2, "LabelService"),
        add_servicer(server, ModelServicer(service), model_pb2, "ModelService"),
    ]
