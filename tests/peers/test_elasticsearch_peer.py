"""The Elasticsearch stand-in, driven by the official ``elasticsearch`` client (9.x) and by raw HTTP: it stands
in for an Elasticsearch 9 cluster, so what the client accepts and how the answers are shaped is checked here
against the specification's behaviour (INTEGRATIONS.md §5)."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request

import pytest
from elasticsearch import ApiError, Elasticsearch, helpers

from peers.elasticsearch import ElasticsearchPeer


@pytest.fixture()
def es():
    with ElasticsearchPeer() as peer:
        yield peer


@pytest.fixture()
def client(es):
    with Elasticsearch(es.url, retry_on_status=(), max_retries=0) as c:
        yield c


def raw(url: str, body: bytes = b"", headers: dict | None = None, method: str = "POST"):
    request = urllib.request.Request(url, data=body or None, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


NDJSON = {"Content-Type": "application/x-ndjson"}


def test_startup_probes_as_logstash_and_the_client_make_them(es, client):
    """Logstash's pool checks HEAD /, GET / (version ≥ 7.14, X-Elastic-Product) and GET /_license."""
    status, headers, body = raw(es.url + "/", method="HEAD")
    assert status == 200 and headers["X-Elastic-Product"] == "Elasticsearch" and body == b""
    info = client.info()
    assert int(info["version"]["number"].split(".")[0]) >= 9
    assert client.license.get()["license"]["status"] == "active"
    status, headers, _ = raw(es.url + "/no-such-index/_doc/1", method="GET")
    assert status == 404 and headers["X-Elastic-Product"] == "Elasticsearch"


def test_bulk_items_in_order_with_results_and_path_default_index(es, client):
    response = client.bulk(
        index="logs-a",
        operations=[
            {"index": {"_id": "1"}},
            {"message": "one"},
            {"create": {"_id": "1"}},
            {"message": "dup"},
            {"create": {"_index": "logs-b"}},
            {"message": "two"},
            {"update": {"_id": "1"}},
            {"doc": {"extra": 1}},
            {"delete": {"_id": "nope"}},
            {"update": {"_id": "missing"}},
            {"doc": {"x": 1}},
        ],
    )
    items = [next(iter(i.items())) for i in response["items"]]
    assert [(op, r["status"]) for op, r in items] == [
        ("index", 201),
        ("create", 409),
        ("create", 201),
        ("update", 200),
        ("delete", 404),
        ("update", 404),
    ]
    assert response["errors"] is True
    assert items[1][1]["error"]["type"] == "version_conflict_engine_exception"
    assert items[2][1]["_index"] == "logs-b" and len(items[2][1]["_id"]) == 20
    assert items[5][1]["error"]["type"] == "document_missing_exception"
    assert es.sources("logs-a") == [{"message": "one", "extra": 1}]


def test_bulk_body_rules_blank_lines_crlf_gzip_newline_and_content_type(es):
    body = b'{"index":{"_index":"a"}}\r\n{"m":1}\r\n\n\n{"index":{"_index":"a"}}\n{"m":2}\n'
    headers = {**NDJSON, "Content-Encoding": "gzip"}
    status, _, answer = raw(es.url + "/_bulk", gzip.compress(body), headers, method="PUT")
    assert status == 200 and [i["index"]["status"] for i in json.loads(answer)["items"]] == [201, 201]
    assert es.requests[-1].body == body and es.requests[-1].raw != body
    status, _, answer = raw(es.url + "/_bulk", body.rstrip(b"\n"), NDJSON)
    assert status == 400 and "terminated by a newline" in json.loads(answer)["error"]["reason"]
    status, _, answer = raw(es.url + "/_bulk", body, {"Content-Type": "text/plain"})
    assert status == 406 and json.loads(answer) == {
        "error": "Content-Type header [text/plain] is not supported",
        "status": 406,
    }
    status, _, answer = raw(es.url + "/_bulk", b'{"index":{}}\n{"m":1}\n', NDJSON)
    assert status == 400 and "index is missing" in json.loads(answer)["error"]["reason"]
    status, _, answer = raw(es.url + "/_bulk", b'{"index":{"_index":"a"}}\n{not json\n', NDJSON)
    item = json.loads(answer)["items"][0]["index"]
    assert status == 200 and item["status"] == 400 and item["error"]["type"] == "document_parsing_exception"
    assert es.count("a") == 2


def test_filter_path_as_logstash_and_beats_send_it(es):
    body = b'{"index":{"_index":"a","_id":"1"}}\n{"m":1}\n{"create":{"_index":"a","_id":"1"}}\n{"m":1}\n'
    path = "/_bulk?filter_path=errors,items.*.error,items.*.status"
    status, _, answer = raw(es.url + path, body, NDJSON)
    found = json.loads(answer)
    conflict = found["items"][1]["create"]
    assert conflict["error"]["type"] == "version_conflict_engine_exception"
    assert found == {
        "errors": True,
        "items": [{"index": {"status": 201}}, {"create": {"status": 409, "error": conflict["error"]}}],
    }
    assert set(conflict) == {"status", "error"} and status == 200
    _, _, answer = raw(es.url + "/_bulk?filter_path=errors,items.*.error", body.replace(b"create", b"index"), NDJSON)
    assert json.loads(answer) == {"errors": False}  # nothing matched inside items: the array goes too
    _, _, answer = raw(es.url + "/a/_search?filter_path=-hits.hits._source,-took", b"{}", NDJSON)
    found = json.loads(answer)
    assert "took" not in found and "_source" not in found["hits"]["hits"][0] and found["hits"]["hits"][0]["_id"] == "1"


def test_streaming_bulk_retries_only_the_items_answered_429(es, client):
    es.fail_items(429, times=2, match=lambda item: item.id in ("3", "7"))
    docs = ({"_index": "logs", "_id": str(i), "message": f"m{i}"} for i in range(10))
    results = list(
        helpers.streaming_bulk(client, docs, chunk_size=10, max_retries=2, initial_backoff=0.01, raise_on_error=False)
    )
    assert all(ok for ok, _ in results) and len(results) == 10
    sent = [len(r.ndjson()) // 2 for r in es.bulk_requests()]
    assert sent == [10, 2]
    assert es.count("logs") == 10 and es.cluster.item_statuses[429] == 2


def test_whole_request_faults_and_the_transport_retry(es):
    es.fail_requests(503, times=2, path="/_bulk$")
    with Elasticsearch(es.url, retry_on_status=(429, 502, 503, 504), max_retries=3) as c:
        response = c.bulk(operations=[{"index": {"_index": "x"}}, {"m": 1}])
    assert not response["errors"] and [r.status for r in es.bulk_requests()] == [503, 503, 200]
    es.fail_requests(429, times=1, headers={"Retry-After": "2"})
    status, headers, answer = raw(es.url + "/_bulk", b'{"index":{"_index":"x"}}\n{"m":2}\n', NDJSON)
    assert status == 429 and headers["Retry-After"] == "2" and headers["X-Elastic-Product"] == "Elasticsearch"
    assert json.loads(answer)["error"]["type"] == "es_rejected_execution_exception"
    es.fail_requests(413, times=1)
    status, _, _ = raw(es.url + "/_bulk", b'{"index":{"_index":"x"}}\n{"m":3}\n', NDJSON)
    assert status == 413 and es.count("x") == 1
    es.fail_requests(disconnect="after", path="/_bulk$")
    with pytest.raises(OSError):
        raw(es.url + "/_bulk", b'{"index":{"_index":"x"}}\n{"m":4}\n', NDJSON)
    assert es.count("x") == 2  # carried out, the answer lost


def test_down_refuses_connections_and_up_keeps_the_data(es, client):
    client.index(index="keep", id="1", document={"a": 1})
    es.down()
    with pytest.raises(urllib.error.URLError):
        raw(es.url + "/", method="GET")
    es.up()
    assert client.get(index="keep", id="1")["_source"] == {"a": 1}


def test_point_in_time_paging_with_search_after_sees_a_snapshot(es, client):
    helpers.bulk(
        client,
        (
            {"_index": f"logs-{i % 2}", "_id": f"d{i}", "@timestamp": f"2026-01-01T00:00:{i // 3:02d}Z", "n": i}
            for i in range(25)
        ),
    )
    pit = client.open_point_in_time(index="logs-*", keep_alive="1m")["id"]
    client.index(index="logs-0", id="late", document={"@timestamp": "2026-01-01T00:00:00Z", "n": -1})
    seen, search_after = [], None
    while True:
        kwargs = {"search_after": search_after} if search_after else {}
        page = client.search(
            pit={"id": pit, "keep_alive": "1m"},
            sort=[{"@timestamp": "asc"}],
            size=4,
            seq_no_primary_term=True,
            query={"range": {"n": {"gte": 0}}},
            **kwargs,
        )
        hits = page["hits"]["hits"]
        if not hits:
            break
        assert page["pit_id"] == pit and page["hits"]["total"]["value"] == 25
        assert all(len(h["sort"]) == 2 and "_seq_no" in h and "_primary_term" in h for h in hits)
        seen += [h["_source"]["n"] for h in hits]
        search_after = hits[-1]["sort"]
    assert sorted(seen) == list(range(25)) and len(seen) == 25
    assert [n // 3 for n in seen] == sorted(n // 3 for n in seen)  # @timestamp order
    assert client.close_point_in_time(id=pit)["succeeded"] is True
    with pytest.raises(ApiError) as info:
        client.search(pit={"id": pit}, size=1)
    assert info.value.status_code == 404


def test_update_conflicts_retry_on_conflict_and_if_seq_no(es, client):
    client.index(index="u", id="1", document={"a": 1})
    es.conflict_updates(2)
    done = client.update(index="u", id="1", doc={"b": 2}, retry_on_conflict=2)
    assert done["result"] == "updated"
    es.conflict_updates(1)
    with pytest.raises(ApiError) as info:
        client.update(index="u", id="1", doc={"c": 3})
    assert info.value.status_code == 409
    doc = client.get(index="u", id="1")
    stale = {"if_seq_no": doc["_seq_no"] - 1, "if_primary_term": doc["_primary_term"]}
    response = client.bulk(
        operations=[
            {"update": {"_index": "u", "_id": "1", **stale}},
            {"doc": {"d": 4}},
            {"update": {"_index": "u", "_id": "1", "if_seq_no": doc["_seq_no"], "if_primary_term": 1}},
            {"doc": {"d": 4}},
            {"update": {"_index": "u", "_id": "1"}},
            {"doc": {"d": 4}},
        ]
    )
    assert [i["update"]["status"] for i in response["items"]] == [409, 200, 200]
    assert [i["update"]["result"] for i in response["items"][1:]] == ["updated", "noop"]
    assert client.get(index="u", id="1")["_source"] == {"a": 1, "b": 2, "d": 4}


def test_data_streams_take_create_only_and_backing_indices_take_updates(es, client):
    client.indices.put_index_template(name="ds", index_patterns=["logs-ds-*"], data_stream={}, priority=200)
    response = client.bulk(
        operations=[
            {"create": {"_index": "logs-ds-app"}},
            {"@timestamp": "2026-01-01T00:00:00Z", "message": "a"},
            {"index": {"_index": "logs-ds-app"}},
            {"@timestamp": "2026-01-01T00:00:00Z", "message": "b"},
            {"create": {"_index": "logs-ds-app"}},
            {"message": "no timestamp"},
        ]
    )
    created, refused, no_time = (next(iter(i.values())) for i in response["items"])
    assert created["status"] == 201 and created["_index"].startswith(".ds-logs-ds-app-")
    assert refused["status"] == 400 and "op_type of create" in refused["error"]["reason"]
    assert no_time["status"] == 400
    hit = client.search(index="logs-ds-app", seq_no_primary_term=True)["hits"]["hits"][0]
    assert hit["_index"] == created["_index"]
    done = client.bulk(
        operations=[
            {"index": {"_index": hit["_index"], "_id": hit["_id"], "if_seq_no": hit["_seq_no"], "if_primary_term": 1}},
            {**hit["_source"], "logwarden": {"status": "scored"}},
            {"update": {"_index": hit["_index"], "_id": hit["_id"], "retry_on_conflict": 3}},
            {"doc": {"logwarden": {"score": 0.25}}},
        ]
    )
    assert [next(iter(i.values()))["status"] for i in done["items"]] == [200, 200]
    assert es.sources("logs-ds-app")[0]["logwarden"] == {"status": "scored", "score": 0.25}
    stream = client.indices.get_data_stream(name="logs-ds-app")["data_streams"][0]
    assert stream["indices"][0]["index_name"] == created["_index"]


def test_templates_and_pipelines_are_stored_and_set_processors_run(es, client):
    client.cluster.put_component_template(
        name="lw-mappings",
        template={"mappings": {"properties": {"logwarden": {"properties": {"score": {"type": "float"}}}}}},
    )
    client.ingest.put_pipeline(
        id="mark", processors=[{"set": {"field": "logwarden.status", "value": "pending", "override": False}}]
    )
    client.indices.put_index_template(
        name="lw",
        index_patterns=["app-*"],
        composed_of=["lw-mappings"],
        template={"settings": {"index": {"final_pipeline": "mark"}}},
    )
    assert client.ingest.get_pipeline(id="mark")["mark"]["processors"][0]["set"]["value"] == "pending"
    assert client.indices.get_index_template(name="lw")["index_templates"][0]["index_template"]["composed_of"] == [
        "lw-mappings"
    ]
    client.bulk(
        operations=[
            {"index": {"_index": "app-1", "_id": "new"}},
            {"message": "m"},
            {"index": {"_index": "app-1", "_id": "scored"}},
            {"message": "m", "logwarden": {"status": "scored"}},
        ]
    )
    assert [s["logwarden"]["status"] for s in es.sources("app-1")] == ["pending", "scored"]
    mapping = client.indices.get_mapping(index="app-1")["app-1"]["mappings"]
    assert mapping["properties"]["logwarden"]["properties"]["score"]["type"] == "float"
    client.ingest.put_pipeline(id="painless", processors=[{"script": {"source": "ctx.x = 1"}}])
    answer = client.bulk(operations=[{"index": {"_index": "other", "pipeline": "painless"}}, {"m": 1}])
    assert answer["items"][0]["index"]["status"] == 400  # said, not silently skipped


def test_auth_is_required_when_configured():
    with ElasticsearchPeer(basic_auth=("elastic", "pw")) as peer:
        status, headers, body = raw(peer.url + "/", method="GET")
        assert status == 401 and json.loads(body)["error"]["type"] == "security_exception"
        assert "WWW-Authenticate" in headers and headers["X-Elastic-Product"] == "Elasticsearch"
        with Elasticsearch(peer.url, basic_auth=("elastic", "pw")) as c:
            assert c.info()["tagline"] == "You Know, for Search"


def test_client_compression_both_ways(es):
    with Elasticsearch(es.url, http_compress=True) as c:
        c.bulk(operations=[{"index": {"_index": "z"}}, {"m": 1}])
        assert c.search(index="z")["hits"]["total"]["value"] == 1
    bulk = es.bulk_requests()[-1]
    assert bulk.header("content-encoding") == "gzip"
    assert bulk.header("content-type").startswith("application/vnd.elasticsearch+x-ndjson")
