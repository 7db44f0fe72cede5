"""The HTTP/JSON gateway on a live server (real sockets on 127.0.0.1): its scores equal gRPC's and the
engine's, the Logstash single-event shape, bad input, size limits, labels and model, metrics, OpenAPI."""

from __future__ import annotations

import base64
import http.client
import json
import re
from datetime import UTC, datetime

import grpc
import pytest
from support import MemoryLabels, engine_verdicts, sessions_by_block

from logwarden.grpc_server.gateway.app import HttpGateway
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer
from logwarden.protos.logwarden.v1 import scoring_pb2 as pb
from logwarden.protos.logwarden.v1 import scoring_pb2_grpc as pbg

MAX_BODY = 256 * 1024


# -- a tiny HTTP client and a JSON Schema checker for the subset openapi.py uses ----------------------


def gateway(bg: BackgroundServer) -> HttpGateway:
    return next(c for c in bg.server.companions if isinstance(c, HttpGateway))


def call(port: int, method: str, path: str, body=None, headers: dict | None = None, conn=None):
    """(status, headers, parsed JSON or text); ``body`` may be bytes, text or a JSON value."""
    if body is not None and not isinstance(body, bytes | str):
        body = json.dumps(body)
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
    finally:
        if own:
            conn.close()
    kind = response.getheader("Content-Type", "")
    return response.status, response, json.loads(data) if kind.startswith("application/json") else data.decode()


def check_schema(value, schema: dict, doc: dict, where: str = "$") -> None:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return check_schema(value, doc["components"]["schemas"][name], doc, where)
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                return check_schema(value, option, doc, where)
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{where}: matches none of anyOf: {errors}")
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        checks = {
            "object": lambda v: isinstance(v, dict),
            "array": lambda v: isinstance(v, list),
            "string": lambda v: isinstance(v, str),
            "boolean": lambda v: isinstance(v, bool),
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "null": lambda v: v is None,
        }
        assert any(checks[t](value) for t in types), f"{where}: {value!r} is not {types}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        assert schema.get("minimum", value) <= value <= schema.get("maximum", value), f"{where}: out of range"
    if isinstance(value, dict):
        for name in schema.get("required", []):
            assert name in value, f"{where}: missing {name}"
        props = schema.get("properties", {})
        for name, item in value.items():
            if name in props:
                check_schema(item, props[name], doc, f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                raise AssertionError(f"{where}: unexpected {name}")
            elif isinstance(schema.get("additionalProperties"), dict):
                check_schema(item, schema["additionalProperties"], doc, f"{where}.{name}")
    if isinstance(value, list):
        assert schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)), f"{where}: length"
        for i, item in enumerate(value):
            check_schema(item, schema.get("items", {}), doc, f"{where}[{i}]")


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sessions() -> dict[str, list[str]]:
    return sessions_by_block(24, seed=11)


@pytest.fixture(scope="module")
def engine(model_root, sessions):
    """The engine's own verdicts for each whole session: {block: SessionVerdict}."""
    return engine_verdicts(model_root, sessions)


@pytest.fixture(scope="module")
def server(model_root):
    labels = MemoryLabels()
    settings = load_settings(
        None,
        model_path=model_root,
        grpc_port=0,
        http_port=0,
        batch_wait_ms=2,
        window_size=250,
        max_request_bytes=MAX_BODY,
        max_events_per_request=500,
        max_message_bytes=2000,
    )
    with BackgroundServer(settings, labels=labels) as bg:
        bg.labels = labels
        bg.http = gateway(bg).port
        yield bg


@pytest.fixture
def port(server):
    yield server.http
    status, _, body = call(
        server.http,
        "POST",
        "/v1/score",
        {"events": [{"message": "081109 203518 143 INFO dfs.DataNode: still serving"}]},
    )
    assert status == 200 and body["results"][0]["status"] == "scored"  # whatever the test sent


def _events(sessions, blocks, source):
    return [{"id": f"{b}#{i}", "message": line, "source": source} for b in blocks for i, line in enumerate(sessions[b])]


def _assert_matches(result: dict, verdict) -> None:
    assert result["status"] == "scored"
    assert result["score"] == pytest.approx(verdict.score, abs=1e-5)
    assert result["anomalous"] == verdict.anomalous
    assert result["verdict"] == ("anomalous" if verdict.anomalous else "normal")
    assert result["template_id"] == (verdict.key or "")
    assert result["rank"] == verdict.rank and result["reason"] == verdict.reason
    assert result["reason_code"] == (verdict.reason_code or "")
    assert [e["template_id"] for e in result["expected"]] == [e.key for e in verdict.expected]


# -- scoring -----------------------------------------------------------------------------------------


def test_batch_scoring_equals_grpc_and_the_engine(server, port, sessions, engine):
    blocks = list(sessions)
    assert any(engine[b].anomalous for b in blocks) and not all(engine[b].anomalous for b in blocks)
    events = _events(sessions, blocks, "seq")
    status, _, body = call(port, "POST", "/v1/score", {"events": events, "mode": "sequence", "request_id": "r1"})
    assert status == 200 and body["request_id"] == "r1" and body["model_version"]
    assert [r["id"] for r in body["results"]] == [e["id"] for e in events]
    for r in body["results"]:
        block, i = r["id"].split("#")
        _assert_matches(r, engine[block].events[int(i)])
    assert [s["session_key"] for s in body["sessions"]] == blocks
    for s in body["sessions"]:
        assert s["score"] == pytest.approx(engine[s["session_key"]].score, abs=1e-5)
        assert s["anomalous"] == engine[s["session_key"]].anomalous and s["events"] == len(sessions[s["session_key"]])
    with grpc.insecure_channel(server.target) as ch:  # the same answer over gRPC
        grpc_body = pbg.ScoringServiceStub(ch).Score(
            pb.ScoreRequest(
                events=[pb.Event(id=e["id"], message=e["message"], source="seq") for e in events],
                mode=pb.SCORING_MODE_SEQUENCE,
            )
        )
    for mine, theirs in zip(body["results"], grpc_body.results, strict=True):
        assert (mine["id"], mine["template_id"], mine["rank"]) == (theirs.id, theirs.template_id, theirs.rank)
        assert mine["score"] == pytest.approx(theirs.score, abs=1e-9)
    # stream mode, each session sent in three pieces (camelCase and proto enum names accepted too)
    results = []
    for j in range(3):
        piece = [
            e
            for b in blocks[:10]
            for e in _events(sessions, [b], "stream-http")
            if len(sessions[b]) * j // 3 <= int(e["id"].split("#")[1]) < len(sessions[b]) * (j + 1) // 3
        ]
        status, _, body = call(
            port, "POST", "/v1/score", {"events": piece, "mode": "SCORING_MODE_STREAM", "requestId": str(j)}
        )
        assert status == 200 and body["request_id"] == str(j) and body["sessions"] == []
        results += body["results"]
    assert len(results) == sum(len(sessions[b]) for b in blocks[:10])
    for r in results:
        block, i = r["id"].split("#")
        _assert_matches(r, engine[block].events[int(i)])


def test_logstash_http_filter_single_events(port, sessions, engine):
    """Stands for Logstash's ``http`` filter: each event goes alone to /v1/score/event (verb POST,
    body_format json, a ``body`` made of field references), the JSON answer lands at
    ``target_body => "[@metadata][logwarden]"`` and a ``mutate { copy }`` moves it into the event."""
    block = next(b for b in sessions if engine[b].anomalous)
    for i, line in enumerate(sessions[block]):
        event = {
            "message": line,
            "host": {"name": "dn-7"},
            "@timestamp": "2008-11-09T20:35:18.000Z",
            "event": {"dataset": "hdfs.datanode"},
            "tags": ["beats"],
        }
        body = {
            "message": event["message"],
            "host": {"name": event["host"]["name"]},
            "session_key": "%{[trace][id]}",
        }  # a reference to a field this event lacks stays literal
        status, headers, answer = call(port, "POST", "/v1/score/event", body, {"Content-Type": "application/json"})
        assert status == 200 and headers.getheader("Content-Type").split(";")[0] == "application/json"
        event.setdefault("@metadata", {})["logwarden"] = answer  # the filter sets target_body
        meta = event["@metadata"]["logwarden"]  # mutate { copy => ... }
        event["logwarden"] = meta["logwarden"]
        event["event"]["risk_score"] = meta["event"]["risk_score"]
        event["event"]["risk_score_norm"] = meta["event"]["risk_score_norm"]
        verdict = engine[block].events[i]
        _assert_matches(event["logwarden"], verdict)
        assert event["logwarden"]["source"] == "dn-7" and event["logwarden"]["session_key"] == block
        assert event["event"]["dataset"] == "hdfs.datanode" and event["tags"] == ["beats"]  # nothing lost
        assert event["event"]["risk_score"] == pytest.approx(verdict.score * 100, abs=1e-2)
        assert 0 <= event["event"]["risk_score_norm"] <= 100
    # body_format "text": the body is the line; source and session come from the query
    status, _, answer = call(
        port, "POST", "/v1/score/event?source=dn-8&session_key=s1", sessions[block][0], {"Content-Type": "text/plain"}
    )
    assert status == 200 and answer["logwarden"]["source"] == "dn-8"
    assert answer["logwarden"]["session_key"] == "s1"
    _assert_matches(answer["logwarden"], engine[block].events[0])
    # the pipeline picks the fields: ECS paths, bracket references, fallbacks
    status, _, answer = call(
        port,
        "POST",
        "/v1/score/event?message_field=[event][original]&source_field=log.file.path,host.name",
        {"event": {"original": sessions[block][0]}, "log": {"file": {"path": "/var/log/dn.log"}}},
    )
    assert status == 200 and answer["logwarden"]["source"] == "/var/log/dn.log"


def test_bad_input_is_400_naming_the_field(port):
    line = "081109 203518 143 INFO dfs.DataNode: hello"
    cases = [
        ("/v1/score", b'{"events": [', "body"),
        ("/v1/score", b'{"events": [{"message": "\xff\xfe"}]}', "body"),
        ("/v1/score", b"[]", "events"),  # a bare array is a batch: an empty one is no batch
        ("/v1/score", b'{"events": [{"message": "x"}], "mode": NaN}', "body"),
        ("/v1/score", {"mode": "stream"}, "events"),
        ("/v1/score", {"events": {"message": line}}, "events"),
        ("/v1/score", {"events": []}, "events"),
        ("/v1/score", {"events": [{"message": line}] * 501}, "events"),
        ("/v1/score", {"events": [{"message": line}], "mode": "batch"}, "mode"),
        ("/v1/score", {"events": [{"message": line}], "mode": True}, "mode"),
        ("/v1/score", {"events": [{"message": line}], "evnts": []}, "evnts"),
        ("/v1/score", {"events": [{"message": line}], "request_id": 7}, "request_id"),
        ("/v1/score?timeout_ms=soon", {"events": [{"message": line}]}, "timeout_ms"),
        ("/v1/score/event", {"msg": line}, "message"),
        ("/v1/score/event", {"message": ["a", "b"]}, "message"),
        ("/v1/score/event", {"message": "   "}, "message"),
        ("/v1/score/event", {"message": "x" * 2001}, "message"),
        ("/v1/score/event?source_field=host", {"message": line, "host": {"name": "a"}}, "host"),
        ("/v1/score/event?session_field=trace.id", {"message": line, "trace": {"id": [1]}}, "trace.id"),
        ("/v1/score/event", b"\xc3\x28", "body"),
        ("/v1/labels", {"labels": "none"}, "labels"),
        ("/v1/model/reload", {"version": 3}, "version"),
    ]
    for path, body, field in cases:
        status, _, answer = call(port, "POST", path, body)
        assert status == 400, (path, body, answer)
        assert answer["error"]["field"] == field, (path, answer)
        assert answer["error"]["message"] and answer["error"]["code"] == "INVALID_ARGUMENT"
    status, _, answer = call(port, "POST", "/v1/score", {"events": [{"message": line}]}, {"X-Request-Timeout-Ms": "-5"})
    assert status == 400 and answer["error"]["field"] == "X-Request-Timeout-Ms"


def test_a_bad_event_does_not_fail_the_batch(server, port):
    line = "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_1 src: /1.2.3.4:5 dest: /1.2.3.4:6"
    latin1 = base64.b64encode(line.replace("Receiving", "Recei\xe9ving").encode("latin-1")).decode()
    events = [
        {"id": "ok", "message": line, "timestamp": "2008-11-09T20:35:18Z", "attributes": {"k": "v"}},
        {"id": "no-message", "source": "s"},
        {"id": "bad-time", "message": line, "timestamp": "yesterday"},
        {"id": "bad-raw", "raw": "***"},
        {"id": "bad-attr", "message": line, "attributes": {"k": 1}},
        {"id": "typo", "mesage": line},
        {"id": "both", "message": line, "raw": base64.b64encode(b"x").decode()},
        {"id": "raw", "raw": latin1.rstrip("=").replace("+", "-").replace("/", "_"), "sessionKey": "blk_1"},
        "not an object",
        {"id": "bad-end", "message": line, "session_end": "yes"},
    ]
    status, _, body = call(port, "POST", "/v1/score", {"events": events})
    assert status == 200
    results = body["results"]
    assert [r["id"] for r in results] == [e["id"] if isinstance(e, dict) else "" for e in events]
    fields = {r["id"]: r["error_field"] for r in results if r["status"] == "invalid"}
    assert fields == {
        "no-message": "events[1].message",
        "bad-time": "events[2].timestamp",
        "bad-raw": "events[3].raw",
        "bad-attr": "events[4].attributes['k']",
        "typo": "events[5].mesage",
        "both": "events[6].message",
        "": "events[8]",
        "bad-end": "events[9].session_end",
    }
    assert results[1]["source"] == "s" and all(r["verdict"] == "" for r in results if r["status"] == "invalid")
    assert results[0]["status"] == "scored" and results[7]["status"] == "scored"
    assert results[7]["session_key"] == "blk_1" and any("UTF-8" in w for w in results[7]["warnings"])
    text = server.server.metrics.render()[0].decode()
    assert re.search(r'logwarden_events_total\{model_version="[^"]+",status="invalid"\} ([7-9]|\d\d)', text)


def test_stream_session_end_over_http(port):
    """A shipper that knows a session is over (sessionEnd, proto JSON's camelCase) gets its end judged."""
    lines = [
        "081109 203615 148 INFO dfs.DataNode$PacketResponder: Received block blk_77 of size 67108864 from /10.0.0.1",
        "081109 203615 149 INFO dfs.FSNamesystem: BLOCK* NameSystem.allocateBlock: /user/root/part-0 blk_77",
    ]
    events = [{"id": str(i), "message": m, "source": "http-end"} for i, m in enumerate(lines)]
    status, _, body = call(port, "POST", "/v1/score", {"events": events[:1]})
    assert status == 200 and body["sessions"] == []
    status, _, body = call(port, "POST", "/v1/score", {"events": [{**events[1], "sessionEnd": True}]})
    assert status == 200
    (session,) = body["sessions"]
    assert session["session_key"] == "blk_77" and session["end"]["template"] == "<end of session>"
    assert session["end"]["verdict"] == "anomalous" and session["reason"]


def test_oversized_bodies_get_413(port):
    big = {"events": [{"message": "x" * 1000}] * (MAX_BODY // 1000 + 10)}
    status, _, body = call(port, "POST", "/v1/score", big)
    assert status == 413 and body["error"]["field"] == "body"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)  # chunked: no Content-Length up front
    try:
        conn.request(
            "POST",
            "/v1/score/event",
            body=iter([b'{"message": "', b"y" * MAX_BODY, b'"}']),
            encode_chunked=True,
            headers={"Transfer-Encoding": "chunked"},
        )
        response = conn.getresponse()
        assert response.status == 413 and json.loads(response.read())["error"]["field"] == "body"
    finally:
        conn.close()


# -- labels, model, probes, metrics, the OpenAPI document ------------------------------------------


def test_labels_model_and_reload(server, port):
    labels = [
        {"id": "c", "target": "event", "value": "anomaly", "time": "noon"},
        {
            "id": "a",
            "target": "LABEL_TARGET_SESSION",
            "value": "normal",
            "session_key": "blk_1",
            "analyst": "ann",
            "source": "hdfs",
            "time": "2026-11-02T10:00:00Z",
            "keys": ["E1", "E2"],
        },
        {"id": "b", "target": "event", "analyst": "ann", "source": "hdfs", "template_id": "E5"},
    ]
    status, _, body = call(port, "POST", "/v1/labels", {"labels": labels})
    assert status == 200
    worse, ok, bad = body["results"]
    assert not worse["accepted"] and worse["error_field"] == "labels[0].time"
    assert ok["accepted"] and ok["label_id"] and ok["id"] == "a"
    assert not bad["accepted"] and bad["error_field"] == "labels[2].value"  # numbered as the request does
    assert bad["error"].startswith("labels[2].value")
    (stored,) = server.labels.stored
    assert stored.target == "session" and stored.keys == ["E1", "E2"]
    assert stored.time == datetime(2026, 11, 2, 10, tzinfo=UTC).timestamp()
    status, _, info = call(port, "GET", "/v1/model")
    assert status == 200 and info["line_format"] == "hdfs" and info["version"] in info["available_versions"]
    status, _, body = call(port, "POST", "/v1/model/reload", b"")
    assert status == 200 and body == {"previous_version": info["version"], "model": body["model"], "changed": False}
    status, _, body = call(port, "POST", "/v1/model/reload", {"version": "v-missing"})
    assert status == 404 and body["error"]["field"] == "version"
    assert call(port, "GET", "/healthz")[0] == 200
    status, _, body = call(port, "GET", "/readyz")
    assert status == 200 and body == {"status": "ready", "model_version": info["version"]}
    status, headers, body = call(port, "GET", "/v1/score")
    assert status == 405 and "POST" in headers.getheader("Allow")
    assert call(port, "GET", "/v2/nothing")[0] == 404


def test_metrics_count_scoring_and_http_requests(port):
    call(port, "POST", "/v1/score", {"events": [{"message": "081109 203518 143 INFO dfs.DataNode: m"}]})
    status, headers, text = call(port, "GET", "/metrics")
    assert status == 200 and headers.getheader("Content-Type").startswith("text/plain")
    assert headers.getheader("Server") == "logwarden"  # no library name and version for scanners
    assert re.search(r'logwarden_events_total\{model_version="[^"]+",status="scored"\} \d', text)
    assert 'logwarden_http_requests_total{method="POST",route="/v1/score",status="200"}' in text
    assert 'logwarden_http_request_seconds_bucket{le="0.001",route="/v1/score"}' in text
    assert "logwarden_batch_events_bucket" in text


def test_openapi_documents_every_route_and_its_examples_work(server, port):
    status, _, doc = call(port, "GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    routes = {
        (r.method.lower(), r.resource.canonical) for r in gateway(server).app.router.routes() if r.method != "HEAD"
    }
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert routes == documented
    tried = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            examples = [
                (kind, ex["value"])
                for kind, media in op.get("requestBody", {}).get("content", {}).items()
                for ex in media.get("examples", {}).values()
            ]
            for kind, value in examples or [(None, None)]:
                body = value if kind in (None, "text/plain", "application/x-ndjson") else json.dumps(value)
                headers = {"Content-Type": kind} if kind else {}
                status, _, answer = call(port, method.upper(), path, body, headers)
                assert status == 200, (path, kind, answer)
                media = op["responses"]["200"]["content"]
                schema = (media.get("application/json") or media["text/plain"])["schema"]
                check_schema(answer, schema, doc, f"{method} {path}")
                if kind:
                    check_schema(value, media_schema(op, kind), doc, f"example of {path}")
                tried += 1
    assert tried >= len(documented) + 2  # every operation, and more than one example for some
    status, _, answer = call(port, "POST", "/v1/score", {"events": []})
    check_schema(
        answer, doc["paths"]["/v1/score"]["post"]["responses"]["400"]["content"]["application/json"]["schema"], doc
    )


def media_schema(op: dict, kind: str) -> dict:
    return op["requestBody"]["content"][kind]["schema"]
