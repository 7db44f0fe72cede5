"""gRPC scoring against a live server on 127.0.0.1: verdicts equal the engine's, in every mode."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support import MemoryLabels, engine_verdicts, sessions_by_block

from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer
from logwarden.protos.logwarden.v1 import labels_pb2, labels_pb2_grpc, model_pb2, model_pb2_grpc, reasons_pb2
from logwarden.protos.logwarden.v1 import scoring_pb2 as pb
from logwarden.protos.logwarden.v1 import scoring_pb2_grpc as pbg


@pytest.fixture(scope="module")
def sessions() -> dict[str, list[str]]:
    return sessions_by_block(30, seed=11)


@pytest.fixture(scope="module")
def engine(model_root, sessions):
    """The engine's own verdicts for each whole session: {block: SessionVerdict}."""
    return engine_verdicts(model_root, sessions)


@pytest.fixture(scope="module")
def server(model_root):
    labels = MemoryLabels()
    settings = load_settings(None, model_path=model_root, grpc_port=0, batch_wait_ms=2, window_size=250)
    with BackgroundServer(settings, labels=labels) as bg:
        bg.labels = labels
        yield bg


@pytest.fixture
def channel(server):
    with grpc.insecure_channel(server.target) as ch:
        yield ch


def _events(sessions, blocks, source="s"):
    return [pb.Event(id=f"{b}#{i}", message=line, source=source) for b in blocks for i, line in enumerate(sessions[b])]


def _assert_event_matches(result, verdict):
    assert result.status == pb.EVENT_STATUS_SCORED
    assert result.score == pytest.approx(verdict.score, abs=1e-5)
    assert (result.verdict == pb.VERDICT_ANOMALOUS) == verdict.anomalous
    assert result.template_id == (verdict.key or "")
    assert result.rank == verdict.rank
    assert result.reason == verdict.reason
    expected_code = f"REASON_CODE_{verdict.reason_code.upper()}" if verdict.reason_code else "REASON_CODE_UNSPECIFIED"
    assert reasons_pb2.ReasonCode.Name(result.reason_code) == expected_code
    assert [e.template_id for e in result.expected] == [e.key for e in verdict.expected]


def _check_sequence_response(response, sessions, blocks, engine):
    by_id = {r.id: r for r in response.results}
    assert len(by_id) == sum(len(sessions[b]) for b in blocks)
    for b in blocks:
        for i, verdict in enumerate(engine[b].events):
            _assert_event_matches(by_id[f"{b}#{i}"], verdict)
    got = {s.session_key: s for s in response.sessions}
    assert list(got) == list(blocks)
    for b in blocks:
        assert got[b].score == pytest.approx(engine[b].score, abs=1e-5)
        assert (got[b].verdict == pb.VERDICT_ANOMALOUS) == engine[b].anomalous
        assert got[b].events == len(sessions[b])
        assert got[b].end.score == pytest.approx(engine[b].end.score, abs=1e-5)


def test_sequence_mode_equals_the_engine(channel, sessions, engine):
    blocks = list(sessions)
    assert any(engine[b].anomalous for b in blocks) and not all(engine[b].anomalous for b in blocks)
    request = pb.ScoreRequest(events=_events(sessions, blocks), mode=pb.SCORING_MODE_SEQUENCE, request_id="r1")
    response = pbg.ScoringServiceStub(channel).Score(request)
    assert response.request_id == "r1" and response.model_version
    assert [r.id for r in response.results] == [e.id for e in request.events]  # request order
    _check_sequence_response(response, sessions, blocks, engine)


def _chunks(sessions, blocks, parts=3):
    """Each session split into ``parts`` pieces; message j carries piece j of every session."""
    messages = []
    for j in range(parts):
        events = []
        for b in blocks:
            lines = sessions[b]
            lo, hi = len(lines) * j // parts, len(lines) * (j + 1) // parts
            events += [pb.Event(id=f"{b}#{i}", message=lines[i], source="stream-test") for i in range(lo, hi)]
        messages.append(events)
    return messages


def _check_stream_results(results, blocks, engine):
    assert len(results) == sum(len(engine[b].events) for b in blocks)
    for r in results:
        block, i = r.id.split("#")
        _assert_event_matches(r, engine[block].events[int(i)])


def test_stream_mode_across_messages_equals_sequence_mode(channel, sessions, engine):
    blocks = list(sessions)[:12]
    stub = pbg.ScoringServiceStub(channel)
    results = []
    for events in _chunks(sessions, blocks):
        for r in stub.Score(pb.ScoreRequest(events=events, mode=pb.SCORING_MODE_STREAM)).results:
            results.append(r)
    _check_stream_results(results, blocks, engine)


def test_stream_mode_session_end_judges_the_end_and_forgets_the_window(channel, sessions, engine):
    blocks = list(sessions)[24:30]
    stub = pbg.ScoringServiceStub(channel)
    messages = _chunks(sessions, blocks)
    for event in messages[-1]:  # the last piece of every session carries its end (any event of it may)
        event.session_end = True
    responses = [stub.Score(pb.ScoreRequest(events=events, mode=pb.SCORING_MODE_STREAM)) for events in messages]
    assert [len(r.sessions) for r in responses] == [0, 0, len(blocks)]
    _check_stream_results([r for resp in responses for r in resp.results], blocks, engine)
    ended = {s.session_key: s for s in responses[-1].sessions}
    assert list(ended) == blocks
    for b in blocks:  # the end and the combination are judged as in sequence mode, from the whole session
        assert ended[b].end.score == pytest.approx(engine[b].end.score, abs=1e-5)
        assert (ended[b].end.verdict == pb.VERDICT_ANOMALOUS) == engine[b].end.anomalous
        assert (ended[b].verdict == pb.VERDICT_ANOMALOUS) == engine[b].anomalous
        assert ended[b].reason == engine[b].reason
    # the windows are gone: the same block ids start new sessions (first event scored without context)
    again = [pb.Event(id=f"{b}#0", message=sessions[b][0], source="stream-test") for b in blocks]
    for r in stub.Score(pb.ScoreRequest(events=again, mode=pb.SCORING_MODE_STREAM)).results:
        _assert_event_matches(r, engine[r.id.split("#")[0]].events[0])


def test_stream_mode_session_cut_short_ended_early(channel, sessions, engine):
    block = next(b for b in sessions if not engine[b].anomalous)
    events = [pb.Event(id=f"cut#{i}", message=line, source="cut") for i, line in enumerate(sessions[block][:2])]
    events[-1].session_end = True
    response = pbg.ScoringServiceStub(channel).Score(pb.ScoreRequest(events=events, mode=pb.SCORING_MODE_STREAM))
    assert all(r.verdict == pb.VERDICT_NORMAL for r in response.results)
    (session,) = response.sessions
    assert session.verdict == pb.VERDICT_ANOMALOUS and session.end.verdict == pb.VERDICT_ANOMALOUS
    assert session.reason_code == reasons_pb2.REASON_CODE_ENDED_EARLY and session.events == 2
    assert session.end.reason_code == reasons_pb2.REASON_CODE_ENDED_EARLY


def test_bidirectional_stream(server, sessions, engine):
    blocks = list(sessions)[12:24]
    messages = [
        pb.ScoreRequest(events=[pb.Event(id=e.id, message=e.message, source="bidi") for e in events], request_id=str(j))
        for j, events in enumerate(_chunks(sessions, blocks, parts=4))
    ]
    with grpc.insecure_channel(server.target) as ch:
        responses = list(pbg.ScoringServiceStub(ch).ScoreStream(iter(messages)))
    assert [r.request_id for r in responses] == ["0", "1", "2", "3"]
    _check_stream_results([r for resp in responses for r in resp.results], blocks, engine)


def test_many_concurrent_clients(server, sessions, engine):
    blocks = list(sessions)

    def client(n: int) -> int:
        with grpc.insecure_channel(server.target) as ch:
            stub = pbg.ScoringServiceStub(ch)
            for j in range(4):
                chosen = blocks[(n + j) % len(blocks) :][:5] or blocks[:5]
                response = stub.Score(pb.ScoreRequest(events=_events(sessions, chosen), mode=pb.SCORING_MODE_SEQUENCE))
                _check_sequence_response(response, sessions, chosen, engine)
        return n

    with ThreadPoolExecutor(16) as pool:
        assert sorted(pool.map(client, range(16))) == list(range(16))


def test_health_reflection_model_info_and_metrics(server, channel):
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", "logwarden.v1.ScoringService"):
        assert (
            health.Check(health_pb2.HealthCheckRequest(service=name)).status == health_pb2.HealthCheckResponse.SERVING
        )
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    (answer,) = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for s in answer.list_services_response.service}
    assert {
        "logwarden.v1.ScoringService",
        "logwarden.v1.LabelService",
        "logwarden.v1.ModelService",
        "grpc.health.v1.Health",
    } <= names
    info = model_pb2_grpc.ModelServiceStub(channel).GetModelInfo(model_pb2.GetModelInfoRequest())
    assert info.version and info.line_format == "hdfs" and info.k >= 1 and info.templates > 0
    assert info.version in info.available_versions
    text = server.server.metrics.render()[0].decode()
    assert f'logwarden_events_total{{model_version="{info.version}",status="scored"}}' in text
    assert "logwarden_batch_events_bucket" in text and "logwarden_request_seconds_bucket" in text


def test_labels_are_validated_one_by_one(server, channel):
    stub = labels_pb2_grpc.LabelServiceStub(channel)
    response = stub.SubmitLabels(
        labels_pb2.SubmitLabelsRequest(
            labels=[
                labels_pb2.Label(
                    id="a",
                    target=labels_pb2.LABEL_TARGET_SESSION,
                    value=labels_pb2.LABEL_VALUE_NORMAL,
                    session_key="blk_1",
                    source="s",
                    analyst="ann",
                    comment="known maintenance",
                ),
                labels_pb2.Label(id="b", target=labels_pb2.LABEL_TARGET_EVENT),
            ]
        )
    )
    ok, bad = response.results
    assert ok.accepted and ok.label_id and ok.id == "a"
    assert not bad.accepted and bad.error_field == "labels[1].value"
    (stored,) = server.labels.stored
    assert stored.value == "normal" and stored.session_key == "blk_1" and stored.time is not None
