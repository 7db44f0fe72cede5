"""OTLP/gRPC logs ingest on the scoring server's port, driven by the OpenTelemetry Python SDK's OTLPLogExporter
(gRPC; what OTel-instrumented applications and the Collector send) and by hand-built requests shaped like Fluent
Bit's ``opentelemetry`` output (string body, empty resource and scope; INTEGRATIONS.md §4.1). The next hop is
the Splunk HEC stand-in (tests/peers/splunk_hec.py)."""

from __future__ import annotations

import logging
import threading

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as pb
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as pbg
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from peers.splunk_hec import SplunkHecPeer
from support import sessions_by_block

from logwarden.core.synthetic import generate
from logwarden.grpc_server.service.windows import window_key
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer

LINES = generate(n_sessions=3, anomaly_rate=0.0, seed=9).lines
TOKEN = "otlp-t0ken"


@pytest.fixture
def hec():
    with SplunkHecPeer() as peer:
        yield peer


@pytest.fixture
def server(model_root, hec):
    otlp = {
        "enabled": True,
        "next_hop": "splunk_hec",
        "hec_url": hec.url,
        "hec_token": "hec-t0ken",
        "next_hop_budget_s": 0.5,
        "next_hop_timeout_s": 0.5,
    }
    settings = load_settings(None, model_path=model_root, grpc_port=0, auth_tokens=[TOKEN], otlp=otlp)
    with BackgroundServer(settings) as bg:
        yield bg


def _sdk_send(target: str, lines: list[str]) -> None:
    exporter = OTLPLogExporter(endpoint=target, insecure=True, headers={"authorization": f"Bearer {TOKEN}"})
    provider = LoggerProvider(resource=Resource.create({"service.name": "web", "host.name": "h1"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = logging.getLogger(f"otlp-test-{id(provider)}")
    logger.propagate = False
    logger.addHandler(LoggingHandler(logger_provider=provider))
    for line in lines:
        logger.warning(line)
    provider.force_flush(30_000)
    provider.shutdown()


def test_sdk_exporter_records_are_scored_and_re_emitted(server, hec):
    _sdk_send(server.target, LINES[:3])
    assert [e["event"]["message"] for e in hec.events] == LINES[:3]
    event = hec.events[0]
    assert event["source"] == "web"  # the tag: resource attribute service.name
    assert event["event"]["severity"] == "WARN" and event["event"]["resource"]["host.name"] == "h1"
    assert event["event"]["logwarden"]["status"] == "scored" and "risk_score" in event["event"]["event"]


def test_exporter_resends_after_unavailable_and_every_record_arrives(server, hec):
    hec.busy(1000)  # the next hop refuses: the export is answered UNAVAILABLE, the exporter retries the batch
    released = threading.Event()

    def release() -> None:
        while not hec.requests:
            released.wait(0.01)
        hec.busy(0)
        released.set()

    threading.Thread(target=release, daemon=True).start()
    _sdk_send(server.target, LINES[:3])
    assert released.is_set()
    assert [e["event"]["message"] for e in hec.events] == LINES[:3]


def _fluent_bit_request(bodies: list[str]) -> pb.ExportLogsServiceRequest:
    records = [
        logs_pb2.LogRecord(time_unix_nano=1_700_000_000_000_000_000, body=common_pb2.AnyValue(string_value=b))
        for b in bodies
    ]
    return pb.ExportLogsServiceRequest(
        resource_logs=[logs_pb2.ResourceLogs(scope_logs=[logs_pb2.ScopeLogs(log_records=records)])]
    )


def test_fluent_bit_shaped_request_with_an_empty_body_is_a_partial_success(server, hec):
    with grpc.insecure_channel(server.target) as channel:
        export = pbg.LogsServiceStub(channel).Export
        answer = export(_fluent_bit_request([LINES[0], "", LINES[1]]), metadata=[("authorization", f"Bearer {TOKEN}")])
        assert answer.partial_success.rejected_log_records == 1
        assert "log_records[1].body: empty" in answer.partial_success.error_message
        with pytest.raises(grpc.RpcError) as refused:
            export(_fluent_bit_request([LINES[0]]))  # no token
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert [e["event"]["message"] for e in hec.events] == [LINES[0], LINES[1]]
    assert hec.events[0]["source"] == "otlp" and hec.events[0]["time"] == 1_700_000_000


def test_next_hop_down_is_unavailable(server, hec):
    hec.busy(1000)
    with grpc.insecure_channel(server.target) as channel, pytest.raises(grpc.RpcError) as failed:
        pbg.LogsServiceStub(channel).Export(
            _fluent_bit_request([LINES[0]]), metadata=[("authorization", f"Bearer {TOKEN}")]
        )
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert hec.events == []


def test_a_resent_batch_advances_the_window_once(server, hec):
    block = next(lines for lines in sessions_by_block(3, seed=6, anomaly_rate=0.0).values() if len(lines) >= 6)
    request = _fluent_bit_request(block[:6])
    with grpc.insecure_channel(server.target) as channel:
        for _ in range(2):  # the exporter resends the whole batch after a lost answer
            pbg.LogsServiceStub(channel).Export(request, metadata=[("authorization", f"Bearer {TOKEN}")])
    session = hec.events[0]["event"]["logwarden"]["session_key"]
    stored = server.run(server.server.windows.default.get_many([window_key("otlp", session)]))[0]
    assert len(stored["keys"]) == 6
