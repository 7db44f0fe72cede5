"""The Splunk HEC next hop against tests/peers/splunk_hec.py, a stand-in answering as Splunk's HTTP Event
Collector documents (status codes and ``{"text", "code", "invalid-event-number"}``)."""

from __future__ import annotations

import asyncio

import pytest
from peers.fluent_bit import event_time
from peers.splunk_hec import SplunkHecPeer

from logwarden.integrations.outputs.base import Chunk, NextHopError, Record
from logwarden.integrations.outputs.splunk_hec import HecConfig, SplunkHecOutput


@pytest.fixture
def hec():
    with SplunkHecPeer() as peer:
        yield peer


def _chunk(records: list[dict], tag: str = "app.web") -> Chunk:
    return Chunk(tag, [Record(event_time(1_700_000_000 + i, 500_000_000), r) for i, r in enumerate(records)], "k")


def _run(config: HecConfig, chunk: Chunk):
    async def go():
        out = SplunkHecOutput(config)
        await out.start()
        try:
            await out.send(chunk)
            return out.refused
        finally:
            await out.close()

    return asyncio.run(go())


def test_events_arrive_in_order_with_the_splunk_token(hec):
    records = [{"log": f"line {i}", "host": "dn1", "logwarden": {"status": "scored", "score": 0.1}} for i in range(5)]
    config = HecConfig(url=hec.url, token="hec-t0ken", index="main", max_batch_bytes=300)
    assert _run(config, _chunk(records)) == 0
    assert [e["event"]["log"] for e in hec.events] == [f"line {i}" for i in range(5)]
    first = hec.events[0]
    assert first["time"] == 1_700_000_000.5 and first["source"] == "app.web" and first["host"] == "dn1"
    assert first["index"] == "main" and first["sourcetype"] == "logwarden"
    assert first["event"]["logwarden"] == {"status": "scored", "score": 0.1}
    assert len(hec.requests) > 1  # batches of at most max_batch_bytes, concatenated events
    assert {r["headers"]["Authorization"] for r in hec.requests} == {"Splunk hec-t0ken"}


def test_busy_is_retried(hec):
    hec.busy(2)
    assert _run(HecConfig(url=hec.url, token="hec-t0ken"), _chunk([{"log": "a"}, {"log": "b"}])) == 0
    assert [e["event"]["log"] for e in hec.events] == ["a", "b"]
    assert len(hec.requests) == 3


def test_a_refused_event_is_dropped_and_logged_the_others_delivered(hec):
    refused = _run(HecConfig(url=hec.url, token="hec-t0ken"), _chunk([{"log": "a"}, {}, {"log": "c"}]))
    assert refused == 1
    assert [e["event"]["log"] for e in hec.events] == ["a", "c"]


def test_wrong_token_is_a_next_hop_error_not_a_drop(hec):
    with pytest.raises(NextHopError, match="HTTP 403 code 4"):
        _run(HecConfig(url=hec.url, token="nope"), _chunk([{"log": "a"}]))
    assert hec.events == []


def test_splunk_down_is_a_next_hop_error_then_back(hec):
    hec.down()
    with pytest.raises(NextHopError):
        _run(HecConfig(url=hec.url, token="hec-t0ken", budget_s=1, timeout_s=0.5), _chunk([{"log": "a"}]))
    hec.up()
    assert _run(HecConfig(url=hec.url, token="hec-t0ken"), _chunk([{"log": "a"}])) == 0
    assert len(hec.events) == 1
