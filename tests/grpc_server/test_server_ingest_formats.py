"""Shippers' bodies on a live gateway (real sockets): ``POST /v1/score`` with NDJSON (syslog-ng's ``http()``,
Fluent Bit's ``json_lines``, Vector) and with a bare JSON array (Fluent Bit's ``json``) scores the good lines
exactly as the ``{"events": [...]}`` form does and names each bad one by its line, never a 400 for the body;
gzip bodies; the request options come from the query and the Idempotency-Key header; ``/v1/score/event``
(Logstash's ``http`` filter) reads id, timestamp, attributes and session_end."""

from __future__ import annotations

import gzip
import json

import pytest
from support import sessions_by_block
from test_server_http import call

from logwarden.grpc_server.gateway.app import HttpGateway
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer

NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.fixture(scope="module")
def server(model_root):
    settings = load_settings(None, model_path=model_root, grpc_port=0, http_port=0, batch_wait_ms=2)
    with BackgroundServer(settings) as bg:
        bg.http = next(c for c in bg.server.companions if isinstance(c, HttpGateway)).port
        yield bg


@pytest.fixture
def calls(server):
    """Records each ``ScoringService.score`` call's events and options (a test hook on the live service)."""
    service = server.server.service
    original = service.score
    seen: list[dict] = []

    async def score(events, mode="stream", **options):
        seen.append({"events": list(events), "mode": mode, **options})
        return await original(events, mode, **options)

    service.score = score
    yield seen
    del service.score


@pytest.fixture(scope="module")
def block() -> tuple[str, list[str]]:
    return next(iter(sessions_by_block(3, seed=5).items()))


def scores(results: list[dict]) -> list[tuple]:
    return [(r["status"], r["template_id"], round(r["score"], 6), r["verdict"]) for r in results]


def reference(server, lines: list[str], source: str) -> list[tuple]:
    """The ``{"events": [...]}`` answer for the same lines (sequence mode: no state between calls)."""
    events = [{"message": line, "source": source} for line in lines]
    status, _, body = call(server.http, "POST", "/v1/score", {"events": events, "mode": "sequence"})
    assert status == 200
    return scores(body["results"])


def test_ndjson_scores_every_good_line_and_names_each_bad_one(server, block, calls):
    key, lines = block
    records = [json.dumps({"ts": "2008-11-09T20:35:18+00:00", "message": line, "host": "dn-7"}) for line in lines]
    body = "\n".join(
        [
            records[0],
            records[1],
            "",  # a blank line is no event
            records[2],
            '{"message": "unterminated',
            "[1, 2]",
            json.dumps({"ts": "2008-11-09T20:35:19Z", "message": "   ", "host": "dn-7"}),
            json.dumps({"host": "dn-7", "log": {"file": "x"}}),
            *records[3:],
        ]
    ).encode()
    body += b"\n" + b'{"message": "\xff"}' + b"\r\n"  # CRLF endings are fine; bytes that are not UTF-8 are not
    status, _, answer = call(server.http, "POST", "/v1/score?mode=sequence&request_id=r7", body, NDJSON)
    assert status == 200, answer
    results = answer["results"]
    assert answer["request_id"] == "r7" and len(results) == len(lines) + 5
    bad = {i: (r["error_field"], r["error"]) for i, r in enumerate(results) if r["status"] == "invalid"}
    assert bad == {
        3: ("events[3]", "events[3]: line 5: not valid JSON: Unterminated string starting at (column 13)"),
        4: ("events[4]", "events[4]: line 6: must be an object (an Event or a shipper's record), not an array"),
        5: ("events[5].message", "events[5].message: empty log line"),
        6: ("events[6].log", "events[6].log: line 8: must be a string, not an object"),
        len(results) - 1: (f"events[{len(results) - 1}]", bad[len(results) - 1][1]),
    }
    assert bad[len(results) - 1][1].endswith(f"line {len(lines) + 6}: not valid UTF-8 (byte 13)")
    good = [r for i, r in enumerate(results) if i not in bad]
    assert scores(good) == reference(server, lines, "dn-7")
    assert {r["source"] for r in good} == {"dn-7"} and {r["session_key"] for r in good} == {key}
    sent = calls[0]["events"]  # the decodable events (the blank message among them: the service refuses it)
    assert len(sent) == len(lines) + 1 and sent[0].timestamp == pytest.approx(1226262918.0)  # "ts" read as the time


def test_a_bare_array_of_fluent_bit_records_events_and_a_bad_item(server, block):
    key, lines = block
    items = [{"date": 1226262918.25 + i, "log": line, "host": "dn-9"} for i, line in enumerate(lines)]
    items.insert(1, {"id": "strict", "message": lines[0], "source": "elsewhere", "sessionKey": key})
    items.insert(2, "a string")
    status, _, answer = call(server.http, "POST", "/v1/score?mode=sequence", items)
    assert status == 200, answer
    results = answer["results"]
    assert results[1]["id"] == "strict" and results[1]["status"] == "scored"
    assert results[2]["status"] == "invalid" and results[2]["error_field"] == "events[2]"
    assert "line" not in results[2]["error"]  # an array item has no line
    assert scores([r for i, r in enumerate(results) if i not in (1, 2)]) == reference(server, lines, "dn-9")


def test_a_bad_query_parameter_is_a_400_naming_it(server, block):
    """The batch's options come from the query: a wrong one can never succeed, so the whole request is
    refused, naming the parameter (as GET /v1/labels does with its own)."""
    line = json.dumps({"message": block[1][0]})
    for query, field, problem in (
        ("partial_sessions=maybe", "partial_sessions", "must be true or false"),
        ("colour=red", "colour", "unknown query parameter"),
        ("mode=batch", "mode", "unknown mode"),
    ):
        status, _, answer = call(server.http, "POST", f"/v1/score?{query}", line, NDJSON)
        assert status == 400 and answer["error"]["field"] == field, answer
        assert problem in answer["error"]["message"]


def test_vector_records_gzip_and_field_parameters(server, block, calls):
    key, lines = block
    records = [
        {"timestamp": "2008-11-09T20:35:18.123456789Z", "message": line, "host": "vec-1", "app": {"sid": key}}
        for line in lines
    ]
    ndjson = "\n".join(json.dumps(r) for r in records) + "\n"
    headers = {**NDJSON, "Content-Encoding": "gzip", "Idempotency-Key": "batch-17"}
    path = "/v1/score?mode=sequence&session_field=app.sid&source=vector&partial_sessions=true&model=default"
    status, _, answer = call(server.http, "POST", path + "&window_scope=s1", gzip.compress(ndjson.encode()), headers)
    assert status == 200, answer
    assert {r["session_key"] for r in answer["results"]} == {key} and answer["results"][0]["source"] == "vector"
    assert not answer["replayed"] and answer["model"] == "default"
    again = call(server.http, "POST", path + "&window_scope=s1", gzip.compress(ndjson.encode()), headers)[2]
    assert again["replayed"] and again["results"] == answer["results"]  # a resend: the stored answer
    last = calls[-1]
    assert last["events"][0].timestamp == pytest.approx(1226262918.123456)
    assert (last["idempotency_key"], last["model"], last["window_scope"], last["partial_sessions"]) == (
        "batch-17",
        "default",
        "s1",
        True,
    )
    # the pipeline named a field that holds the wrong kind: that event is invalid, naming it; others scored
    mixed = [{"message": lines[0], "when": "noon"}, {"message": lines[1], "when": 1226262918}]
    body = "\n".join(json.dumps(r) for r in mixed)
    status, _, answer = call(server.http, "POST", "/v1/score?timestamp_field=when", body, NDJSON)
    assert status == 200
    first, second = answer["results"]
    assert first["error_field"] == "events[0].when" and "line 1: must be an RFC 3339 time" in first["error"]
    assert second["status"] == "scored"
    for query, field in (("mode=batch", "mode"), ("mesage_field=log", "mesage_field"), ("partial_sessions=2", None)):
        status, _, answer = call(server.http, "POST", f"/v1/score?{query}", body, NDJSON)
        assert status == 400 and answer["error"]["field"] == (field or "partial_sessions"), answer
    status, _, answer = call(server.http, "POST", "/v1/score", "\n\n", NDJSON)
    assert status == 400 and answer["error"]["field"] == "events"  # nothing to score at all


def test_score_event_reads_id_timestamp_attributes_and_session_end(server, block, calls):
    key, lines = block
    for i, line in enumerate(lines):
        event = {
            "message": line,
            "host": {"name": "ls-1"},
            "@timestamp": "2008-11-09T20:35:18.000Z",
            "event": {"id": f"ev-{i}"},
            "labels": {"index": "hdfs", "shard": 3},
            "closed": "true" if i == len(lines) - 1 else "%{[closed]}",  # the aggregate filter marks the last
        }
        query = "id_field=event.id&attributes_field=labels&session_end_field=closed&model=default"
        status, _, answer = call(server.http, "POST", f"/v1/score/event?{query}", event)
        assert status == 200, answer
        (seen,) = calls[-1]["events"]
        assert (seen.id, seen.source) == (f"ev-{i}", "ls-1") and answer["logwarden"]["session_key"] == key
        assert seen.timestamp == pytest.approx(1226262918.0) and seen.attributes == {"index": "hdfs", "shard": "3"}
        assert seen.session_end == (i == len(lines) - 1) and calls[-1]["model"] == "default"
    assert answer["logwarden"]["session"]["events"] >= 1  # the session's verdict, at its end
    assert answer["logwarden"]["session"]["verdict"] in ("normal", "anomalous")
    # body fields of those names need no parameters
    body = {"message": lines[0], "source": "ls-2", "id": 7, "timestamp": 1226262918, "session_end": True}
    status, _, answer = call(server.http, "POST", "/v1/score/event", body)
    assert status == 200 and answer["logwarden"]["session"]["events"] == 1
    assert calls[-1]["events"][0].id == "7"
    for query, event, field in (
        ("session_end_field=closed", {"message": lines[0], "closed": "maybe"}, "closed"),
        ("attributes_field=labels", {"message": lines[0], "labels": {"a": [1]}}, "labels"),
        ("", {"message": lines[0], "source": "s", "attributes": {"k": "v" * 5000}}, "attributes['k']"),
    ):
        status, _, answer = call(server.http, "POST", f"/v1/score/event?{query}", event)
        assert status == 400 and answer["error"]["field"] == field, answer
