"""The Logstash pipelines of plugins/logstash against the real scoring server's gateway.

Logstash is in no reachable registry, so nothing here runs Logstash: its ``http`` filter (logstash-filter-http)
is stood in for by an HTTP client doing what that filter is documented to do with the shipped settings —
``url``, ``verb``, ``headers``, ``body`` with ``%{[field]}`` references filled in (a reference to a missing
field stays literal), ``body_format`` json (application/json) or text (text/plain), the JSON answer set at
``target_body`` and copied into place by the pipeline's ``mutate``, ``_httprequestfailure`` on any other
status. The pipelines themselves are read with a small reader of Logstash's configuration syntax."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from logstash_config import env as substitute
from logstash_config import get_field, read_pipeline, sprintf

from logwarden.core.synthetic import generate
from logwarden.grpc_server.gateway.app import HttpGateway
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer
from logwarden.integrations.elasticsearch.settings import ProxySettings

PLUGINS = Path(__file__).resolve().parents[2] / "plugins" / "logstash"
LINES = generate(n_sessions=10, anomaly_rate=0.0, seed=31).lines


def gateway_url(bg: BackgroundServer) -> str:
    port = next(c for c in bg.server.companions if isinstance(c, HttpGateway)).port
    return f"http://127.0.0.1:{port}"


def pipeline(name: str):
    return read_pipeline((PLUGINS / name).read_text())


def http_filter(name: str, condition: str = ""):
    return next(p for p in pipeline(name)["filter"] if p.name == "http" and p.condition == condition)


@pytest.fixture(scope="module")
def gateway(model_root):
    settings = load_settings(None, model_path=model_root, grpc_port=0, http_port=0, batch_wait_ms=0)
    with BackgroundServer(settings) as bg:
        yield gateway_url(bg)


def send(settings: dict, event: dict, base_url: str, body_format: str | None = None, extra_headers=None):
    """What the http filter sends for ``event`` with these settings: (status, headers, parsed body or None)."""
    url = substitute(settings["url"], {"LOGWARDEN_URL": base_url})
    headers = {k: substitute(v, {"LOGWARDEN_TOKEN": ""}) for k, v in settings.get("headers", {}).items()}
    headers.update(extra_headers or {})
    body_format = body_format or settings.get("body_format", "text")
    body = sprintf(settings["body"], event)
    if body_format == "json":
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    else:
        data, headers["Content-Type"] = str(body).encode(), "text/plain"
    request = urllib.request.Request(url, data=data, headers=headers, method=settings.get("verb", "GET"))
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.headers, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read() or b"null")


def apply_copy(mutate_settings: dict, event: dict, metadata: dict) -> dict:
    """Logstash's ``mutate { copy => {...} }`` over an event whose @metadata is ``metadata``."""
    whole = {**event, "@metadata": metadata}
    for source, target in mutate_settings["copy"].items():
        value = get_field(whole, source)
        parts = target.strip("[]").split("][")
        node = event
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return event


def test_the_http_filter_pipeline_scores_an_event_and_copies_the_answer(gateway):
    base = gateway
    filt = http_filter("logwarden-http-filter.conf")
    assert filt.settings["verb"] == "POST" and filt.settings["target_body"] == "[@metadata][logwarden]"
    event = {"message": LINES[0], "host": {"name": "dn-1"}, "event": {"dataset": "hdfs"}}
    status, headers, answer = send(filt.settings, event, base)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert answer["logwarden"]["status"] == "scored" and answer["logwarden"]["source"] == "dn-1"
    copy = next(p for p in pipeline("logwarden-http-filter.conf")["filter"] if p.condition == "else")
    enriched = apply_copy(copy.settings, event, {"logwarden": answer})
    assert enriched["logwarden"] == answer["logwarden"]
    assert enriched["event"] == {"dataset": "hdfs", **answer["event"]}  # the event's own event.* kept


def test_a_missing_field_reference_is_sent_literally_and_read_as_absent(gateway):
    base = gateway
    filt = http_filter("logwarden-http-filter.conf")
    status, _, answer = send(filt.settings, {"message": LINES[1]}, base)
    assert sprintf(filt.settings["body"], {"message": "m"})["host"]["name"] == "%{[host][name]}"
    assert status == 200 and answer["logwarden"]["source"] != "%{[host][name]}"


def test_a_text_plain_body_is_the_raw_line(gateway):
    base = gateway
    settings = {**http_filter("logwarden-http-filter.conf").settings, "body": "%{[message]}"}
    settings["url"] = settings["url"].replace("source_field=host.name", "source=dn-2")
    status, headers, answer = send(settings, {"message": LINES[2]}, base, body_format="text")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert answer["logwarden"]["status"] == "scored" and answer["logwarden"]["source"] == "dn-2"


def test_an_event_without_a_line_is_a_400_and_goes_on_tagged(gateway):
    """A 400 means that event can never score; the filter tags it and the pipeline marks it unscored."""
    base = gateway
    status, _, answer = send(http_filter("logwarden-http-filter.conf").settings, {"host": {"name": "x"}}, base)
    assert status == 400 and answer["error"]["field"] == "message"
    failure = next(p for p in pipeline("logwarden-http-filter.conf")["filter"] if "_httprequestfailure" in p.condition)
    assert failure.settings["add_field"]["[logwarden][status]"] == "unscored"


def test_overload_and_deadline_answers_carry_what_a_retry_needs(model_root):
    """With the model held: the pipeline's request gets 504 when its X-Request-Timeout-Ms (2000) passes, and
    one more while the queue is full gets 429 with Retry-After; a waiting one is answered once it frees up."""
    settings = load_settings(
        None,
        model_path=model_root,
        grpc_port=0,
        http_port=0,
        batch_wait_ms=0,
        batch_max_events=1,
        queue_max_events=1,
        max_events_per_request=1,
    )
    filt = http_filter("logwarden-http-filter.conf")
    assert filt.settings["headers"]["X-Request-Timeout-Ms"] == "2000"

    def other(host: str) -> dict:  # a session of its own: requests for one session wait for each other
        return {"message": LINES[3], "host": {"name": host}}

    with BackgroundServer(settings) as bg:
        base = gateway_url(bg)
        detector = bg.server.holder.current.detector
        score_keys, entered, gate = detector.score_keys, threading.Event(), threading.Event()

        def gated(*args, **kwargs):
            entered.set()
            gate.wait(60)
            return score_keys(*args, **kwargs)

        detector.score_keys = gated
        held, waiting = [], []
        patient = {"X-Request-Timeout-Ms": "60000"}
        try:
            first = threading.Thread(target=lambda: held.append(send(filt.settings, other("dn-a"), base)))
            first.start()
            assert entered.wait(30)
            second = threading.Thread(
                target=lambda: waiting.append(send(filt.settings, other("dn-b"), base, None, patient))
            )
            second.start()
            for _ in range(500):
                if bg.server.scheduler.queued_events == 1:
                    break
                threading.Event().wait(0.01)
            status, headers, answer = send(filt.settings, other("dn-c"), base)
            assert status == 429 and int(headers["Retry-After"]) >= 1
            assert answer["error"]["code"] == "RESOURCE_EXHAUSTED"
            first.join(30)
        finally:
            gate.set()
        second.join(30)
    assert held[0][0] == 504 and held[0][2]["error"]["code"] == "DEADLINE_EXCEEDED"
    assert waiting[0][0] == 200 and waiting[0][2]["logwarden"]["status"] == "scored"


def test_the_output_pipeline_points_at_the_proxy_without_sniffing():
    (output,) = pipeline("logwarden-es-proxy-output.conf")["output"]
    assert output.name == "elasticsearch" and output.settings["sniffing"] is False
    host = substitute(output.settings["hosts"][0], {})
    assert host.endswith(f":{ProxySettings.model_fields['port'].default}")


def test_the_session_end_pipeline_marks_quiet_sessions():
    filters = pipeline("logwarden-session-end.conf")["filter"]
    (aggregate,) = [p for p in filters if p.name == "aggregate"]
    assert aggregate.settings["task_id"] == "%{[logwarden][session_key]}"
    assert aggregate.settings["push_map_as_event_on_timeout"] is True and aggregate.settings["inactivity_timeout"] > 0
    (tag,) = aggregate.settings["timeout_tags"]
    session = next(p for p in filters if p.name == "http" and tag in p.condition)
    assert session.settings["body"]["session_end"] is True
    assert "session_end_field=session_end" in session.settings["url"]


def session_end_run(gateway: str, lines: list[str], key: str, host: str) -> dict:
    """Logstash running logwarden-session-end.conf over one session's lines: each event through the pipeline's
    first http filter, then the aggregate filter's summary event through the second; the summary event as the
    last mutate leaves it."""
    filters = pipeline("logwarden-session-end.conf")["filter"]
    per_event = next(p for p in filters if p.name == "http" and not p.condition)
    for line in lines:
        event = {"message": line, "host": {"name": host}, "logwarden": {"session_key": key}}
        status, _, answer = send(per_event.settings, event, gateway)
        assert status == 200 and answer["logwarden"]["session_key"] == key
        assert "session" not in answer["logwarden"]  # the session is still open
    (aggregate,) = [p for p in filters if p.name == "aggregate"]
    (tag,) = aggregate.settings["timeout_tags"]
    summary = {"message": lines[-1], "host": {"name": host}, "logwarden": {"session_key": key, "session_end": True}}
    session_filter = next(p for p in filters if p.name == "http" and tag in p.condition)
    status, _, answer = send(session_filter.settings, summary, gateway)
    assert status == 200
    mutate = next(p for p in filters if p.name == "mutate" and tag in p.condition)
    return apply_copy(mutate.settings, summary, {"logwarden_session": answer})


def test_the_session_end_pipeline_judges_the_end_of_a_quiet_session(gateway):
    """Stands for Logstash's aggregate filter closing two HDFS sessions after their inactivity timeout: the
    summary event comes back with the session's verdict under ``logwarden.session`` — a session that stopped
    after its first events is anomalous, a whole one is not."""
    (grok,) = [p for p in pipeline("logwarden-session-end.conf")["filter"] if p.name == "grok"]
    pattern = grok.settings["match"]["message"].replace("(?<[logwarden][session_key]>", "(?P<key>")
    by_session: dict[str, list[str]] = {}
    for line in LINES:
        if found := re.search(pattern, line):
            by_session.setdefault(found["key"], []).append(line)
    (whole_key, whole), (cut_key, cut) = list(by_session.items())[:2]
    whole_verdict = session_end_run(gateway, whole, whole_key, "dn-8")["logwarden"]["session"]
    cut_verdict = session_end_run(gateway, cut[:2], cut_key, "dn-9")["logwarden"]["session"]
    assert whole_verdict["verdict"] == "normal", whole_verdict
    assert cut_verdict["verdict"] == "anomalous", cut_verdict
