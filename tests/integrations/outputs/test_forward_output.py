"""The Forward next hop against @fluent-org/logger's ``FluentServer`` (a third-party ``in_forward``, standing for
a Fluentd or Fluent Bit aggregator; it reads ``[time, record]`` entries only) and against LogWarden's own
receiver (which, like Fluent Bit ≥ 5.0.5's ``in_forward``, reads the v2 ``[[time, metadata], record]`` shape)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from peers import fluent_node
from peers.fluent_bit import event_time

from logwarden.integrations.outputs.base import Chunk, NextHopError, Record
from logwarden.integrations.outputs.forward import ForwardConfig, ForwardOutput

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fluent"))
from fluent_support import BackgroundReceiver, MemoryNextHop, until


def _chunk(n: int = 3, tag: str = "out.test") -> Chunk:
    records = [
        Record(event_time(1_700_000_000 + i, 5), {"log": f"line {i}", "logwarden": {"status": "scored"}}, {"m": i})
        for i in range(n)
    ]
    return Chunk(tag, records, key=f"k{n}")


async def _send(config: ForwardConfig, *chunks: Chunk) -> None:
    out = ForwardOutput(config)
    await out.start()
    try:
        for chunk in chunks:
            await out.send(chunk)
    finally:
        await out.close()


@pytest.mark.parametrize("compress", ["none", "gzip"])
@pytest.mark.parametrize("shared_key", [None, "s3cret"], ids=["plain", "shared-key"])
def test_fluent_server_receives_every_record_in_order(compress, shared_key):
    with fluent_node.FluentServerPeer(shared_key=shared_key) as peer:
        config = ForwardConfig(port=peer.port, shared_key=shared_key, compress=compress, retain_metadata=False)
        asyncio.run(_send(config, _chunk(3), _chunk(2, "out.other")))
        until(lambda: len(peer.received()) == 5, "5 entries at the aggregator")
    entries = peer.received()
    assert [e["tag"] for e in entries] == ["out.test"] * 3 + ["out.other"] * 2
    assert [e["record"]["log"] for e in entries[:3]] == ["line 0", "line 1", "line 2"]
    assert entries[0]["time"] == [1_700_000_000, 5] and entries[0]["record"]["logwarden"] == {"status": "scored"}


def test_wrong_shared_key_is_a_next_hop_error():
    with fluent_node.FluentServerPeer(shared_key="right") as peer:
        config = ForwardConfig(port=peer.port, shared_key="wrong", budget_s=3)
        with pytest.raises(NextHopError, match=r"refused the handshake|closed"):
            asyncio.run(_send(config, _chunk(1)))
        assert peer.received() == []


def test_aggregator_down_then_back():
    peer = fluent_node.FluentServerPeer().start()
    config = ForwardConfig(port=peer.port, retain_metadata=False, budget_s=2, timeout_s=1)

    async def scenario() -> None:
        out = ForwardOutput(config)
        await out.start()
        await out.send(_chunk(1))
        peer.kill()
        with pytest.raises(NextHopError):
            await out.send(_chunk(2))
        peer.clear()
        peer.start()  # same port
        await out.send(_chunk(3))  # the pooled dead connection is replaced
        await out.close()

    try:
        asyncio.run(scenario())
        until(lambda: len(peer.received()) == 3, "the 3 records sent after the restart")
    finally:
        peer.close()


def test_v2_entries_keep_their_metadata_over_tls(pki):
    hop = MemoryNextHop()
    with BackgroundReceiver(None, hop, shared_key="k", tls_cert=pki / "server.pem", tls_key=pki / "server.key") as bg:
        config = ForwardConfig(
            port=bg.port, shared_key="k", tls=True, ca_file=pki / "ca.pem", server_name="localhost", compress="gzip"
        )
        asyncio.run(_send(config, _chunk(3)))
    assert [r.metadata for r in hop.records] == [{"m": 0}, {"m": 1}, {"m": 2}]
    assert hop.records[0].time == event_time(1_700_000_000, 5)
