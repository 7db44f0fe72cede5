"""Third-party Forward clients through the receiver: the npm package @fluent-org/logger 1.0.10 (a complete
Forward client: Message, Forward, PackedForward and CompressedPackedForward, acks, shared-key handshake;
standing for Fluent Bit's and Fluentd's ``forward`` outputs) and the PyPI package fluent-logger 0.11.1
(Message mode, no ack: what Python applications send)."""

from __future__ import annotations

import pytest
from fluent import sender
from fluent_support import BackgroundReceiver, MemoryNextHop, until
from peers import fluent_node

from logwarden.core.synthetic import generate

LINES = generate(n_sessions=3, anomaly_rate=0.0, seed=8).lines
MODES = ["Message", "Forward", "PackedForward", "CompressedPackedForward"]


def _events(n: int = 4) -> list[dict]:
    events = []
    for i, line in enumerate(LINES[:n]):
        time = [1_700_000_000 + i, 123] if i % 2 == 0 else None  # EventTime, or the client's default time
        events.append({"record": {"message": line, "seq": i}, "time": time})
    return events


@pytest.fixture(scope="module")
def plain(scorer):
    with BackgroundReceiver(scorer.target, MemoryNextHop()) as bg:
        yield bg


@pytest.fixture(scope="module")
def secure(scorer):
    with BackgroundReceiver(scorer.target, MemoryNextHop(), shared_key="s3cret") as bg:
        yield bg


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("handshake", [False, True], ids=["plain", "shared-key"])
def test_fluent_org_logger_every_mode_with_acks(plain, secure, mode, handshake):
    bg = secure if handshake else plain
    hop = bg.next_hop
    before = len(hop.records)
    tag = f"app.{mode.lower()}.{handshake}"
    options = {"mode": mode, "ack": True}
    if handshake:
        options.update(sharedKey="s3cret", clientHostname="node-client")
    result = fluent_node.send(bg.port, tag, _events(), **options)
    assert result == {"sent": 4, "acked": 4, "errors": []}
    records = [r for c in hop.chunks if c.tag == tag for r in c.records]
    assert len(hop.records) - before == 4
    assert [r.record["seq"] for r in records] == [0, 1, 2, 3]
    assert [r.record["message"] for r in records] == LINES[:4]
    assert {r.record["logwarden"]["status"] for r in records} == {"scored"}


def test_fluent_org_logger_with_a_wrong_shared_key_is_refused(secure):
    before = len(secure.next_hop.records)
    result = fluent_node.send(secure.port, "app.bad", _events(1), mode="Forward", ack=True, sharedKey="wrong")
    assert result["acked"] == 0 and result["errors"]
    assert len(secure.next_hop.records) == before


def test_fluent_logger_message_mode_without_ack(plain):
    hop = plain.next_hop
    before = len(hop.records)
    precise = sender.FluentSender("py", host="127.0.0.1", port=plain.port, nanosecond_precision=True)
    seconds = sender.FluentSender("py", host="127.0.0.1", port=plain.port)
    try:
        assert precise.emit("app", {"message": LINES[0]})
        assert seconds.emit_with_time("app", 1_700_000_000, {"message": LINES[1]})
    finally:
        precise.close()
        seconds.close()
    until(lambda: len(hop.records) - before == 2, "fluent-logger's two records")
    records = [r for c in hop.chunks if c.tag == "py.app" for r in c.records]
    assert {r.record["message"] for r in records} == set(LINES[:2])
    assert {r.record["logwarden"]["status"] for r in records} == {"scored"}
