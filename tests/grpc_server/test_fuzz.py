"""Seeded, time-bounded fuzzing of every decoder of a live server: HTTP JSON bodies on every route (and
NDJSON bodies, which no route takes yet), raw and structured protobuf requests. Bad input is never
answered 5xx (gRPC: never UNKNOWN or INTERNAL), and afterwards the server answers a known request
exactly as before. (Log lines through the masker and every format: ``tests/core/parsing/test_linearity.py``;
health while the worst line is scored: ``test_server_hardening.py``.)

Each decoder gets ``INPUTS`` inputs from a fixed seed, cut short after ``BUDGET_S`` seconds on a slow
machine (at least ``MIN_INPUTS`` must run); a failure names the seed and the input's number.
"""

from __future__ import annotations

import copy
import http.client
import json
import random
import string
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from support import MemoryLabels

from logwarden.core.parsing.adversarial import fuzz_lines
from logwarden.core.synthetic import generate
from logwarden.grpc_server.gateway.app import HttpGateway
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer
from logwarden.protos.logwarden.v1 import labels_pb2, model_pb2
from logwarden.protos.logwarden.v1 import scoring_pb2 as pb

SEED = 20261108
INPUTS = 2500
MIN_INPUTS = 300
BUDGET_S = 90.0
LINES = generate(n_sessions=4, anomaly_rate=0.2, seed=13).lines
KNOWN = {"events": [{"id": str(i), "message": line, "source": "known"} for i, line in enumerate(LINES[:12])]}
KNOWN["mode"] = "sequence"
ODD_TEXT = ["", " ", "\ud800", "a\udfffb", "\x00", "\u202e", "%{[host][name]}", "é" * 300, "x" * 5000, "\n\r\t"]
ODD_VALUES: list[Any] = [None, True, False, 0, -1, 2**63, 10**4299, 1e308, -1e-308, 0.5, [], {}, [[[]]], {"a": {}}]
ODD_VALUES += [*ODD_TEXT, "2026-11-02T10:00:00Z", "yesterday", "SCORING_MODE_SEQUENCE", "LABEL_VALUE_ANOMALY", "***"]


def _each(rng: random.Random, make: Callable[[random.Random], Any]) -> Iterator[tuple[int, Any]]:
    started = time.monotonic()
    for n in range(INPUTS):
        if n >= MIN_INPUTS and time.monotonic() - started > BUDGET_S:
            return
        yield n, make(rng)


# -- JSON mutation ------------------------------------------------------------------------------------


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


def _mutated(rng: random.Random, value: Any) -> Any:
    value = copy.deepcopy(value)
    for _ in range(rng.randint(1, 4)):
        path = rng.choice(_paths(value))
        parent, key = (None, None) if not path else (_get(value, path[:-1]), path[-1])
        choice = rng.random()
        new = copy.deepcopy(rng.choice(ODD_VALUES)) if choice < 0.6 else rng.choice(ODD_TEXT) + rng.choice(LINES)
        if parent is None:
            value = new if rng.random() < 0.1 else value
        elif choice < 0.8:
            parent[key] = new
        elif isinstance(parent, dict):
            if rng.random() < 0.5:
                parent[rng.choice(["mesage", "sessionKey", "sessionEnd", "requestId", "\ud800", "x" * 300])] = new
            else:
                parent.pop(key, None)
        elif isinstance(parent, list) and parent:
            parent.append(copy.deepcopy(rng.choice(parent)))
    return value


def _get(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


def _encoded(rng: random.Random, value: Any) -> bytes:
    data = json.dumps(value, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
    roll = rng.random()
    if roll < 0.05:
        return data[: rng.randint(0, len(data))]
    if roll < 0.1:
        at = rng.randint(0, len(data))
        return data[:at] + bytes([rng.randint(0, 255)]) + data[at:]
    if roll < 0.12:
        return b"[" * rng.randint(1, 100_000)
    return data


BASES = {
    "/v1/score": KNOWN,
    "/v1/labels": {
        "labels": [
            {"id": "a", "target": "event", "value": "anomaly", "analyst": "ann", "source": "s", "template_id": "1"},
            {"target": "LABEL_TARGET_SESSION", "value": "normal", "session_key": "blk_1", "keys": ["1", "2"]},
        ]
    },
    "/v1/model/reload": {"version": "v1"},
    "/v1/score/event": {"message": LINES[0], "host": {"name": "h"}, "session_key": "%{[trace][id]}"},
}
QUERIES = [
    "",
    "?timeout_ms=5000",
    "?source_field=host.name,source",
    "?message_field=[event][original]",
    "?source=%ED%A0%80",
    "?session_key=%00%FF",
    "?timeout_ms=-1",
    "?message_field=" + "a," * 20,
]


def _http_request(rng: random.Random) -> tuple[str, bytes, dict[str, str]]:
    path = rng.choice(list(BASES))
    headers = {"Content-Type": "application/json"}
    if path == "/v1/score/event":
        path += rng.choice(QUERIES)
        if rng.random() < 0.2:
            headers["Content-Type"] = "text/plain"
            line = rng.choice(fuzz_lines(rng.randint(0, 10**6), 1, 2000))
            return path, line.encode("utf-8", "surrogatepass"), headers
    if rng.random() < 0.05:  # NDJSON: one event per line (no route takes it yet: a clear 400)
        headers["Content-Type"] = "application/x-ndjson"
        events = [_mutated(rng, e) for e in KNOWN["events"][: rng.randint(1, 5)]]
        body = "\n".join(json.dumps(e) for e in events).encode("utf-8", "surrogatepass")
        return path, body, headers
    return path, _encoded(rng, _mutated(rng, BASES[path.split("?")[0]])), headers


# -- the server ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(model_root):
    settings = load_settings(
        None, model_path=model_root, grpc_port=0, http_port=0, batch_wait_ms=0, max_request_bytes=1 << 20
    )
    with BackgroundServer(settings, labels=MemoryLabels()) as bg:
        bg.http = next(c for c in bg.server.companions if isinstance(c, HttpGateway)).port
        yield bg


class _Http:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, bytes]:
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()  # the server closed the connection (e.g. after an error): a new one
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def _known_http(client: _Http) -> dict:
    status, data = client.call("POST", "/v1/score", json.dumps(KNOWN).encode(), {"Content-Type": "application/json"})
    assert status == 200
    return json.loads(data)


def test_fuzzed_http_bodies_are_never_answered_5xx(server):
    client = _Http(server.http)
    before = _known_http(client)
    statuses: dict[int, int] = {}
    for n, (path, body, headers) in _each(random.Random(SEED), _http_request):
        status, data = client.call("POST", path, body, headers)
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, (SEED, n, path, body[:200], data[:300])
        if status >= 400:
            error = json.loads(data)["error"]
            assert error["message"] and error["code"], (SEED, n, data[:300])
    assert _known_http(client) == before  # the server answers a known request exactly as before
    client.conn.close()
    assert statuses.get(200, 0) > 0 and statuses.get(400, 0) > 0, statuses


# -- protobuf --------------------------------------------------------------------------------------------

ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
}
METHODS = {
    "/logwarden.v1.ScoringService/Score": pb.ScoreRequest(
        events=[pb.Event(id="e", message=LINES[0], source="s", attributes={"k": "v"})], mode=pb.SCORING_MODE_SEQUENCE
    ),
    "/logwarden.v1.LabelService/SubmitLabels": labels_pb2.SubmitLabelsRequest(
        labels=[labels_pb2.Label(id="a", target=1, value=1, analyst="ann", source="s", template_id="1")]
    ),
    "/logwarden.v1.ModelService/ReloadModel": model_pb2.ReloadModelRequest(version="v1"),
    "/logwarden.v1.ModelService/GetModelInfo": model_pb2.GetModelInfoRequest(),
}


def _random_text(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(ODD_TEXT[:2] + ODD_TEXT[4:])  # protobuf strings cannot hold surrogates
    return "".join(rng.choice(string.printable + "é日\u202e") for _ in range(rng.randint(0, 200)))


def _structured(rng: random.Random) -> tuple[str, bytes]:
    """A well-formed request with odd field values."""
    events = []
    for _ in range(rng.randint(0, 5)):
        event = pb.Event(id=_random_text(rng), source=_random_text(rng), session_key=_random_text(rng))
        if rng.random() < 0.5:
            event.message = rng.choice([_random_text(rng), *LINES])
        elif rng.random() < 0.5:
            event.raw = bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 300)))
        if rng.random() < 0.3:
            event.timestamp.seconds = rng.choice([0, -(2**62), 2**62, 253402300800, rng.randint(-(2**40), 2**40)])
        if rng.random() < 0.2:
            event.attributes[_random_text(rng)] = _random_text(rng)
        event.session_end = rng.random() < 0.2
        events.append(event)
    mode = rng.choice([0, 1, 2, 3, -1, 2**31 - 1])
    request = pb.ScoreRequest(events=events, mode=mode, request_id=_random_text(rng))
    return "/logwarden.v1.ScoringService/Score", request.SerializeToString()


def _raw(rng: random.Random) -> tuple[str, bytes]:
    """A valid request's bytes, mutated: flipped, dropped or inserted bytes, truncation."""
    if rng.random() < 0.4:
        return _structured(rng)
    method = rng.choice(list(METHODS))
    data = bytearray(METHODS[method].SerializeToString())
    for _ in range(rng.randint(1, 6)):
        at = rng.randint(0, len(data))
        roll = rng.random()
        if roll < 0.4 and data:
            data[min(at, len(data) - 1)] = rng.randint(0, 255)
        elif roll < 0.7:
            data[at:at] = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 8)))
        elif roll < 0.9:
            del data[at : at + rng.randint(1, 8)]
        else:
            data = data[:at]
    return method, bytes(data)


def _known_grpc(channel: grpc.Channel) -> pb.ScoreResponse:
    request = pb.ScoreRequest(
        events=[pb.Event(id=e["id"], message=e["message"], source="known") for e in KNOWN["events"]],
        mode=pb.SCORING_MODE_SEQUENCE,
    )
    return pb.ScoreResponse.FromString(
        channel.unary_unary("/logwarden.v1.ScoringService/Score")(request.SerializeToString())
    )


def test_fuzzed_protobuf_requests_are_never_unknown_or_internal(server):
    with grpc.insecure_channel(server.target) as channel:
        before = _known_grpc(channel)
        codes: dict[grpc.StatusCode, int] = {}
        for n, (method, data) in _each(random.Random(SEED + 1), _raw):
            try:
                channel.unary_unary(method)(data, timeout=60)
                code = grpc.StatusCode.OK
            except grpc.RpcError as exc:
                code = exc.code()
                assert code in ALLOWED, (SEED + 1, n, method, data[:200], code, exc.details())
            codes[code] = codes.get(code, 0) + 1
        after = _known_grpc(channel)
    assert after == before  # the server answers a known request exactly as before
    assert codes.get(grpc.StatusCode.OK, 0) > 0 and codes.get(grpc.StatusCode.INVALID_ARGUMENT, 0) > 0, codes
