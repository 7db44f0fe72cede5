"""The Forward receiver over real sockets with a live scoring server, fed hand-built frames shaped exactly as
Fluent Bit v5.1's ``forward`` output sends them (INTEGRATIONS.md §3.1-3.2; tests/peers/fluent_bit.py): v2 entries,
gzip chunks with SHA-512-derived chunk ids, the raw-byte salt, ``fluent_signal``, multi-member gzip, frames
split at every byte, and bad input. The next hop here is an in-memory one (the Forward, HEC and ES next hops
have their own tests with real peers)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import ssl
import urllib.error
import urllib.request

import msgpack
import pytest
from fluent_support import BackgroundReceiver, ForwardSocket, MemoryNextHop, until
from peers.fluent_bit import check_pong, compressed_frame, event_time, pack_entries, ping, v2_entry
from support import sessions_by_block

from logwarden.core.synthetic import generate
from logwarden.grpc_server.service.windows import window_key

LINES = generate(n_sessions=6, anomaly_rate=0.0, seed=5).lines
CUT_GZIP = gzip.compress(pack_entries([[1, {"log": "x"}]] * 50))[:30] + b"\x00" * 30
BLOCK = next(lines for lines in sessions_by_block(3, seed=6, anomaly_rate=0.0).values() if len(lines) >= 6)


@pytest.fixture
def hop():
    return MemoryNextHop()


@pytest.fixture
def receiver(scorer, hop):
    with BackgroundReceiver(scorer.target, hop) as bg:
        yield bg


def _chunk(lines, tag="app.hdfs", **kw):
    entries = [
        v2_entry({"log": line, "host": "dn1"}, 1_700_000_000 + i, metadata={"n": i}) for i, line in enumerate(lines)
    ]
    return compressed_frame(tag, entries, **kw)


def test_fluent_bit_chunk_is_scored_enriched_re_emitted_then_acked(receiver, hop):
    frame, cid = _chunk(LINES[:40])
    with ForwardSocket(receiver.port) as fs:
        fs.send(frame)
        assert fs.ack() == cid.encode()  # echoed as the same msgpack str
    records = hop.records
    assert [r.record["log"] for r in records] == LINES[:40]  # order kept
    assert [r.metadata for r in records] == [{"n": i} for i in range(40)]  # Fluent Bit's metadata map kept
    assert records[0].time == event_time(1_700_000_000)
    first = records[0].record
    assert first["host"] == "dn1" and first["logwarden"]["status"] == "scored"
    assert set(first["logwarden"]) >= {"score", "verdict", "template", "template_id", "model_version", "expected"}
    assert {"reason", "reason_code", "model"} <= set(first["logwarden"])
    assert (
        0 <= first["event"]["risk_score"] <= 100 and first["event"]["risk_score_norm"] == first["event"]["risk_score"]
    )
    assert hop.chunks[0].key == cid
    assert receiver.metric("logwarden_fluent_records_out_total", status="scored") == 40
    assert receiver.metric("logwarden_fluent_chunks_total", result="acked") == 1


def test_every_mode_both_entry_shapes_and_heartbeats_on_one_connection(receiver, hop):
    line = LINES[0]
    frames = [
        msgpack.packb(None),
        msgpack.packb(["m", 1_700_000_000, {"log": line}]),
        msgpack.packb(["m", event_time(1_700_000_000, 7), {"message": line}, {"chunk": "c1"}]),
        msgpack.packb(["f", [[1, {"log": line}], v2_entry({"log": line})], {"chunk": "c2"}]),
        msgpack.packb(["p", pack_entries([[1, {"log": line}]]), {"chunk": "c3"}], use_bin_type=True),
        msgpack.packb(["p", pack_entries([v2_entry({"log": line})]), {"chunk": "c4"}], use_bin_type=False),  # str
        msgpack.packb(None),
        _chunk([line], members=1)[0],
    ]
    with ForwardSocket(receiver.port) as fs:
        fs.send(b"".join(frames))
        assert [fs.ack() for _ in range(5)][:4] == [b"c1", b"c2", b"c3", b"c4"]
    until(lambda: len(hop.records) == 7, "7 records")
    assert [c.tag for c in hop.chunks] == ["m", "m", "f", "p", "p", "app.hdfs"]
    assert all(r.record["logwarden"]["status"] == "scored" for r in hop.records)
    assert [r.metadata is not None for r in hop.chunks[2].records] == [False, True]


def test_frames_split_at_every_byte(receiver, hop):
    data = (
        msgpack.packb(None)
        + _chunk(LINES[:3], members=3)[0]
        + msgpack.packb(["t", 5, {"log": LINES[3]}, {"chunk": "x"}])
    )
    with ForwardSocket(receiver.port) as fs:
        fs.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            fs.send(data[i : i + 1])
        fs.ack()
        assert fs.ack() == b"x"
    assert [r.record["log"] for r in hop.records] == LINES[:4]


def test_ack_only_after_the_next_hop_accepted(receiver, hop):
    hop.gate = receiver.run(_event())
    frame, cid = _chunk(LINES[:5])
    with ForwardSocket(receiver.port) as fs:
        fs.send(frame)
        assert hop.entered.wait(20)
        fs.sock.setblocking(False)
        with pytest.raises(BlockingIOError):  # the next hop holds the chunk: no ack yet
            fs.sock.recv(100)
        fs.sock.setblocking(True)
        receiver.loop.call_soon_threadsafe(hop.gate.set)
        assert fs.ack() == cid.encode()
    assert len(hop.records) == 5


async def _event() -> asyncio.Event:
    return asyncio.Event()


def test_next_hop_failure_no_ack_connection_closed_resend_acked(receiver, hop):
    hop.fail = True
    frame, cid = _chunk(LINES[:5])
    with ForwardSocket(receiver.port) as fs:
        fs.send(frame)
        assert fs.closed()
    assert receiver.metric("logwarden_fluent_chunks_total", result="failed") == 1
    hop.fail = False
    with ForwardSocket(receiver.port) as fs:  # Fluent Bit retries the chunk from its buffer
        fs.send(frame)
        assert fs.ack() == cid.encode()
    assert len(hop.records) == 5


def test_scorer_down_records_go_on_unscored_and_are_acked(hop):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    with BackgroundReceiver(f"127.0.0.1:{port}", hop, score_budget_s=1.0, score_timeout_s=0.5) as bg:
        frame, cid = _chunk(LINES[:3])
        with ForwardSocket(bg.port) as fs:
            fs.send(frame)
            assert fs.ack() == cid.encode()
        assert bg.metric("logwarden_fluent_records_out_total", status="unscored") == 3
    statuses = {r.record["logwarden"]["status"] for r in hop.records}
    assert statuses == {"unscored"}
    assert hop.records[0].record["logwarden"]["reason"].startswith("scorer unavailable")
    assert "event" not in hop.records[0].record


def test_records_without_a_message_key_go_on_unscored(receiver, hop):
    with ForwardSocket(receiver.port) as fs:
        fs.send(msgpack.packb(["t", [[1, {"msg": "elsewhere"}], [1, {"log": LINES[0]}]], {"chunk": "c"}]))
        fs.ack()
    first, second = (r.record["logwarden"] for r in hop.records)
    assert first["status"] == "unscored" and "no message field (looked for log, message)" in first["reason"]
    assert second["status"] == "scored"


def test_other_signals_pass_through_unscored(receiver, hop):
    metrics = msgpack.packb(["fb.metrics", b"\x93cmetrics-blob", {"fluent_signal": 1, "chunk": "m1"}])
    with ForwardSocket(receiver.port) as fs:
        fs.send(metrics)
        assert fs.ack() == b"m1"
        hop.carry_signals = False  # a next hop that carries logs only: logged, counted, acked, no crash
        fs.send(msgpack.packb(["fb.traces", b"ctraces", {"fluent_signal": 2, "chunk": "t1"}]))
        assert fs.ack() == b"t1"
    assert hop.signals == [("fb.metrics", b"\x93cmetrics-blob", {"fluent_signal": 1, "chunk": "m1"})]
    assert receiver.metric("logwarden_fluent_signal_chunks_total", result="dropped") == 1


def _serves_others(receiver, hop) -> None:
    frame, cid = _chunk(LINES[:2])
    with ForwardSocket(receiver.port) as fs:
        fs.send(frame)
        assert fs.ack() == cid.encode()


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(b"\xc1garbage\x00\xff" * 10, id="garbage"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http"),
        pytest.param(msgpack.packb(["t", [[1, "not a map"]], {"chunk": "c"}]), id="malformed-entry"),
        pytest.param(
            msgpack.packb(
                [
                    "t",
                    bytes(gzip.compress(pack_entries([[1, {"log": "x"}]] * 50))[:30]) + b"\x00" * 30,
                    {"chunk": "c", "compressed": "gzip"},
                ]
            ),
            id="corrupt-gzip",
        ),
    ],
)
def test_bad_input_closes_without_ack_and_others_are_served(receiver, hop, bad):
    with ForwardSocket(receiver.port) as fs:
        fs.send(bad)
        assert fs.closed()
    assert receiver.metric("logwarden_fluent_chunks_total", result="refused") == 1
    assert hop.records == []
    _serves_others(receiver, hop)


def test_corrupt_second_gzip_member(receiver, hop):
    payload = pack_entries([v2_entry({"log": LINES[0]})] * 4)
    good, bad = gzip.compress(payload[:20]), bytearray(gzip.compress(payload[20:]))
    bad[12] ^= 0xFF
    bad[13] ^= 0xAA
    with ForwardSocket(receiver.port) as fs:
        fs.send(msgpack.packb(["t", good + bytes(bad), {"chunk": "c", "compressed": "gzip"}]))
        assert fs.closed()
    assert hop.records == []
    _serves_others(receiver, hop)


def test_truncated_frame_then_close_loses_nothing_acked(receiver, hop):
    frame, _ = _chunk(LINES[:5])
    with ForwardSocket(receiver.port) as fs:
        fs.send(frame[: len(frame) // 2])
    _serves_others(receiver, hop)
    assert len(hop.records) == 2


def test_64_mib_chunk_is_refused_with_the_connection_closed(scorer, hop):
    with BackgroundReceiver(scorer.target, hop) as bg:
        huge = msgpack.packb(["t", b"\x00" * (64 << 20), {"chunk": "big"}])
        with ForwardSocket(bg.port) as fs:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # closed while we were still sending
                fs.send(huge)
            assert fs.closed()
        assert bg.metric("logwarden_fluent_chunks_total", result="refused") == 1
        _serves_others(bg, hop)


@pytest.fixture
def secure(scorer, hop):
    with BackgroundReceiver(scorer.target, hop, shared_key="s3cret", users={"ann": "pw"}) as bg:
        yield bg


def _handshake(fs: ForwardSocket, key: bytes, password: bytes = b"pw"):
    helo = fs.read()
    assert helo[0] == b"HELO"
    message, salt = ping(helo, key, username=b"ann", password=password)
    fs.send(message)
    return fs.read(), salt, helo[1][b"nonce"]


def test_handshake_with_a_raw_byte_salt_then_chunks(secure, hop):
    with ForwardSocket(secure.port) as fs:
        pong, salt, nonce = _handshake(fs, b"s3cret")
        check_pong(pong, salt, nonce, b"s3cret")  # as Fluent Bit >= 5.0.9 checks it
        frame, cid = _chunk(LINES[:3])
        fs.send(frame)
        assert fs.ack() == cid.encode()
    assert len(hop.records) == 3


@pytest.mark.parametrize(
    ("key", "password", "reason"),
    [(b"wrong", b"pw", b"shared key mismatch"), (b"s3cret", b"nope", b"username/password mismatch")],
)
def test_wrong_shared_key_or_password_pong_says_why_then_close(secure, hop, key, password, reason):
    with ForwardSocket(secure.port) as fs:
        pong, _, _ = _handshake(fs, key, password)
        assert pong[1] is False and pong[2] == reason
        assert fs.closed()
    assert secure.metric("logwarden_fluent_handshakes_total", result="refused") == 1
    assert hop.records == []


def test_tls(scorer, hop, pki):
    with BackgroundReceiver(scorer.target, hop, tls_cert=pki / "server.pem", tls_key=pki / "server.key") as bg:
        ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        frame, cid = _chunk(LINES[:2])
        with (
            socket.create_connection(("127.0.0.1", bg.port), timeout=20) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(frame)
            assert msgpack.unpackb(tls.recv(1000)) == {"ack": cid}
    assert len(hop.records) == 2


def test_graceful_stop_finishes_and_acks_the_chunk_in_flight(scorer, hop):
    bg = BackgroundReceiver(scorer.target, hop).start()
    health = f"http://127.0.0.1:{bg.receiver.http_port}"
    assert json.load(urllib.request.urlopen(f"{health}/readyz", timeout=10))["status"] == "ready"
    hop.gate = bg.run(_event())
    frame, cid = _chunk(LINES[:4])
    idle = ForwardSocket(bg.port)
    with ForwardSocket(bg.port) as fs:
        fs.send(frame)
        assert hop.entered.wait(20)
        stopping = asyncio.run_coroutine_threadsafe(bg.receiver.stop(10), bg.loop)
        assert idle.closed()  # idle connections are closed at once
        with pytest.raises(urllib.error.HTTPError) as draining:
            urllib.request.urlopen(f"{health}/readyz", timeout=10)
        assert draining.value.code == 503
        metrics = urllib.request.urlopen(f"{health}/metrics", timeout=10).read().decode()
        assert "# TYPE logwarden_fluent_connections gauge" in metrics
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", bg.port), timeout=5).close()  # no longer accepting
        bg.loop.call_soon_threadsafe(hop.gate.set)
        assert fs.ack() == cid.encode()  # the chunk in hand is finished and acked
        assert fs.closed()
        stopping.result(20)
    bg.receiver = None
    bg.stop()
    idle.close()
    assert len(hop.records) == 4


def test_source_session_and_route_come_from_the_configured_keys(scorer, hop):
    with BackgroundReceiver(scorer.target, hop, source_key="kubernetes.pod_name", message_keys=["msg", "log"]) as bg:
        entries = [[1, {"msg": line, "kubernetes": {"pod_name": "pod-7"}}] for line in BLOCK[:3]]
        with ForwardSocket(bg.port) as fs:
            fs.send(msgpack.packb(["t", entries, {"chunk": "c"}]))
            fs.ack()
    session = hop.records[0].record["logwarden"]["session_key"]
    windows = scorer.server.windows.default
    stored = scorer.run(windows.get_many([window_key("pod-7", session)]))[0]
    assert stored is not None and len(stored["keys"]) == 3  # the window is the pod's, not the tag's


def test_a_resent_chunk_advances_the_window_once(receiver, hop, scorer):
    frame, cid = _chunk(BLOCK[:6], tag="idem")
    for _ in range(2):  # the ack was lost: Fluent Bit sends the same chunk (same chunk id) again
        with ForwardSocket(receiver.port) as fs:
            fs.send(frame)
            assert fs.ack() == cid.encode()
    session = hop.records[0].record["logwarden"]["session_key"]
    stored = scorer.run(scorer.server.windows.default.get_many([window_key("idem", session)]))[0]
    assert len(stored["keys"]) == 6
