"""The Elasticsearch bulk next hop (on the official client's async bulk helper) against tests/peers/elasticsearch.py,
a stand-in faithful to Elasticsearch 9's ``_bulk`` API (per-item 429/409/400, whole-request 429/503,
``X-Elastic-Product``)."""

from __future__ import annotations

import asyncio

import pytest
from peers.elasticsearch import ElasticsearchPeer
from peers.fluent_bit import event_time

from logwarden.integrations.outputs.base import Chunk, NextHopError, Record
from logwarden.integrations.outputs.elasticsearch import ElasticsearchConfig, ElasticsearchOutput

INDEX = "logs-logwarden"


@pytest.fixture
def es():
    with ElasticsearchPeer() as peer:
        yield peer


def _chunk(n: int = 5, key: str = "chunk-1") -> Chunk:
    records = [
        Record(event_time(1_700_000_000 + i), {"log": f"line {i}", "seq": i, "logwarden": {"status": "scored"}})
        for i in range(n)
    ]
    return Chunk("app.web", records, key)


def _send(es: ElasticsearchPeer, *chunks: Chunk, **config) -> None:
    async def go() -> None:
        out = ElasticsearchOutput(ElasticsearchConfig(url=es.url, initial_backoff_s=0.01, **config))
        await out.start()
        try:
            for chunk in chunks:
                await out.send(chunk)
        finally:
            await out.close()

    asyncio.run(go())


def _seqs(es) -> list[int]:
    return sorted(s["seq"] for s in es.sources(INDEX))


def test_documents_are_created_with_timestamp_and_enrichment(es):
    _send(es, _chunk(), tag_key="fluent_tag")
    sources = es.sources(INDEX)
    assert [s["log"] for s in sources] == [f"line {i}" for i in range(5)]
    assert sources[0]["@timestamp"] == "2023-11-14T22:13:20.000Z" and sources[0]["fluent_tag"] == "app.web"
    assert sources[0]["logwarden"] == {"status": "scored"}


def test_only_items_refused_with_429_are_retried(es):
    es.fail_items(429, times=2)
    _send(es, _chunk())
    assert _seqs(es) == [0, 1, 2, 3, 4]
    sizes = [r.body.count(b"\n") // 2 for r in es.bulk_requests()]
    assert sizes == [5, 2]  # the retry carried the two refused items only


def test_a_permanently_refused_item_is_logged_and_the_chunk_completes(es):
    es.fail_items(400, match=lambda item: item.source is not None and item.source.get("seq") == 2)
    _send(es, _chunk())
    assert _seqs(es) == [0, 1, 3, 4]
    assert len(es.bulk_requests()) == 1  # a 400 is not retried


def test_whole_request_503_is_retried(es):
    es.fail_requests(503, times=2, path="/_bulk")
    _send(es, _chunk())
    assert _seqs(es) == [0, 1, 2, 3, 4]


def test_a_resent_chunk_is_not_indexed_twice(es):
    _send(es, _chunk(), _chunk())  # the ack was lost: the same chunk (same key) comes again
    assert _seqs(es) == [0, 1, 2, 3, 4]


def test_items_still_refused_after_the_retries_fail_the_chunk(es):
    es.fail_items(429, times=1000)
    with pytest.raises(NextHopError, match="5 of 5 documents not accepted"):
        _send(es, _chunk(), max_retries=2)


def test_cluster_down_fails_the_chunk(es):
    es.down()
    with pytest.raises(NextHopError):
        _send(es, _chunk(), max_retries=0, timeout_s=1)
    es.up()
    _send(es, _chunk())
    assert _seqs(es) == [0, 1, 2, 3, 4]
