"""The server under attack and under faulty shippers (issue 8's findings), on live servers on 127.0.0.1:
no line freezes it, permanent input errors are 400 / INVALID_ARGUMENT naming the field, a bad label does
not block the next client, streams drain without losing answers, slow connections are cut, admin calls
need an admin token, and the metrics port has the gateway's TLS and tokens."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import queue
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import BaseModel

from logwarden.core.cli import build_parser
from logwarden.core.labels import SqliteLabelStore
from logwarden.core.parsing.adversarial import SHAPES, line_of
from logwarden.core.synthetic import generate
from logwarden.grpc_server.gateway.app import HttpGateway
from logwarden.grpc_server.settings import Settings, load_settings
from logwarden.grpc_server.testing import BackgroundServer
from logwarden.protos.logwarden.v1 import model_pb2, model_pb2_grpc
from logwarden.protos.logwarden.v1 import scoring_pb2 as pb
from logwarden.protos.logwarden.v1 import scoring_pb2_grpc as pbg

LINES = generate(n_sessions=3, anomaly_rate=0.0, seed=8).lines
HEADER_TIMEOUT_S = 1.0
MAX_CONNECTIONS = 16
LIVENESS_S = 1.0  # health must answer within this while the worst lines are scored


def _http_port(bg: BackgroundServer) -> int:
    return next(c for c in bg.server.companions if isinstance(c, HttpGateway)).port


def _call(port: int, method: str, path: str, body=None, headers=None, timeout: float = 60, context=None):
    """(status, parsed JSON or text); ``body`` may be bytes or a JSON value."""
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    kind = response.getheader("Content-Type", "")
    return response.status, json.loads(data) if kind.startswith("application/json") else data.decode()


@pytest.fixture(scope="module")
def server(model_root, tmp_path_factory):
    settings = load_settings(
        None,
        model_path=model_root,
        grpc_port=0,
        http_port=0,
        batch_wait_ms=1,
        max_request_bytes=8 * 1024 * 1024,
        label_db=tmp_path_factory.mktemp("labels") / "labels.sqlite",
        http_header_timeout_s=HEADER_TIMEOUT_S,
        http_read_timeout_s=HEADER_TIMEOUT_S,
        http_max_connections=MAX_CONNECTIONS,
    )
    with BackgroundServer(settings) as bg:
        bg.http = _http_port(bg)
        yield bg


# -- 1: no line freezes the server --------------------------------------------------------------------


def test_health_answers_within_a_second_while_the_worst_lines_are_scored(server):
    """Every adversarial shape at 65,535 bytes (a line of colons took 115 s to mask, holding the whole
    process) scored in one batch while /healthz and gRPC health are polled: each answers within 1 s."""
    lines = [line for shape in SHAPES if (line := line_of(shape, 65_535)).strip()] * 2  # a blank line is invalid
    request = pb.ScoreRequest(events=[pb.Event(id=str(i), message=m) for i, m in enumerate(lines)])
    with grpc.insecure_channel(server.target, options=[("grpc.max_send_message_length", 16 << 20)]) as ch:
        scoring = pbg.ScoringServiceStub(ch).Score.future(request, timeout=300)
        health = health_pb2_grpc.HealthStub(ch)
        polls = 0
        while not scoring.done() or polls < 2:
            status, body = _call(server.http, "GET", "/healthz", timeout=LIVENESS_S)
            assert status == 200 and body == {"status": "ok"}
            answer = health.Check(health_pb2.HealthCheckRequest(), timeout=LIVENESS_S)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            polls += 1
            time.sleep(0.05)
        response = scoring.result()
    assert [r.id for r in response.results] == [str(i) for i in range(len(lines))]
    assert all(r.status == pb.EVENT_STATUS_SCORED for r in response.results)


# -- 2: permanent input errors are 400 / INVALID_ARGUMENT naming the field ---------------------------


def _raw(obj_text: str) -> bytes:
    """A JSON body written by hand (to hold escapes such as a lone surrogate, or a 4,300-digit number)."""
    return obj_text.encode()


def test_permanent_input_errors_name_the_field_and_never_500(server, model_root):
    port, good = server.http, json.dumps(LINES[0])
    cases = [  # (body, the invalid event's field) — a bad event does not fail its batch
        (f'{{"events": [{{"message": "\\ud800 x"}}, {{"message": {good}}}]}}', "events[0].message"),
        (f'{{"events": [{{"message": {good}, "id": "\\udfff"}}, {{"message": {good}}}]}}', "events[0].id"),
        (f'{{"events": [{{"message": {good}, "source": "a\\ud800"}}, {{"message": {good}}}]}}', "events[0].source"),
        (f'{{"events": [{{"message": {good}, "session_key": "\\ud800"}}]}}', "events[0].session_key"),
        (f'{{"events": [{{"message": {good}, "attributes": {{"k\\ud800": "v"}}}}]}}', "events[0].attributes"),
        (f'{{"events": [{{"message": {good}, "attributes": {{"k": "\\ud800"}}}}]}}', "events[0].attributes['k']"),
        (f'{{"events": [{{"message": {good}, "attributes": {{"k": null}}}}]}}', "events[0].attributes['k']"),
        (f'{{"events": [{{"message": {good}, "timestamp": {"9" * 4300}}}]}}', "events[0].timestamp"),
        (f'{{"events": [{{"message": {good}, "timestamp": 1e300}}]}}', "events[0].timestamp"),
    ]
    for body, field in cases:
        status, answer = _call(port, "POST", "/v1/score", _raw(body))
        assert status == 200, (body[:80], answer)
        invalid = [r for r in answer["results"] if r["status"] == "invalid"]
        assert [r["error_field"] for r in invalid] == [field], body[:80]
        assert all(r["status"] == "scored" for r in answer["results"] if r not in invalid)
    requests = [  # (path, body, field) — the request as a whole is at fault
        ("/v1/score", f'{{"events": [{{"message": {good}}}], "request_id": "\\ud800"}}', "request_id"),
        ("/v1/score", f'{{"events": [{{"message": {good}}}], "\\ud800": 1}}', "body"),  # a field name
        ("/v1/score/event", '{"message": "\\ud800"}', "message"),
        ("/v1/score/event", f'{{"message": {good}, "source": "\\ud800"}}', "source"),
        ("/v1/model/reload", '{"version": "\\ud800"}', "version"),
        ("/v1/model/reload", json.dumps({"version": "v" * 300}), "version"),
    ]
    for path, body, field in requests:
        status, answer = _call(port, "POST", path, _raw(body))
        assert status == 400, (path, body[:80], answer)
        assert answer["error"]["field"] == field and answer["error"]["code"] == "INVALID_ARGUMENT"
    status, answer = _call(port, "POST", "/v1/model/reload", {"version": "v-nowhere"})
    assert status == 404 and str(model_root) not in json.dumps(answer) and "/" not in answer["error"]["message"]
    with grpc.insecure_channel(server.target) as ch:
        stub = model_pb2_grpc.ModelServiceStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            stub.ReloadModel(model_pb2.ReloadModelRequest(version="v" * 300))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and info.value.details().startswith("version:")
        for version in ("a\x00b", "v-nowhere"):
            with pytest.raises(grpc.RpcError) as info:
                stub.ReloadModel(model_pb2.ReloadModelRequest(version=version))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND and str(model_root) not in info.value.details()


def test_the_servers_own_faults_are_internal_and_hold_no_details(server):
    service = server.server.service

    def broken():
        raise RuntimeError("cannot read /srv/logwarden/secret/config")

    original, service.model_info = service.model_info, broken
    try:
        with grpc.insecure_channel(server.target) as ch, pytest.raises(grpc.RpcError) as info:
            model_pb2_grpc.ModelServiceStub(ch).GetModelInfo(model_pb2.GetModelInfoRequest())
        assert info.value.code() == grpc.StatusCode.INTERNAL and info.value.details() == "internal error"
        status, answer = _call(server.http, "GET", "/v1/model")
        assert status == 500 and answer["error"] == {"message": "internal error", "field": "", "code": "INTERNAL"}
    finally:
        service.model_info = original


# -- 3: a bad label does not block the next client -------------------------------------------------


def test_a_bad_label_then_a_good_label_from_another_client(server):
    bad = _raw(
        '{"labels": [{"target": "event", "value": "anomaly", "analyst": "ann", "source": "s", '
        '"template_id": "1", "comment": "oops \\ud800"}]}'
    )
    status, answer = _call(server.http, "POST", "/v1/labels", bad)
    assert status == 200 and answer["results"][0]["accepted"] is False
    assert answer["results"][0]["error_field"] == "labels[0].comment"
    good = {"labels": [{"target": "event", "value": "anomaly", "analyst": "bob", "source": "s", "template_id": "1"}]}
    status, answer = _call(server.http, "POST", "/v1/labels", good)  # a new connection: another client
    assert status == 200 and answer["results"][0]["accepted"] is True, answer
    with SqliteLabelStore(server.server.settings.label_db, create=False) as store:
        assert [label.analyst for label in store.query()] == ["bob"]


# -- 6: slow connections are closed; open connections are bounded ----------------------------------


def test_slow_loris_connections_are_closed_and_connections_bounded(server):
    port = server.http
    slow = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(MAX_CONNECTIONS)]
    time.sleep(0.2)  # let the server take them
    extra = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(4)]
    stop = threading.Event()

    def trickle() -> None:  # one header byte every 0.2 s, never finishing the headers
        data = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
        for i in range(len(data)):
            if stop.is_set():
                return
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.send(data[i : i + 1])
            time.sleep(0.2)

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        for sock in extra:  # past the bound: closed at once
            assert sock.recv(1024) == b""
        for sock in slow:  # past the header timeout: closed, however slowly they keep sending
            assert sock.recv(1024) == b""
    finally:
        stop.set()
        for sock in slow + extra:
            sock.close()
    status, _ = _call(port, "GET", "/healthz")
    assert status == 200
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:  # a body that never arrives
        sock.sendall(
            b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"events"'
        )
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]


# -- 5: streams drain on SIGTERM without losing answers ----------------------------------------------


class _Hold:
    """Holds the model worker of a live server until ``release()``."""

    def __init__(self, bg: BackgroundServer) -> None:
        self.detector = bg.server.holder.current.detector
        self.original = self.detector.score_keys
        self.gate, self.entered = threading.Event(), threading.Event()
        self.detector.score_keys = self._gated

    def _gated(self, *args, **kwargs):
        self.entered.set()
        self.gate.wait(60)
        return self.original(*args, **kwargs)

    def release(self) -> None:
        self.gate.set()


def _drain(responses) -> tuple[int, grpc.StatusCode]:
    answered = 0
    try:
        for _ in responses:
            answered += 1
    except grpc.RpcError as exc:
        return answered, exc.code()
    return answered, grpc.StatusCode.OK


def test_sigterm_with_two_open_streams_answers_every_message_or_ends_unavailable(model_root):
    settings = load_settings(None, model_path=model_root, grpc_port=0, batch_wait_ms=0, shutdown_grace_s=30)
    bg = BackgroundServer(settings).start()
    hold = None
    try:
        requests = [pb.ScoreRequest(events=[pb.Event(message=line, source="s")]) for line in LINES[:6]]
        with grpc.insecure_channel(bg.target) as ch, ThreadPoolExecutor(2) as pool:
            stub = pbg.ScoringServiceStub(ch)
            idle_messages: queue.Queue = queue.Queue()
            idle_messages.put(requests[0])
            idle = stub.ScoreStream(iter(idle_messages.get, None))
            assert next(idle).results[0].status == pb.EVENT_STATUS_SCORED  # answered; now it waits for more
            hold = _Hold(bg)
            busy = stub.ScoreStream(iter(requests))  # six messages, sent at once; the first one is held
            assert hold.entered.wait(30)
            busy_result = pool.submit(_drain, busy)
            idle_result = pool.submit(_drain, idle)
            stopping = asyncio.run_coroutine_threadsafe(bg.server.stop(), bg.loop)  # SIGTERM
            deadline = time.monotonic() + 30
            while not bg.server.draining:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert idle_result.result(timeout=30) == (0, grpc.StatusCode.UNAVAILABLE)  # ended at once, not OK
            hold.release()
            answered, code = busy_result.result(timeout=60)
            assert answered >= 1  # the message in progress is answered
            assert code == grpc.StatusCode.UNAVAILABLE or (code == grpc.StatusCode.OK and answered == len(requests))
            idle_messages.put(None)
            stopping.result(timeout=60)
    finally:
        if hold is not None:
            hold.release()
        bg.stop()


# -- 9: admin tokens, the metrics port's TLS and token, every setting a flag -------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_admin_calls_need_an_admin_token_and_metrics_have_tls_and_tokens(model_root, pki):
    metrics_port = _free_port()
    settings = load_settings(
        None,
        model_path=model_root,
        grpc_port=0,
        http_port=0,
        metrics_port=metrics_port,
        tls_cert=pki / "server.pem",
        tls_key=pki / "server.key",
        auth_tokens=["scoring-t0ken"],
        admin_tokens=["admin-t0ken"],
    )
    scoring, admin = {"Authorization": "Bearer scoring-t0ken"}, {"Authorization": "Bearer admin-t0ken"}
    context = ssl.create_default_context(cafile=pki / "ca.pem")
    with BackgroundServer(settings) as bg:
        port = _http_port(bg)
        status, answer = _call(port, "POST", "/v1/model/reload", {}, scoring, context=context)
        assert status == 403 and answer["error"]["code"] == "PERMISSION_DENIED"
        assert _call(port, "POST", "/v1/model/reload", {}, admin, context=context)[0] == 200
        batch = {"events": [{"message": LINES[0]}]}
        for token in (scoring, admin):
            assert _call(port, "POST", "/v1/score", batch, token, context=context)[0] == 200
        credentials = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes())
        with grpc.secure_channel(bg.target, credentials) as ch:
            models = model_pb2_grpc.ModelServiceStub(ch)
            with pytest.raises(grpc.RpcError) as info:
                models.ReloadModel(model_pb2.ReloadModelRequest(), metadata=[("authorization", "Bearer scoring-t0ken")])
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
            reply = models.ReloadModel(
                model_pb2.ReloadModelRequest(), metadata=[("authorization", "Bearer admin-t0ken")]
            )
            assert reply.changed is False
        status, answer = _call(metrics_port, "GET", "/metrics", context=context)
        assert status == 401
        status, text = _call(metrics_port, "GET", "/metrics", None, scoring, context=context)
        assert status == 200 and "logwarden_requests_total" in text
        with pytest.raises((ConnectionError, http.client.HTTPException)):  # plain HTTP: no
            _call(metrics_port, "GET", "/metrics", None, scoring, timeout=10)


def test_serve_help_lists_every_setting():
    parser = build_parser()
    serve = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "serve")[1]
    flags = {option for action in serve._actions for option in action.option_strings}
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):  # a settings group
            subflags = {f"{flag}.{sub.replace('_', '-')}" for sub in field.annotation.model_fields}
            assert subflags <= flags, name
            continue
        action = next((a for a in serve._actions if flag in a.option_strings), None)
        if action is None or action.help == argparse.SUPPRESS:  # a secret: only its file has a flag
            assert flag + "-file" in flags and name.endswith("tokens"), name
        else:
            assert action.help and field.description and field.description.split()[0] in action.help, name
