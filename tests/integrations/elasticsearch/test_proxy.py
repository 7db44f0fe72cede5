"""``logwarden es-proxy`` between real clients and the Elasticsearch stand-in (tests/peers/elasticsearch.py,
standing in for an Elasticsearch 9 cluster), scoring with a real LogWarden server.

The official ``elasticsearch`` client (9.x) is the shipper where it can be; raw HTTP sends the bodies
other shippers send (INTEGRATIONS.md §5.1: syslog-ng ``application/x-ndjson`` POSTs, Logstash's
``application/json`` with ``filter_path``, Fluent Bit's gzip ``create`` bulks)."""

from __future__ import annotations

import gzip
import json
import ssl
import urllib.error
import urllib.request

import pytest
from elasticsearch import ApiError, Elasticsearch, helpers
from es_support import LINES, BackgroundProxy
from peers.elasticsearch import ElasticsearchPeer

from logwarden.integrations.elasticsearch.proxy import EsProxy

NDJSON = {"Content-Type": "application/x-ndjson"}


def raw(url: str, body: bytes | None = None, headers: dict | None = None, method: str = "POST", context=None):
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def bulk_lines(n: int, index: str | None = "logs-hdfs", op: str = "index", start: int = 0) -> list[dict]:
    out = []
    for i in range(start, start + n):
        meta = {"_index": index} if index else {}
        out += [{op: meta}, {"message": LINES[i % len(LINES)], "seq": i, "@timestamp": "2026-01-01T00:00:00Z"}]
    return out


def ndjson(lines: list[dict], ending: bytes = b"\n") -> bytes:
    return b"".join(json.dumps(x).encode() + ending for x in lines)


def scored_events(scorer) -> float:
    """Events the scoring server has scored (its own Prometheus counter)."""
    total = 0.0
    for metric in scorer.server.metrics.registry.collect():
        if metric.name == "logwarden_events":
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


def test_client_bulk_is_enriched_and_everything_else_kept(proxy, es):
    """elasticsearch-py ``bulk`` with ``http_compress=True`` (PUT /_bulk, vnd.elasticsearch+x-ndjson, gzip)."""
    es_direct = Elasticsearch(es.url)
    es_direct.index(index="logs-hdfs", id="u1", document={"message": LINES[0], "n": 1})
    operations = [
        {"index": {"_index": "logs-hdfs", "_id": "a"}},
        {"message": LINES[1], "event": {"dataset": "hdfs"}},
        {"update": {"_index": "logs-hdfs", "_id": "u1"}},
        {"doc": {"n": 2}},
        {"create": {"_index": "logs-hdfs", "_id": "b"}},
        {"no_message": "left alone"},
        {"delete": {"_index": "logs-hdfs", "_id": "gone"}},
        {"create": {"_index": "logs-hdfs"}},
        {"message": LINES[2]},
    ]
    with Elasticsearch(proxy.url, http_compress=True) as client:
        answer = client.bulk(operations=operations, refresh="true", filter_path="errors,items.*.status")
    assert answer.body == {
        "errors": False,
        "items": [
            {"index": {"status": 201}},
            {"update": {"status": 200}},
            {"create": {"status": 201}},
            {"delete": {"status": 404}},
            {"create": {"status": 201}},
        ],
    }
    forwarded = es.bulk_requests()[-1]
    assert forwarded.method == "PUT"
    assert sorted(forwarded.query) == [("filter_path", "errors,items.*.status"), ("refresh", "true")]
    assert forwarded.header("content-encoding") == "gzip"
    assert forwarded.header("content-type") == "application/vnd.elasticsearch+x-ndjson; compatible-with=9"
    assert int(forwarded.header("content-length")) == len(forwarded.raw)
    lines = forwarded.ndjson()
    assert len(lines) == len(operations) and lines[2:4] == operations[2:4] and lines[6] == operations[6]
    assert [lines[i] for i in (0, 4, 5, 7)] == [operations[i] for i in (0, 4, 5, 7)]
    docs = {h["_id"]: h["_source"] for h in es.hits("logs-hdfs")}
    assert docs["a"]["logwarden"]["status"] == "scored" and docs["a"]["event"]["dataset"] == "hdfs"
    assert (
        0 <= docs["a"]["event"]["risk_score"] <= 100
        and docs["a"]["event"]["risk_score_norm"] == docs["a"]["event"]["risk_score"]
    )
    assert docs["u1"] == {"message": LINES[0], "n": 2}  # the update passed untouched
    assert docs["b"] == {"no_message": "left alone"}
    auto = [s for i, s in docs.items() if i not in ("a", "b", "u1")]
    assert auto[0]["logwarden"]["template"] and auto[0]["logwarden"]["model_version"]


def test_ndjson_as_other_shippers_write_it(proxy, es):
    """syslog-ng (POST /_bulk, x-ndjson), Logstash (application/json, filter_path), Fluent Bit (gzip, create),
    a path default index, blank lines and CRLF: every line that is not an enriched source goes byte for byte."""
    body = (
        b"\r\n"
        + b'{"create":{}}\r\n'
        + json.dumps({"message": LINES[3], "host": {"name": "dn1"}}).encode()
        + b"\r\n\n"
        + b'{"index":{"_index":"other"}}\n{"message": "not json\n'
        + b'{"index":{"_index":"other"}}\n{ "kept" :  "as is" }\n'
    )
    status, headers, answer = raw(
        proxy.url + "/logs-fb/_bulk?filter_path=errors,items.*.error,items.*.status",
        gzip.compress(body),
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert status == 200 and headers["X-Elastic-Product"] == "Elasticsearch"
    items = json.loads(answer)["items"]
    assert [next(iter(i.values()))["status"] for i in items] == [201, 400, 201]
    forwarded = es.bulk_requests()[-1].body.splitlines(keepends=True)
    original = body.splitlines(keepends=True)
    assert len(forwarded) == len(original)
    changed = [i for i, (a, b) in enumerate(zip(forwarded, original, strict=True)) if a != b]
    assert changed == [2]  # only the enriched source line
    assert forwarded[2].endswith(b"\r\n")
    enriched = json.loads(forwarded[2])
    assert enriched["host"] == {"name": "dn1"} and enriched["logwarden"]["status"] == "scored"
    assert es.sources("logs-fb")[0]["logwarden"]["status"] == "scored"
    # an action line that is not an action: the whole body goes as it came, the cluster answers for it
    unreadable = ndjson([{"index": {"_index": "x"}, "extra": 1}, {"message": LINES[0]}])
    status, _, answer = raw(proxy.url + "/_bulk", unreadable, NDJSON)
    assert status == 400 and es.bulk_requests()[-1].body == unreadable
    # no final newline: forwarded as it came, the cluster's 400 relayed
    status, _, answer = raw(proxy.url + "/_bulk", b'{"index":{"_index":"x"}}\n{"message":"m"}', NDJSON)
    assert status == 400 and "terminated by a newline" in json.loads(answer)["error"]["reason"]


def test_sources_rewritten_keep_big_integers_and_escaped_surrogates(proxy, es):
    """A source that already has ``event`` fields is merged and written anew: an integer beyond 64 bits stays
    exact and a lone surrogate written as an escape stays that escape (both legal JSON that Elasticsearch takes);
    a source without them is spliced, its own bytes untouched."""
    merged = (
        b'{"message":%s,"event":{"kind":"event"},"big":18446744073709551617,"odd":"\\ud800"}'
        % json.dumps(LINES[1]).encode()
    )
    spliced = b'{"message":%s,"odd":"\\udfff x"}' % json.dumps(LINES[2]).encode()
    body = b'{"index":{"_index":"logs-odd"}}\n' + merged + b'\n{"index":{"_index":"logs-odd"}}\n' + spliced + b"\n"
    status, _, answer = raw(proxy.url + "/_bulk", body, NDJSON)
    assert status == 200 and not json.loads(answer)["errors"]
    forwarded = es.bulk_requests()[-1].body.splitlines()
    first = json.loads(forwarded[1])
    assert first["big"] == 18446744073709551617 and first["odd"] == "\ud800"
    assert first["event"]["kind"] == "event" and "risk_score" in first["event"]
    assert first["logwarden"]["status"] == "scored"
    assert forwarded[3].startswith(spliced[:-1]) and json.loads(forwarded[3])["logwarden"]["status"] == "scored"


def test_answers_are_relayed_byte_for_byte(proxy, es):
    """Per-item errors, whole-request 429/503/413 with their bodies and headers, as the cluster sent them."""
    scripted = b'{"took":3,"errors":true,"items":[{"index":{"_index":"x","_id":"1","status":429,"error":{"type":"es_rejected_execution_exception","reason":"busy"}}}]}'  # noqa: E501
    es.fail_requests(200, body=scripted, headers={"Content-Type": "application/json", "X-Custom": "1"})
    status, headers, answer = raw(proxy.url + "/_bulk", ndjson(bulk_lines(1, "x")), NDJSON)
    assert (status, answer, headers["X-Custom"]) == (200, scripted, "1")
    for code in (429, 503, 413):
        es.fail_requests(code, headers={"Retry-After": "7"})
        status, headers, answer = raw(proxy.url + "/_bulk", ndjson(bulk_lines(1, "x")), NDJSON)
        direct = json.loads(answer)
        assert status == code and headers["Retry-After"] == "7" and direct["status"] == code
        assert headers["X-Elastic-Product"] == "Elasticsearch"
    assert es.count("x") == 0


def test_startup_probes_search_and_auth_pass_through(scorer):
    """Logstash's probes (HEAD /, GET /, GET /_license), searches, PIT and a gzip answer, against a cluster
    that requires basic auth: the shipper's Authorization header reaches it."""
    with (
        ElasticsearchPeer(basic_auth=("elastic", "pw")) as es,
        BackgroundProxy(upstream=es.url, scorer=scorer.target) as proxy,
    ):
        status, headers, _ = raw(proxy.url + "/", method="HEAD")
        assert status == 401 and "WWW-Authenticate" in headers
        with Elasticsearch(proxy.url, basic_auth=("elastic", "pw"), http_compress=True) as client:
            assert client.info()["version"]["number"].startswith("9.")
            assert client.license.get()["license"]["status"] == "active"
            helpers.bulk(client, ({"_index": "logs-a", "message": line} for line in LINES[:30]))
            pit = client.open_point_in_time(index="logs-a", keep_alive="1m")["id"]
            page = client.search(pit={"id": pit}, size=5, sort=[{"_doc": "asc"}])
            assert len(page["hits"]["hits"]) == 5 and page["hits"]["total"]["value"] == 30
            assert client.close_point_in_time(id=pit)["succeeded"]
        search = [r for r in es.requests if r.path == "/_search"][-1]
        assert search.header("authorization").startswith("Basic ")
        assert search.header("accept-encoding") == "gzip"
        status, headers, answer = raw(
            proxy.url + "/logs-a/_count",
            b"{}",
            {**NDJSON, "Authorization": search.header("authorization"), "Accept-Encoding": "gzip"},
        )
        assert headers["Content-Encoding"] == "gzip" and json.loads(gzip.decompress(answer))["count"] == 30


def test_cluster_down_is_a_502_in_elasticsearch_shape(proxy, es):
    es.down()
    status, headers, answer = raw(proxy.url + "/_bulk", ndjson(bulk_lines(2)), NDJSON)
    body = json.loads(answer)
    assert status == 502 and headers["X-Elastic-Product"] == "Elasticsearch"
    assert body["status"] == 502 and body["error"]["type"] == "logwarden_proxy_upstream_exception"
    assert body["error"]["root_cause"][0]["reason"].startswith("cannot reach")
    with Elasticsearch(proxy.url, max_retries=0) as client, pytest.raises(ApiError) as info:
        client.info()
    assert info.value.status_code == 502
    es.up()
    with Elasticsearch(proxy.url) as client:
        assert not client.bulk(operations=bulk_lines(2))["errors"]
    assert es.count("logs-hdfs") == 2


def test_scorer_down_documents_go_on_unscored(es):
    """Fail-open: no scorer on the port, every document is indexed with logwarden.status unscored."""
    with BackgroundProxy(upstream=es.url, scorer="127.0.0.1:1", score_budget_s=0.5) as proxy:
        with Elasticsearch(proxy.url) as client:
            answer = client.bulk(operations=bulk_lines(5))
        assert not answer["errors"]
        sources = es.sources("logs-hdfs")
        assert len(sources) == 5
        assert all(s["logwarden"]["status"] == "unscored" and s["logwarden"]["reason"] for s in sources)
        assert all("event" not in s for s in sources)
        metrics = urllib.request.urlopen(proxy.metrics_url, timeout=10).read().decode()
        assert 'logwarden_es_proxy_documents_total{outcome="unscored"} 5.0' in metrics
        assert 'logwarden_es_proxy_items_total{status="201"} 5.0' in metrics


def test_a_replayed_bulk_is_scored_once(proxy, es, scorer):
    """A shipper's retry (same body bytes) reuses the first enrichment: the server scores the bulk once and
    the cluster gets identical documents."""
    body = ndjson(bulk_lines(20, start=100))
    before = scored_events(scorer)
    es.fail_requests(503, path="/_bulk$")
    assert raw(proxy.url + "/_bulk", body, NDJSON)[0] == 503
    after_first = scored_events(scorer)
    assert raw(proxy.url + "/_bulk", body, NDJSON)[0] == 200
    assert after_first - before == 20 and scored_events(scorer) == after_first
    first, second = es.bulk_requests()[-2:]
    assert first.body == second.body and es.count("logs-hdfs") == 20


def test_streaming_bulk_retries_items_answered_429(proxy, es):
    """elasticsearch-py ``streaming_bulk``: only the items answered 429 are sent again, and they are enriched."""
    es.fail_items(429, times=3)
    with Elasticsearch(proxy.url) as client:
        results = list(
            helpers.streaming_bulk(
                client, bulk_docs(50), chunk_size=25, max_retries=3, initial_backoff=0.01, raise_on_error=False
            )
        )
    assert len(results) == 50 and all(ok for ok, _ in results)
    assert [len(r.ndjson()) // 2 for r in es.bulk_requests()] == [25, 3, 25]  # a chunk's 429s, then the next
    seqs = sorted(s["seq"] for s in es.sources("logs-hdfs"))
    assert seqs == list(range(50))
    assert all(s["logwarden"]["status"] == "scored" for s in es.sources("logs-hdfs"))


def bulk_docs(n: int):
    return ({"_index": "logs-hdfs", "message": LINES[i % len(LINES)], "seq": i} for i in range(n))


def test_retry_429_inside_the_proxy_for_fluent_bit(es, scorer):
    """Fluent Bit drops items answered 429 when another item of its chunk succeeded (§5.3): with retry_429
    the proxy retries them itself and relays their later answers in their places."""
    with BackgroundProxy(upstream=es.url, scorer=scorer.target, retry_429=3, retry_429_backoff_s=0.01) as proxy:
        es.fail_items(429, times=2, match=lambda item: item.source["seq"] in (1, 3))
        body = ndjson(bulk_lines(4, op="create"))
        status, _, answer = raw(proxy.url + "/_bulk", gzip.compress(body), {**NDJSON, "Content-Encoding": "gzip"})
    items = json.loads(answer)["items"]
    assert status == 200 and json.loads(answer)["errors"] is False
    assert [i["create"]["status"] for i in items] == [201, 201, 201, 201]
    retry = es.bulk_requests()[-1]
    assert [d.get("seq") for d in retry.ndjson()[1::2]] == [1, 3]
    assert retry.ndjson()[1]["logwarden"]["status"] == "scored"
    assert sorted(s["seq"] for s in es.sources("logs-hdfs")) == [0, 1, 2, 3]


def test_data_stream_create_from_a_fluent_bit_style_bulk(proxy, es):
    Elasticsearch(es.url).indices.put_index_template(name="ds", index_patterns=["logs-fb-*"], data_stream={})
    lines = [{"create": {"_index": "logs-fb-app"}}, {"@timestamp": "2026-01-01T00:00:00.000Z", "message": LINES[5]}]
    status, _, answer = raw(proxy.url + "/_bulk", gzip.compress(ndjson(lines)), {**NDJSON, "Content-Encoding": "gzip"})
    item = json.loads(answer)["items"][0]["create"]
    assert status == 200 and item["status"] == 201 and item["_index"].startswith(".ds-logs-fb-app-")
    assert es.sources("logs-fb-app")[0]["logwarden"]["status"] == "scored"


def test_rules_choose_the_message_field_source_and_model(es, scorer):
    rules = [
        {"pattern": "skip-*", "score": False},
        {"pattern": "app-*", "message_field": "log.original", "source_field": "host.name"},
    ]
    with BackgroundProxy(upstream=es.url, scorer=scorer.target, rules=rules) as proxy:
        docs = [
            {"index": {"_index": "skip-1"}},
            {"message": LINES[0]},
            {"index": {"_index": "app-1"}},
            {"log": {"original": LINES[0]}, "host": {"name": "dn7"}},
            {"index": {"_index": "nomatch"}},
            {"message": LINES[0]},
        ]
        assert raw(proxy.url + "/_bulk", ndjson(docs), NDJSON)[0] == 200
    assert es.sources("skip-1") == [{"message": LINES[0]}]
    assert es.sources("nomatch") == [{"message": LINES[0]}]
    assert es.sources("app-1")[0]["logwarden"]["status"] == "scored"


def test_tls_both_sides_and_body_limit(pki, scorer):
    """The proxy terminates TLS itself and talks TLS to an https cluster (verified with a CA bundle)."""
    upstream_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    upstream_tls.load_cert_chain(pki / "server.pem", pki / "server.key")
    with (
        ElasticsearchPeer(ssl_context=upstream_tls) as es,
        BackgroundProxy(
            upstream=es.url,
            upstream_ca=pki / "ca.pem",
            scorer=scorer.target,
            tls_cert=pki / "server.pem",
            tls_key=pki / "server.key",
            max_body_bytes=4096,
        ) as proxy,
    ):
        assert proxy.url.startswith("https://") and es.url.startswith("https://")
        with Elasticsearch(proxy.url, ca_certs=str(pki / "ca.pem")) as client:
            assert not client.bulk(operations=bulk_lines(3))["errors"]
        assert es.count("logs-hdfs") == 3
        context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        status, headers, answer = raw(proxy.url + "/_bulk", ndjson(bulk_lines(40)), NDJSON, context=context)
        assert status == 413 and headers["X-Elastic-Product"] == "Elasticsearch"
        assert json.loads(answer)["error"]["type"] == "content_too_long_exception"


def test_scoring_off_passes_bulks_through_untouched(es, scorer):
    with BackgroundProxy(upstream=es.url, scorer=scorer.target, score=False) as proxy:
        body = ndjson(bulk_lines(3))
        assert raw(proxy.url + "/_bulk", body, NDJSON)[0] == 200
    assert es.bulk_requests()[-1].body == body
    assert all("logwarden" not in s for s in es.sources("logs-hdfs"))


def test_the_same_bulk_through_two_proxies_is_scored_once_by_the_server(es, scorer):
    """The proxies' idempotency key (SHA-256 of the decompressed body) lets the server answer a replay from its
    memory: a bulk retried through another proxy replica (no shared replay cache) advances no window twice."""
    body = ndjson(bulk_lines(10, start=300))
    with (
        BackgroundProxy(upstream=es.url, scorer=scorer.target) as first,
        BackgroundProxy(upstream=es.url, scorer=scorer.target) as second,
    ):
        before = scored_events(scorer)
        assert raw(first.url + "/_bulk", body, NDJSON)[0] == 200
        once = scored_events(scorer)
        assert raw(second.url + "/_bulk", body, NDJSON)[0] == 200
    assert once - before == 10
    assert scored_events(scorer) == once
    first_body, second_body = (r.body for r in es.bulk_requests()[-2:])
    assert first_body == second_body


def test_a_fault_of_the_proxy_is_a_500_the_shipper_retries(proxy, es, monkeypatch):
    async def broken(self, parsed, key):
        raise RuntimeError("a bug")

    monkeypatch.setattr(EsProxy, "_score", broken)
    status, headers, answer = raw(proxy.url + "/_bulk", ndjson(bulk_lines(2)), NDJSON)
    assert status == 500 and headers["X-Elastic-Product"] == "Elasticsearch"
    assert json.loads(answer)["error"]["type"] == "logwarden_proxy_exception" and es.count("logs-hdfs") == 0
    monkeypatch.undo()
    assert raw(proxy.url + "/_bulk", ndjson(bulk_lines(2)), NDJSON)[0] == 200 and es.count("logs-hdfs") == 2
