"""The HTTP/JSON gateway in operation: bearer tokens over mTLS, 429 on overload, 501 without a label
store, and a drain that finishes in-flight requests while refusing new connections."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from logwarden.core.synthetic import generate
from logwarden.grpc_server.gateway.app import HttpGateway
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer

TOKEN = "t0ken-for-http-tests"
LINES = generate(n_sessions=2, seed=5).lines
BATCH = {"events": [{"message": line} for line in LINES[:10]], "mode": "sequence"}


def _port(bg: BackgroundServer) -> int:
    return next(c for c in bg.server.companions if isinstance(c, HttpGateway)).port


def _call(conn: http.client.HTTPConnection, method: str, path: str, body=None, headers=None):
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    kind = response.getheader("Content-Type", "")
    return response.status, response, json.loads(data) if kind.startswith("application/json") else data.decode()


def _post(port: int, body, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        return _call(conn, "POST", "/v1/score", body, headers)
    finally:
        conn.close()


def _until(condition, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.005)


def test_bearer_tokens_over_mutual_tls(model_root, pki):
    settings = load_settings(
        None,
        model_path=model_root,
        grpc_port=0,
        http_port=0,
        tls_cert=pki / "server.pem",
        tls_key=pki / "server.key",
        tls_client_ca=pki / "ca.pem",
        auth_tokens=[TOKEN, "other"],
    )
    with BackgroundServer(settings) as bg:
        port = _port(bg)
        context = ssl.create_default_context(cafile=pki / "ca.pem")
        context.load_cert_chain(pki / "client.pem", pki / "client.key")
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
        try:
            for headers in (
                {},
                {"Authorization": "Bearer wrong"},
                {"Authorization": TOKEN},
                {"Authorization": f"Basic {TOKEN}"},
            ):
                for method, path, body in (
                    ("POST", "/v1/score", BATCH),
                    ("GET", "/metrics", None),
                    ("GET", "/v1/model", None),
                    ("POST", "/v1/model/reload", {}),
                ):
                    status, response, answer = _call(conn, method, path, body, headers)
                    assert status == 401, (headers, path)
                    assert response.getheader("WWW-Authenticate").startswith("Bearer")
                    assert answer["error"]["code"] == "UNAUTHENTICATED" and TOKEN not in json.dumps(answer)
            auth = {"Authorization": f"Bearer {TOKEN}"}
            status, _, answer = _call(conn, "POST", "/v1/score", BATCH, auth)
            assert status == 200 and all(r["status"] == "scored" for r in answer["results"])
            assert _call(conn, "GET", "/metrics", None, {"Authorization": "bearer other"})[0] == 200
            for path in ("/healthz", "/readyz", "/openapi.json"):  # probes and the API description stay open
                assert _call(conn, "GET", path)[0] == 200
        finally:
            conn.close()
        no_cert = ssl.create_default_context(cafile=pki / "ca.pem")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=no_cert, timeout=10)
            try:
                _call(conn, "GET", "/healthz")
            finally:
                conn.close()
        with pytest.raises((ConnectionError, http.client.HTTPException)):  # plain HTTP to the TLS port
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                _call(conn, "GET", "/healthz")
            finally:
                conn.close()
        assert TOKEN not in bg.server.metrics.render()[0].decode()


def test_overload_is_429_and_drain_finishes_in_flight_requests(model_root):
    settings = load_settings(
        None,
        model_path=model_root,
        grpc_port=0,
        http_port=0,
        batch_wait_ms=0,
        batch_max_events=10,
        queue_max_events=20,
        max_events_per_request=10,
        shutdown_grace_s=30,
    )
    bg = BackgroundServer(settings).start()
    gate = threading.Event()
    try:
        port = _port(bg)
        detector = bg.server.holder.current.detector
        score_keys, entered = detector.score_keys, threading.Event()

        def gated(*args, **kwargs):  # hold the model worker until the test lets it go
            entered.set()
            gate.wait(60)
            return score_keys(*args, **kwargs)

        detector.score_keys = gated
        assert _post(port, {"events": [{"message": LINES[0]}]}, {"X-Request-Timeout-Ms": "0"})[0] == 504
        with ThreadPoolExecutor(4) as pool:
            busy = pool.submit(_post, port, BATCH)
            _until(entered.is_set, "the first request to reach the model")
            status, _, answer = _post(port, BATCH, {"X-Request-Timeout-Ms": "200"})  # waits, then gives up
            assert status == 504 and answer["error"]["code"] == "DEADLINE_EXCEEDED"
            assert bg.server.scheduler.queued_events == 10  # dropped by the worker when it gets to it
            queued = [pool.submit(_post, port, BATCH)]
            _until(lambda: bg.server.scheduler.queued_events == 20, "a second request to queue")
            for _ in range(3):
                status, response, answer = _post(port, BATCH)
                assert status == 429 and int(response.getheader("Retry-After")) >= 1
                assert "queue is full" in answer["error"]["message"]
                assert answer["error"]["code"] == "RESOURCE_EXHAUSTED"
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                status, _, answer = _call(conn, "POST", "/v1/labels", {"labels": [{"target": "event"}]})
                assert status == 501 and answer["error"]["code"] == "UNIMPLEMENTED"
            finally:
                conn.close()
            stopping = pool.submit(bg.run, bg.server.stop())  # SIGTERM: drain
            _until(lambda: bg.server.draining, "the drain to begin")

            def refused() -> bool:
                try:
                    _post(port, BATCH)
                except ConnectionError:
                    return True
                return False

            _until(refused, "new connections to be refused")
            assert not busy.done() and not any(f.done() for f in queued)
            gate.set()
            for future in (busy, *queued):
                status, _, answer = future.result(timeout=60)
                assert status == 200 and all(r["status"] == "scored" for r in answer["results"])
            stopping.result(timeout=60)
        text = bg.server.metrics.render()[0].decode()
        assert 'logwarden_http_requests_total{method="POST",route="/v1/score",status="429"}' in text
        assert 'logwarden_http_requests_total{method="POST",route="/v1/score",status="200"} 2.0' in text
    finally:
        gate.set()
        bg.stop()
