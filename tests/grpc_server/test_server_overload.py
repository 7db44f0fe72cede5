"""Overload: a full queue answers RESOURCE_EXHAUSTED at once, the queue stays bounded, accepted calls finish."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from logwarden.core.synthetic import generate
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer
from logwarden.protos.logwarden.v1 import scoring_pb2 as pb
from logwarden.protos.logwarden.v1 import scoring_pb2_grpc as pbg

LINES = generate(n_sessions=2, seed=5).lines


def _until(condition, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.005)


def test_full_queue_answers_resource_exhausted(model_root):
    settings = load_settings(
        None,
        model_path=model_root,
        grpc_port=0,
        batch_wait_ms=0,
        batch_max_events=10,
        queue_max_events=20,
        max_events_per_request=10,
    )
    with BackgroundServer(settings) as bg, grpc.insecure_channel(bg.target) as ch:
        detector = bg.server.holder.current.detector
        score_keys, gate, entered = detector.score_keys, threading.Event(), threading.Event()

        def gated(*args, **kwargs):  # hold the model worker until the test lets it go
            entered.set()
            gate.wait(60)
            return score_keys(*args, **kwargs)

        detector.score_keys = gated
        stub = pbg.ScoringServiceStub(ch)
        # sequence mode: stream-mode calls on the same sessions would wait for each other, not queue
        request = pb.ScoreRequest(events=[pb.Event(message=line) for line in LINES[:10]], mode=pb.SCORING_MODE_SEQUENCE)
        busy = stub.Score.future(request)
        _until(entered.is_set, "the first call to reach the model")
        queued = [stub.Score.future(request) for _ in range(2)]
        _until(lambda: bg.server.scheduler.queued_events == 20, "two calls to queue")
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as info:
                stub.Score(request)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "queue is full" in info.value.details()
        assert bg.server.scheduler.queued_events == 20
        gate.set()
        for future in (busy, *queued):
            assert all(r.status == pb.EVENT_STATUS_SCORED for r in future.result(timeout=60).results)
        assert bg.server.scheduler.queued_events == 0
        text = bg.server.metrics.render()[0].decode()
        assert 'logwarden_requests_total{code="RESOURCE_EXHAUSTED",method="Score"} 3.0' in text
