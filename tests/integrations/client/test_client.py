"""The integrations' client library against live servers on 127.0.0.1 (real sockets): results equal the
server's, batching keeps order and ids, overload is retried, and a down, hung or refusing scorer gives
events back unscored instead of raising."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from support import MemoryLabels, sessions_by_block

from logwarden.core.synthetic import generate
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer
from logwarden.integrations.client import (
    UNSCORED,
    AsyncLogWardenClient,
    Event,
    HttpClient,
    LogWardenClient,
    RetryPolicy,
    ScorerUnavailable,
)
from logwarden.integrations.client.common import Attempts, as_event, plan_batches
from logwarden.integrations.client.http_client import _retry_after
from logwarden.protos.logwarden.v1 import scoring_pb2 as pb
from logwarden.protos.logwarden.v1 import scoring_pb2_grpc as pbg

TOKEN = "client-test-t0ken"
REPO = Path(__file__).resolve().parents[3]
FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05)


class Hold:
    """Holds the model worker of a live server while ``held()`` is open (see test_server_overload)."""

    def __init__(self, bg: BackgroundServer) -> None:
        self.detector = bg.server.holder.current.detector
        self.original = self.detector.score_keys
        self.gate, self.entered = threading.Event(), threading.Event()
        self.detector.score_keys = self._gated

    def _gated(self, *args, **kwargs):
        self.entered.set()
        self.gate.wait(60)
        return self.original(*args, **kwargs)

    @contextmanager
    def held(self):
        self.gate.clear()
        self.entered.clear()
        try:
            yield self
        finally:
            self.gate.set()


def _until(condition, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.005)


def _sample(bg: BackgroundServer, name: str, **labels) -> float:
    return bg.server.metrics.registry.get_sample_value(name, labels) or 0.0


def _http_url(bg: BackgroundServer) -> str:
    return f"http://127.0.0.1:{bg.server.companions[0].port}"


@pytest.fixture(scope="module")
def sessions() -> dict[str, list[str]]:
    return sessions_by_block(12, seed=31)


@pytest.fixture(scope="module")
def server(model_root):
    """A server with bearer auth, the HTTP gateway and a label sink: every call below sends the token."""
    settings = load_settings(
        None, model_path=model_root, grpc_port=0, http_port=0, batch_wait_ms=2, window_size=250, auth_tokens=[TOKEN]
    )
    with BackgroundServer(settings, labels=MemoryLabels()) as bg:
        yield bg


@pytest.fixture
def grpc_client(server):
    with LogWardenClient(server.target, token=TOKEN) as client:
        yield client


@pytest.fixture
def http_client(server):
    return HttpClient(_http_url(server), token=TOKEN)


def _events(sessions, source: str, keyed: bool = False) -> list[dict]:
    """All sessions' events interleaved round-robin (as a shipper sees them), with ids."""
    queues = [[(b, i, line) for i, line in enumerate(lines)] for b, lines in sessions.items()]
    out = []
    while any(queues):
        for q in queues:
            if q:
                b, i, line = q.pop(0)
                out.append({"id": f"{b}#{i}", "message": line, "source": source, "session_key": b if keyed else ""})
    return out


def _raw_score(bg, events, mode) -> pb.ScoreResponse:
    request = pb.ScoreRequest(events=[pb.Event(**e) for e in events], mode=mode)
    with grpc.insecure_channel(bg.target) as channel:
        return pbg.ScoringServiceStub(channel).Score(request, metadata=[("authorization", f"Bearer {TOKEN}")])


def _same(result, expected) -> None:
    """A client ScoredEvent against another one or against the server's own EventResult."""
    assert result.id == expected.id and result.status == "scored"
    anomalous = expected.anomalous if hasattr(expected, "anomalous") else expected.verdict == pb.VERDICT_ANOMALOUS
    assert result.score == pytest.approx(expected.score, abs=1e-6) and result.anomalous == anomalous
    assert (result.template_id, result.template, result.rank, result.reason) == (
        expected.template_id,
        expected.template,
        expected.rank,
        expected.reason,
    )
    assert [e.template_id for e in result.expected] == [e.template_id for e in expected.expected]


# -- results ------------------------------------------------------------------------------------------


def test_grpc_and_http_results_equal_the_servers(server, grpc_client, http_client, sessions):
    events = _events(sessions, "equal", keyed=True)
    raw = _raw_score(server, events, pb.SCORING_MODE_SEQUENCE)
    assert any(r.verdict == pb.VERDICT_ANOMALOUS for r in raw.results)
    for client in (grpc_client, http_client):
        results, verdicts = client.score_sessions(events)
        assert [r.id for r in results] == [e["id"] for e in events]
        for result, expected in zip(results, raw.results, strict=True):
            _same(result, expected)
        assert [(v.session_key, v.anomalous, v.events) for v in verdicts] == [
            (s.session_key, s.verdict == pb.VERDICT_ANOMALOUS, s.events) for s in raw.sessions
        ]
        assert [v.score for v in verdicts] == pytest.approx([s.score for s in raw.sessions], abs=1e-6)
        fields = results[0].fields()
        assert fields["status"] == "scored" and fields["verdict"] in ("normal", "anomalous")


def test_stream_batching_splits_and_keeps_order_and_ids(server, sessions):
    events = _events(sessions, "")
    for e in events[::7]:
        e["id"] = ""  # ids are the caller's, even empty ones
    n = len(events)
    with LogWardenClient(server.target, token=TOKEN, max_batch_events=10_000) as whole_client:
        whole = whole_client.score([{**e, "source": "whole"} for e in events])
    calls = [
        (
            LogWardenClient(server.target, token=TOKEN, max_batch_events=7),
            "logwarden_requests_total",
            {"method": "Score", "code": "OK"},
            -(-n // 7),
        ),
        (
            HttpClient(_http_url(server), token=TOKEN, max_batch_bytes=4096),
            "logwarden_http_requests_total",
            {"route": "/v1/score", "method": "POST", "status": "200"},
            None,
        ),
    ]
    for k, (client, metric, labels, expected_requests) in enumerate(calls):
        before = _sample(server, metric, **labels)
        results = client.score([{**e, "source": f"batched-{k}"} for e in events])
        requests = _sample(server, metric, **labels) - before
        if expected_requests is not None:
            assert requests == expected_requests
        else:  # about 150 bytes per event: several requests, each well under the limit
            assert 3 <= requests < n
        assert [r.id for r in results] == [e["id"] for e in events]
        for result, expected in zip(results, whole, strict=True):
            _same(result, expected)  # stream windows continued across batches
        if isinstance(client, LogWardenClient):
            client.close()


def test_sequence_batching_keeps_keyed_sessions_whole(server, grpc_client, sessions):
    events = _events(sessions, "seq", keyed=True)
    whole, whole_sessions = grpc_client.score_sessions(events)
    before = _sample(server, "logwarden_requests_total", method="Score", code="OK")
    with LogWardenClient(server.target, token=TOKEN, max_batch_events=3) as client:
        results, verdicts = client.score_sessions(events)  # every session is longer than 3 events
    assert _sample(server, "logwarden_requests_total", method="Score", code="OK") - before == len(sessions)
    for result, expected in zip(results, whole, strict=True):
        _same(result, expected)
    assert sorted((v.session_key, v.score) for v in verdicts) == sorted(
        (v.session_key, v.score) for v in whole_sessions
    )


def test_http_requests_in_flight_answer_as_one_at_a_time(server, http_client, sessions):
    """``max_in_flight``: sequence-mode batches go out together and come back in any order; the results sit at
    their input positions and the verdicts in batch order, as when sent one by one. Stream mode stays one at a
    time, in order (its windows continue across batches)."""
    events = _events(sessions, "inflight", keyed=True)
    one = HttpClient(_http_url(server), token=TOKEN, max_batch_events=3)
    many = HttpClient(_http_url(server), token=TOKEN, max_batch_events=3, max_in_flight=4)
    expected, expected_verdicts = one.score_sessions(events)
    before = _sample(server, "logwarden_http_requests_total", route="/v1/score", method="POST", status="200")
    results, verdicts = many.score_sessions(events)
    after = _sample(server, "logwarden_http_requests_total", route="/v1/score", method="POST", status="200")
    assert after - before == len(sessions)  # a request per session: every session longer than 3 events
    assert [r.id for r in results] == [e["id"] for e in events]
    for result, other in zip(results, expected, strict=True):
        _same(result, other)
    assert [(v.session_key, v.score) for v in verdicts] == [(v.session_key, v.score) for v in expected_verdicts]
    stream = _events(sessions, "")
    whole = http_client.score([{**e, "source": "inflight-whole"} for e in stream])
    batched = many.score([{**e, "source": "inflight-batched"} for e in stream])
    for result, other in zip(batched, whole, strict=True):
        _same(result, other)
    with pytest.raises(ValueError, match="max_in_flight"):
        HttpClient(_http_url(server), max_in_flight=0)


def test_stream_session_end_through_both_clients(grpc_client, http_client, sessions):
    """A shipper marks each session's last event; in stream mode the session verdicts come back with it."""
    chosen = dict(list(sessions.items())[:3])
    for name, client in (("grpc", grpc_client), ("http", http_client)):
        events = _events(chosen, f"end-{name}", keyed=True)
        last = {e["session_key"]: e for e in events}  # each session's last event
        for e in last.values():
            e["session_end"] = True
        _, expected = client.score_sessions(events)  # sequence mode: the whole sessions at once
        results, verdicts = client.score_sessions(events, mode="stream")
        assert [r.id for r in results] == [e["id"] for e in events]
        assert sorted(v.session_key for v in verdicts) == sorted(chosen)
        by_key = {v.session_key: v for v in expected}
        for v in verdicts:
            assert v.anomalous == by_key[v.session_key].anomalous
            assert v.score == pytest.approx(by_key[v.session_key].score, abs=1e-6)


def test_async_client_equals_the_blocking_one(server, grpc_client, sessions):
    events = _events(dict(list(sessions.items())[:4]), "")

    async def run():
        async with AsyncLogWardenClient(server.target, token=TOKEN, max_batch_events=5) as client:
            return await client.score([{**e, "source": "async"} for e in events])

    got = asyncio.run(run())
    for result, expected in zip(got, grpc_client.score([{**e, "source": "sync"} for e in events]), strict=True):
        _same(result, expected)


def test_labels_and_model_info(server, grpc_client, http_client):
    label = {
        "id": "x1",
        "target": "event",
        "value": "normal",
        "analyst": "ann",
        "source": "web-1",
        "template_id": "3",
        "time": 1_790_000_000.5,
    }
    for client, ident in ((grpc_client, "x1"), (http_client, "x2")):
        (result,) = client.submit_labels([{**label, "id": ident}])
        assert result["accepted"] is True, result["error"]
    assert [x.id for x in server.server.labels.stored[-2:]] == ["x1", "x2"]
    version = server.server.holder.current.version
    assert grpc_client.model_info()["version"] == http_client.model_info()["version"] == version


def test_loose_events_are_normalised_not_refused(grpc_client, http_client, sessions):
    line = sessions[next(iter(sessions))][0]
    events = [
        {"id": 7, "message": line.encode(), "timestamp": "2026-11-02T10:00:00Z", "attributes": {"n": 1}},
        {"id": "b", "message": line, "timestamp": "yesterday", "source": None},
    ]
    assert as_event(events[0]) == Event(id="7", raw=line.encode(), timestamp=1793613600.0, attributes={"n": "1"})
    for client in (grpc_client, http_client):
        results = client.score(events, "sequence")
        assert [(r.id, r.status) for r in results] == [("7", "scored"), ("b", "scored")]
    with pytest.raises(ValueError, match="unknown event fields"):
        grpc_client.score([{"id": "x", "mesage": line}])
    with pytest.raises(ValueError, match="mode"):
        http_client.score([line], mode="batch")


# -- auth ---------------------------------------------------------------------------------------------


def test_token_is_sent_and_never_shown(server, sessions, caplog):
    events = _events(sessions, "auth")[:5]
    caplog.set_level(logging.DEBUG)
    for client in (
        LogWardenClient(server.target, token="wrong-" + TOKEN, retry=FAST_RETRY),
        HttpClient(_http_url(server), retry=FAST_RETRY),
    ):
        results = client.score(events)
        assert all(r.status == UNSCORED and r.reason.startswith("scorer refused the call") for r in results)
        assert "UNAUTHENTICATED" in results[0].reason or "HTTP 401" in results[0].reason
        assert [r.id for r in results] == [e["id"] for e in events]
        assert TOKEN not in repr(client)
        with pytest.raises(ScorerUnavailable):
            client.model_info()
    assert "events passed through unscored" in caplog.text
    assert TOKEN not in caplog.text


# -- overload, outage, hang ---------------------------------------------------------------------------


def test_retries_resource_exhausted_until_it_succeeds(model_root):
    settings = load_settings(
        None,
        model_path=model_root,
        grpc_port=0,
        http_port=0,
        batch_wait_ms=0,
        batch_max_events=10,
        queue_max_events=20,
        max_events_per_request=10,
    )
    lines = generate(n_sessions=2, seed=5).lines[:10]
    events = [{"id": f"e{i}", "message": line} for i, line in enumerate(lines)]
    patient = RetryPolicy(max_attempts=1000, initial_backoff_s=0.01, max_backoff_s=0.05)
    with BackgroundServer(settings) as bg, grpc.insecure_channel(bg.target) as channel:
        hold = Hold(bg)
        stub = pbg.ScoringServiceStub(channel)
        request = pb.ScoreRequest(events=[pb.Event(message=line) for line in lines], mode=pb.SCORING_MODE_SEQUENCE)
        clients = [
            (
                LogWardenClient(bg.target, retry=patient, timeout_s=30, budget_s=120),
                "logwarden_requests_total",
                {"method": "Score", "code": "RESOURCE_EXHAUSTED"},
            ),
            (
                HttpClient(_http_url(bg), retry=patient, timeout_s=30, budget_s=120),
                "logwarden_http_requests_total",
                {"route": "/v1/score", "method": "POST", "status": "429"},
            ),
        ]
        for client, metric, labels in clients:
            with hold.held():
                busy = stub.Score.future(request)
                _until(hold.entered.is_set, "a call to reach the model")
                queued = [stub.Score.future(request) for _ in range(2)]
                _until(lambda: bg.server.scheduler.queued_events == 20, "the queue to fill")
                refused = _sample(bg, metric, **labels)
                box = {}
                worker = threading.Thread(target=lambda c=client, b=box: b.update(results=c.score(events, "sequence")))
                worker.start()
                _until(lambda m=metric, lb=labels, r=refused: _sample(bg, m, **lb) >= r + 1, "the client to be refused")
            worker.join(60)
            assert not worker.is_alive()
            assert [r.id for r in box["results"]] == [e["id"] for e in events]
            assert all(r.status == "scored" for r in box["results"])  # retried through the overload
            for future in (busy, *queued):
                future.result(timeout=60)
        clients[0][0].close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fail_open_when_nothing_listens(sessions):
    port = _closed_port()
    events = [Event(id="a", message=sessions[next(iter(sessions))][0]), "a raw line without id", {"id": "c"}]
    for client in (
        LogWardenClient(f"127.0.0.1:{port}", retry=FAST_RETRY),
        HttpClient(f"http://127.0.0.1:{port}", retry=FAST_RETRY),
    ):
        results = client.score(events)
        assert [r.id for r in results] == ["a", "", "c"]
        assert all(r.status == UNSCORED and r.reason.startswith("scorer unavailable") for r in results)
        assert all(r.score is None and r.verdict == "" for r in results)
        assert results[0].fields() == {"status": "unscored", "reason": results[0].reason}
        with pytest.raises(ScorerUnavailable):
            client.submit_labels([{"id": "l", "target": "event", "value": "normal"}])


def test_fail_open_on_deadline_when_the_server_hangs(model_root, sessions):
    events = [{"id": f"h{i}", "message": line} for i, line in enumerate(sessions[next(iter(sessions))][:5])]
    settings = load_settings(None, model_path=model_root, grpc_port=0, http_port=0, batch_wait_ms=0)
    with BackgroundServer(settings) as bg, Hold(bg).held():  # scoring never finishes while held
        for client in (LogWardenClient(bg.target, timeout_s=0.3), HttpClient(_http_url(bg), timeout_s=0.3)):
            results = client.score(events, "sequence")
            assert [r.id for r in results] == [e["id"] for e in events]
            assert all(r.status == UNSCORED and r.reason.startswith("deadline exceeded") for r in results)
    with socket.socket() as silent:  # a listener that accepts connections and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        for client in (
            LogWardenClient(f"127.0.0.1:{port}", timeout_s=0.3, budget_s=2),
            HttpClient(f"http://127.0.0.1:{port}", timeout_s=0.3, budget_s=2),
        ):
            results = client.score(events)
            assert all(r.status == UNSCORED and r.reason.startswith("deadline exceeded") for r in results)


# -- TLS ----------------------------------------------------------------------------------------------


def test_tls(model_root, pki, sessions):
    settings = load_settings(
        None,
        model_path=model_root,
        grpc_port=0,
        http_port=0,
        tls_cert=pki / "server.pem",
        tls_key=pki / "server.key",
        auth_tokens=[TOKEN],
    )
    events = sessions[next(iter(sessions))][:3]
    with BackgroundServer(settings) as bg:
        ca = pki / "ca.pem"
        https = _http_url(bg).replace("http:", "https:")
        with LogWardenClient(bg.target, token=TOKEN, ca_file=ca) as client:
            assert all(r.status == "scored" for r in client.score(events))
        assert all(r.status == "scored" for r in HttpClient(https, token=TOKEN, ca_file=str(ca)).score(events))
        untrusted = HttpClient(https, token=TOKEN, retry=FAST_RETRY).score(events)  # the system CAs only
        assert all(r.status == UNSCORED and "TLS" in r.reason for r in untrusted)


# -- the pieces ---------------------------------------------------------------------------------------


def test_batch_plan_limits_and_session_grouping():
    events = [Event(id=str(i), source="s", session_key="ab"[i % 2] if i < 8 else "") for i in range(12)]
    stream = plan_batches(events, [10] * 12, "stream", 5, 10_000)
    assert stream == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]
    assert plan_batches(events, [10] * 12, "stream", 100, 25) == [[i, i + 1] for i in range(0, 12, 2)]
    sequence = plan_batches(events, [10] * 12, "sequence", 3, 10_000)
    assert sequence == [[0, 2, 4, 6], [1, 3, 5, 7], [8, 9, 10], [11]]  # keyed sessions whole, even when too big


def test_backoff_honours_retry_after_and_the_budget():
    now = [0.0]
    policy = RetryPolicy(max_attempts=5, initial_backoff_s=0.1, max_backoff_s=1.0)
    attempts = Attempts(policy, deadline=10.0, timeout_s=3.0, clock=lambda: now[0])
    assert attempts.next_timeout() == 3.0
    delay = attempts.failed("scorer overloaded: x", retryable=True, retry_after=2.0)
    assert 2.0 <= delay < 10.0
    now[0] = 9.0
    assert attempts.next_timeout() == pytest.approx(1.0)
    assert attempts.failed("scorer overloaded: x", retryable=True, retry_after=2.0) is None  # past the budget
    assert attempts.next_timeout() is None and attempts.reason == "scorer overloaded: x"
    assert not Attempts(policy, 10.0, 1.0, clock=lambda: 0.0).failed("refused", retryable=False)
    assert all(0 <= policy.backoff(k) <= 1.0 for k in range(1, 20))
    assert _retry_after("3") == 3.0 and _retry_after("junk") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: retry now


# -- odd events and oversized requests (issue 8) --------------------------------------------------------


def test_one_bad_line_never_fails_the_call(grpc_client, http_client, sessions):
    """A lone surrogate (no wire format carries it) makes that one event invalid; every other is scored."""
    lines = sessions[next(iter(sessions))][:3]
    events = [
        {"id": "a", "message": lines[0]},
        {"id": "bad", "message": lines[1][:20] + "\ud800" + lines[1][20:]},
        {"id": "attr", "message": lines[1], "attributes": {"k": "\udcff"}},
        {"id": "time", "message": lines[2], "timestamp": 10**400},  # informational: dropped, never an error
        Event(id="\ud800", message=lines[2]),
    ]
    for client in (grpc_client, http_client):
        results = client.score(events)
        assert [r.id for r in results] == ["a", "bad", "attr", "time", "\ud800"]
        assert [r.status for r in results] == ["scored", "invalid", "invalid", "scored", "invalid"]
        assert [r.error_field for r in results if r.status == "invalid"] == ["message", "attributes['k']", "id"]
        assert "lone surrogate" in results[1].error and results[1].fields()["error_field"] == "message"


def test_oversized_requests_are_split_or_refused_as_permanent_never_overloaded(model_root):
    """5 MiB requests over the server's 4 MiB ``max_request_bytes``: gRPC answers RESOURCE_EXHAUSTED without
    the server's overload mark (HTTP: 413); the client splits the batch, and a keyed session that alone is
    too large comes back invalid (permanent), not unscored as overloaded."""
    settings = load_settings(None, model_path=model_root, grpc_port=0, http_port=0, batch_wait_ms=0)
    base = generate(n_sessions=3, seed=12).lines[0]
    line = (base + " ") * (52_000 // (len(base) + 1))  # ~52 KB, under max_message_bytes
    loose = [{"id": f"l{i}", "message": f"{line} {i}"} for i in range(100)]  # ~5.2 MB: split in two
    session = [{"id": f"s{i}", "message": line, "source": "x", "session_key": "big"} for i in range(90)]  # 4.7 MB
    with BackgroundServer(settings) as bg:
        for client in (
            LogWardenClient(bg.target, max_batch_bytes=64 << 20, retry=FAST_RETRY),
            HttpClient(_http_url(bg), max_batch_bytes=64 << 20, retry=FAST_RETRY),
        ):
            results = client.score(loose + session, "sequence")
            assert [r.id for r in results] == [e["id"] for e in loose + session]
            assert all(r.status == "scored" for r in results[:100])
            assert all(r.status == "invalid" and r.error_field == "event" for r in results[100:])
            assert "overloaded" not in results[100].error and "never scorable" in results[100].error
        overloaded = _sample(bg, "logwarden_requests_total", method="Score", code="RESOURCE_EXHAUSTED")
        assert overloaded == 0  # the server's own overload answer was never given


def test_a_resource_exhausted_is_overload_only_when_the_server_marks_it():
    from logwarden.integrations.client.grpc_client import _failure

    class Refusal(grpc.RpcError):
        def __init__(self, metadata):
            self.metadata = metadata

        def code(self):
            return grpc.StatusCode.RESOURCE_EXHAUSTED

        def details(self):
            return "no"

        def trailing_metadata(self):
            return self.metadata

    marked = _failure(Refusal((("logwarden-overloaded", "1"),)), 1.0)
    assert marked.retryable and not marked.too_large and marked.reason.startswith("scorer overloaded")
    unmarked = _failure(Refusal(()), 1.0)  # gRPC's own message size limit
    assert unmarked.too_large and not unmarked.retryable


PY39 = Path("/root/.pyenv/versions/3.9.18/bin/python")
CLIENT_39 = """
import json, sys
from logwarden.integrations.client import HttpClient
url, line = sys.argv[1], sys.argv[2]
results = HttpClient(url).score([{"id": "ok", "message": line}, {"id": "bad", "message": "x \\ud800"}])
print(json.dumps([[r.id, r.status, r.error_field] for r in results]))
"""


@pytest.mark.skipif(not PY39.exists(), reason="no Python 3.9 interpreter (Splunk's) on this machine")
def test_the_http_client_under_python_3_9_returns_a_result_for_every_event(model_root, tmp_path):
    """The standard-library client as Splunk's Python 3.9 runs it (only the client package on the path)."""
    package = tmp_path / "logwarden"
    (package / "integrations").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "integrations" / "__init__.py").write_text("")
    (package / "integrations" / "client").symlink_to(REPO / "integrations" / "client")
    settings = load_settings(None, model_path=model_root, grpc_port=0, http_port=0)
    with BackgroundServer(settings) as bg:
        line = generate(n_sessions=1, seed=3).lines[0]
        done = subprocess.run(
            [str(PY39), "-c", CLIENT_39, _http_url(bg), line],
            capture_output=True,
            text=True,
            timeout=120,
            env={"PYTHONPATH": str(tmp_path)},
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [["ok", "scored", ""], ["bad", "invalid", "message"]]
