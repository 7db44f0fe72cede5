"""Bad input gets a clear error naming the field, and the server keeps serving everyone else."""

from __future__ import annotations

import grpc
import pytest

from logwarden.core.synthetic import generate
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer
from logwarden.protos.logwarden.v1 import model_pb2, model_pb2_grpc
from logwarden.protos.logwarden.v1 import scoring_pb2 as pb
from logwarden.protos.logwarden.v1 import scoring_pb2_grpc as pbg

LINES = generate(n_sessions=3, anomaly_rate=0.0, seed=4).lines


@pytest.fixture(scope="module")
def server(model_root):
    settings = load_settings(
        None,
        model_path=model_root,
        grpc_port=0,
        batch_wait_ms=1,
        max_events_per_request=50,
        max_message_bytes=2000,
        max_request_bytes=64 * 1024,
    )
    with BackgroundServer(settings) as bg:
        yield bg


@pytest.fixture
def channel(server):
    with grpc.insecure_channel(server.target) as ch:
        yield ch
        # whatever the test sent, the server still scores a good request
        ok = pbg.ScoringServiceStub(ch).Score(pb.ScoreRequest(events=[pb.Event(message=LINES[0])]))
        assert ok.results[0].status == pb.EVENT_STATUS_SCORED


def _error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value


def test_empty_batch_and_too_many_events(channel):
    stub = pbg.ScoringServiceStub(channel)
    err = _error(stub.Score, pb.ScoreRequest())
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("events:")
    err = _error(stub.Score, pb.ScoreRequest(events=[pb.Event(message=LINES[0])] * 51))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit of 50" in err.details()


def test_bad_events_are_reported_and_the_others_scored(channel):
    events = [
        pb.Event(id="good", message=LINES[0]),
        pb.Event(id="missing"),
        pb.Event(id="huge", message="x" * 2001),
        pb.Event(id="blank", message="   "),
        pb.Event(id="attrs", message=LINES[1], attributes={"k": "v" * 5000}),
        pb.Event(id="bytes", raw=LINES[2].encode() + b" \xff\xfe"),
        pb.Event(id="foreign", message="not an hdfs line at all"),
    ]
    results = {r.id: r for r in pbg.ScoringServiceStub(channel).Score(pb.ScoreRequest(events=events)).results}
    assert results["good"].status == pb.EVENT_STATUS_SCORED and not results["good"].warnings
    invalid = {k: r.error_field for k, r in results.items() if r.status == pb.EVENT_STATUS_INVALID}
    assert invalid == {
        "missing": "events[1].message",
        "huge": "events[2].message",
        "blank": "events[3].message",
        "attrs": "events[4].attributes['k']",
    }
    assert "2001 bytes exceed the limit of 2000" in results["huge"].error
    assert results["bytes"].status == pb.EVENT_STATUS_SCORED and "UTF-8" in results["bytes"].warnings[0]
    assert results["foreign"].status == pb.EVENT_STATUS_SCORED and "line format" in results["foreign"].warnings[0]
    assert results["foreign"].new_template and results["foreign"].verdict == pb.VERDICT_ANOMALOUS
    assert results["foreign"].template == "not an hdfs line at all"  # a new template shows its (masked) line


def _raw_score(channel) -> grpc.UnaryUnaryMultiCallable:
    return channel.unary_unary("/logwarden.v1.ScoringService/Score")  # identity (de)serialisers: raw bytes


def test_malformed_protobuf(channel):
    err = _error(_raw_score(channel), b"\x0a\xff\xff\xff\xff\x0f garbage")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "not a valid logwarden.v1.ScoreRequest" in err.details()


def test_string_field_that_is_not_utf8(channel):
    data = pb.ScoreRequest(events=[pb.Event(message="AAAA")]).SerializeToString().replace(b"AAAA", b"\xff\xfe\xfd\xfc")
    err = _error(_raw_score(channel), data)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "Event.raw" in err.details()


def test_oversized_request(channel):
    events = [pb.Event(message="y" * 1900) for _ in range(40)]  # ~76 KiB > 64 KiB
    err = _error(pbg.ScoringServiceStub(channel).Score, pb.ScoreRequest(events=events))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_unknown_mode(channel):
    err = _error(pbg.ScoringServiceStub(channel).Score, pb.ScoreRequest(events=[pb.Event(message=LINES[0])], mode=9))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("mode:")


def test_expired_deadline(channel):
    err = _error(
        pbg.ScoringServiceStub(channel).Score, pb.ScoreRequest(events=[pb.Event(message=LINES[0])]), timeout=1e-6
    )
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_reload_to_an_unknown_version(channel):
    stub = model_pb2_grpc.ModelServiceStub(channel)
    before = stub.GetModelInfo(model_pb2.GetModelInfoRequest()).version
    for version in ("v-does-not-exist", "../etc"):
        err = _error(stub.ReloadModel, model_pb2.ReloadModelRequest(version=version))
        assert err.code() == grpc.StatusCode.NOT_FOUND and "not found" in err.details()
    assert stub.GetModelInfo(model_pb2.GetModelInfoRequest()).version == before


def test_labels_without_a_label_store(channel):
    from logwarden.protos.logwarden.v1 import labels_pb2, labels_pb2_grpc

    err = _error(labels_pb2_grpc.LabelServiceStub(channel).SubmitLabels, labels_pb2.SubmitLabelsRequest())
    assert err.code() == grpc.StatusCode.UNIMPLEMENTED and "label store" in err.details()
