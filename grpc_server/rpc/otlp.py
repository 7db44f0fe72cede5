"""OTLP/gRPC logs ingest on the scoring server's own port: ``opentelemetry...logs.v1.LogsService/Export`` (Fluent
Bit's ``opentelemetry`` output with ``grpc on``, the OpenTelemetry Collector, Vector, Alloy; INTEGRATIONS.md §4).

Score-and-re-emit, like the Forward receiver: each log record becomes a record ``{"message", "severity",
"attributes", "resource", "scope", "trace_id", "span_id"}`` (a kvlist body is merged in instead of ``message``),
scored through the client library against this very server (stream mode; ``idempotency_key`` = SHA-256 of the
request, so the exporter's whole-batch resends are scored once; fail-open), enriched with
``ScoredEvent.document()`` and re-emitted to the next hop of ``settings.otlp``. The answer comes only after the
next hop accepted the records. Records without a body (or an empty one) are refused in ``partial_success``;
the next hop failing, or the server draining, is ``UNAVAILABLE``, too many exports in flight
``RESOURCE_EXHAUSTED`` — statuses every OTLP exporter retries.

The tag (Forward next hop, model routing attribute) is the resource attribute ``tag_attribute`` (default
``service.name``), else ``tag``; sources and sessions are read with dotted keys such as
``resource.host.name`` (attribute names may contain dots). With server TLS the loopback client needs
``scorer_ca_file`` (and ``scorer_server_name``); mTLS servers need ``scorer`` pointed at a plain port.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import grpc
import structlog
from pydantic import Field, SecretStr
from pydantic_settings import CliSuppress

from logwarden.integrations.outputs.settings import NextHopSettings

log = structlog.get_logger("logwarden.otlp")


class OtlpSettings(NextHopSettings):
    """OTLP logs ingest (off by default): where its records go and how they are read."""

    enabled: bool = Field(False, description="serve OTLP LogsService/Export on the gRPC port")
    tag: str = Field("otlp", description="tag when the resource has no tag_attribute")
    tag_attribute: str = Field("service.name", description="resource attribute that is the tag")
    message_keys: list[str] = Field(["message", "log"], min_length=1, description="record keys holding the line")
    source_key: str | None = Field(None, description="record key of the source (e.g. resource.host.name)")
    session_key: str | None = Field(None, description="record key of the session")
    model_key: str | None = Field(None, description="record key whose value is the model route")
    passthrough: bool = Field(False, description="scoring off: records go on marked unscored")
    score_budget_s: float = Field(5.0, gt=0, description="seconds an export may wait for scoring")
    max_inflight: int = Field(64, ge=1, description="exports in progress; more get RESOURCE_EXHAUSTED")
    scorer: str | None = Field(None, description="scoring address (null = this server's own port)")
    scorer_token: CliSuppress[SecretStr | None] = Field(None, description="scorer token (default: the first)")
    scorer_ca_file: str | None = Field(None, description="CA bundle for the scorer when it speaks TLS")
    scorer_server_name: str | None = Field(None, description="TLS name to expect from the scorer")


def _value(v) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def _attributes(pairs) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


class OtlpIngest:
    """The LogsService servicer and its companion life cycle (start: next hop and scorer client; stop: close)."""

    def __init__(self, settings: OtlpSettings, server) -> None:
        self.settings = settings
        self.server = server  # the LogWardenServer: its port, tokens, TLS and draining state
        self.records = None
        self.next_hop = None
        self._client = None
        self._inflight = 0

    @classmethod
    def register(cls, server) -> str:
        """Add the servicer to ``server`` (a LogWardenServer being started) and join its companions."""
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

        from logwarden.grpc_server.rpc.servicers import add_servicer

        ingest = cls(server.settings.otlp, server)
        server.companions.append(ingest)
        return add_servicer(server._server, ingest, logs_service_pb2, "LogsService")

    async def start(self, server) -> None:
        from logwarden.integrations.client import AsyncLogWardenClient
        from logwarden.integrations.ingest.scoring import FieldMap, RecordScorer
        from logwarden.integrations.outputs.settings import build_next_hop

        s, top = self.settings, server.settings
        scorer = None
        if not s.passthrough:
            tokens = [t.get_secret_value() for t in top.auth_tokens]
            self._client = scorer = AsyncLogWardenClient(
                s.scorer or f"127.0.0.1:{server.port}",
                token=s.scorer_token.get_secret_value() if s.scorer_token else (tokens[0] if tokens else None),
                tls=bool(top.tls_cert) and s.scorer is None,
                ca_file=s.scorer_ca_file,
                server_name=s.scorer_server_name,
                budget_s=s.score_budget_s,
            )
        fields = FieldMap(tuple(s.message_keys), s.source_key, s.session_key, "", s.model_key)
        self.records = RecordScorer(scorer, fields, budget_s=s.score_budget_s)
        self.next_hop = build_next_hop(s)
        await self.next_hop.start()
        log.info("otlp logs ingest", next_hop=self.next_hop.name, passthrough=s.passthrough)

    async def stop(self) -> None:
        """After the exports in progress (they drain beside the gRPC server), close the next hop and client."""
        deadline = time.monotonic() + self.server.settings.shutdown_grace_s
        while self._inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.next_hop is not None:
            await self.next_hop.close()
        if self._client is not None:
            await self._client.close()

    async def Export(self, request, context):
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as pb

        from logwarden.grpc_server.rpc.servicers import _check
        from logwarden.integrations.outputs.base import Chunk, NextHopError

        await _check(request, context)
        if self.server.draining or self.next_hop is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
        if self._inflight >= self.settings.max_inflight:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many OTLP exports in progress")
        self._inflight += 1
        try:
            by_tag, rejected, first_error = self._records(request)
            key = "otlp:" + hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()
            for tag, records in by_tag.items():
                chunk_key = key if len(by_tag) == 1 else f"{key}#{tag}"
                await self.records.enrich(tag, records, chunk_key)
                try:
                    await self.next_hop.send(Chunk(tag, records, chunk_key))
                except NextHopError as exc:
                    log.error("otlp: next hop did not accept the records", tag=tag, error=str(exc))
                    await context.abort(grpc.StatusCode.UNAVAILABLE, f"next hop did not accept the records: {exc}")
        finally:
            self._inflight -= 1
        response = pb.ExportLogsServiceResponse()
        if rejected:
            response.partial_success.rejected_log_records = rejected
            response.partial_success.error_message = f"{rejected} log records refused: {first_error}"
        return response

    def _records(self, request) -> tuple[dict[str, list], int, str]:
        from logwarden.integrations.outputs.base import Record, event_time

        s = self.settings
        by_tag: dict[str, list] = {}
        rejected, first_error = 0, ""
        for r, resource_logs in enumerate(request.resource_logs):
            resource = _attributes(resource_logs.resource.attributes)
            tag = str(resource.get(s.tag_attribute) or s.tag)
            for c, scope_logs in enumerate(resource_logs.scope_logs):
                scope = {"name": scope_logs.scope.name, "version": scope_logs.scope.version}
                for i, lr in enumerate(scope_logs.log_records):
                    body = _value(lr.body) if lr.HasField("body") else None
                    if body in (None, "", {}, []):
                        rejected += 1
                        first_error = first_error or f"resource_logs[{r}].scope_logs[{c}].log_records[{i}].body: empty"
                        continue
                    record: dict[str, Any] = dict(body) if isinstance(body, dict) else {"message": _text(body)}
                    record["severity"] = lr.severity_text or _severity(lr.severity_number)
                    if lr.attributes:
                        record["attributes"] = _attributes(lr.attributes)
                    if resource:
                        record["resource"] = resource
                    if scope["name"]:
                        record["scope"] = scope
                    if lr.trace_id:
                        record["trace_id"], record["span_id"] = lr.trace_id.hex(), lr.span_id.hex()
                    nanos = lr.time_unix_nano or lr.observed_time_unix_nano
                    by_tag.setdefault(tag, []).append(Record(event_time(nanos / 1e9 if nanos else time.time()), record))
        return by_tag, rejected, first_error


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _severity(number: int) -> str:
    return ("", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")[min(6, (number + 3) // 4)] if number else ""
