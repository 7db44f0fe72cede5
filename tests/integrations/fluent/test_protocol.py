"""Forward frames decoded as Fluent Bit v5.1, Fluentd and @fluent-org/logger send them (INTEGRATIONS.md §3.1-3.3);
hand-built bytes for what the test clients do not send (v2 entries, str payloads, multi-member gzip, zstd)."""

from __future__ import annotations

import gzip
import hashlib

import msgpack
import pytest
import zstandard
from peers.fluent_bit import chunk_id, compressed_frame, event_time, pack_entries, ping, v2_entry

from logwarden.integrations.fluent.handshake import ClientHandshake, HandshakeError, ServerHandshake
from logwarden.integrations.fluent.protocol import ProtocolError, ack, decode_frame, entry, unpacker
from logwarden.integrations.outputs.base import epoch

LIMIT = 1 << 20
CORRUPT_GZIP = bytearray(gzip.compress(b"\x92\x01\x80" * 100))
CORRUPT_GZIP[15] ^= 0xFF
CORRUPT_GZIP[16] ^= 0x55
CORRUPT_GZIP = bytes(CORRUPT_GZIP)


def _frame(data: bytes):
    frames = unpacker(LIMIT)
    frames.feed(data)
    (value,) = list(frames)
    return decode_frame(value, LIMIT)


def test_message_mode_three_and_four_elements_int_and_event_time():
    three = _frame(msgpack.packb(["app.web", 1700000000, {"message": "hello"}]))
    assert (three.mode, three.tag, three.chunk, three.records[0].time) == ("message", "app.web", None, 1700000000)
    four = _frame(msgpack.packb(["app.web", event_time(1700000000, 123), {"message": "hi"}, {"chunk": "abc=="}]))
    assert four.chunk == "abc==" and epoch(four.records[0].time) == pytest.approx(1700000000.000000123)


def test_forward_mode_mixes_both_entry_shapes_and_keeps_metadata():
    entries = [[1700000000, {"log": "a"}], v2_entry({"log": "b"}, metadata={"k8s": "x"})]
    frame = _frame(msgpack.packb(["t", entries, {"size": 2}]))
    assert frame.mode == "forward"
    assert [r.metadata for r in frame.records] == [None, {"k8s": "x"}]
    assert [entry(r) for r in frame.records] == [
        [1700000000, {"log": "a"}],
        [[event_time(1700000000), {"k8s": "x"}], {"log": "b"}],
    ]
    assert entry(frame.records[1], retain_metadata=False) == [event_time(1700000000), {"log": "b"}]


def test_packed_forward_payload_as_bin_and_as_str():
    payload = pack_entries([v2_entry({"log": "a"}), [1, {"log": "b"}]])
    as_bin = _frame(msgpack.packb(["t", payload, {"size": 2}], use_bin_type=True))
    as_str = _frame(msgpack.packb(["t", payload], use_bin_type=False))  # Fluentd packs the payload as str
    assert as_bin.mode == as_str.mode == "packed"
    assert [r.record for r in as_bin.records] == [r.record for r in as_str.records] == [{"log": "a"}, {"log": "b"}]


def test_compressed_gzip_single_and_concatenated_members():
    entries = [v2_entry({"log": f"line {i}"}) for i in range(50)]
    one, cid = compressed_frame("t", entries)
    many, cid_many = compressed_frame("t", entries, members=7)
    assert cid == cid_many == chunk_id(pack_entries(entries))
    for data in (one, many):
        frame = _frame(data)
        assert frame.mode == "compressed" and [r.record["log"] for r in frame.records] == [
            f"line {i}" for i in range(50)
        ]
        assert frame.key() == cid


def test_compressed_zstd():
    payload = pack_entries([v2_entry({"log": "z"})] * 3)
    body = zstandard.ZstdCompressor().compress(payload[:10]) + zstandard.ZstdCompressor().compress(payload[10:])
    frame = _frame(msgpack.packb(["t", body, {"compressed": "zstd"}]))
    assert [r.record for r in frame.records] == [{"log": "z"}] * 3


def test_event_time_as_ext8_is_read_like_fixext8():
    ext8 = b"\xc7\x08\x00" + (1700000000).to_bytes(4, "big") + (5).to_bytes(4, "big")
    data = b"\x93\xa1t" + ext8 + b"\x81\xa3log\xa1x"  # ["t", ext8 EventTime, {"log": "x"}]
    assert epoch(_frame(data).records[0].time) == pytest.approx(1700000000.000000005)


def test_heartbeat_is_nil_and_key_without_chunk_is_sha256_of_entries():
    assert _frame(msgpack.packb(None)) is None
    payload = pack_entries([[1, {"log": "a"}]])
    frame = _frame(msgpack.packb(["t", payload]))
    assert frame.key() == "sha256:" + hashlib.sha256(payload).hexdigest()


def test_invalid_utf8_survives_and_the_ack_echoes_the_chunk_exactly():
    record = b"\x81\xa3log\xa2\xff\xfe"  # {"log": <str of two bytes that are not UTF-8>}
    data = b"\x93\xa1t\x01" + record
    frame = _frame(data)
    packed = msgpack.Packer(use_bin_type=True, unicode_errors="surrogateescape").pack(frame.records[0].record)
    assert packed == record
    assert msgpack.unpackb(ack("CbaHCUSK3x4I5lM0ElOGbQ==")) == {"ack": "CbaHCUSK3x4I5lM0ElOGbQ=="}
    assert msgpack.unpackb(ack(b"\x01\x02"), raw=True) == {b"ack": b"\x01\x02"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (12, "not a Forward frame"),
        (["t", [[1, "not a map"]]], "entry 0: the record is a str"),
        (["t", [["yesterday", {}]]], "entry 0: time is a str"),
        (["t", b"\x92\x01"], "truncated"),
        (["t", CORRUPT_GZIP, {"compressed": "gzip"}], "gzip payload is corrupt"),
        (["t", gzip.compress(b"\x92\x01\x80")[:-6], {"compressed": "gzip"}], "gzip payload is truncated"),
        (["t", b"x", {"compressed": "lz4"}], "unknown compression 'lz4'"),
        (["t", 1, "no map"], "Message mode frame without a record map"),
    ],
)
def test_bad_frames_say_what_is_wrong(value, message):
    with pytest.raises(ProtocolError, match=message):
        decode_frame(value, LIMIT)


def test_decompressed_size_is_limited():
    bomb = gzip.compress(pack_entries([[1, {"log": "a" * 1000}]] * 2000))
    with pytest.raises(ProtocolError, match="larger than"):
        decode_frame(["t", bomb, {"compressed": "gzip"}], LIMIT)


def test_non_log_signal_keeps_its_payload_unread():
    frame = decode_frame(["t", b"\x01\x02cmetrics", {"fluent_signal": 1, "chunk": "c"}], LIMIT)
    assert (frame.signal, frame.payload, frame.records) == (1, b"\x01\x02cmetrics", [])


def test_handshake_with_fluent_bits_raw_salt_and_user_auth():
    server = ServerHandshake(b"s3cret", "logwarden-receiver", {"ann": "pw"})
    helo = msgpack.unpackb(server.helo(), raw=True)
    assert helo[1][b"keepalive"] is True and len(helo[1][b"nonce"]) == 16 and len(helo[1][b"auth"]) == 16
    message, salt = ping(helo, b"s3cret", username=b"ann", password=b"pw")
    with pytest.raises(UnicodeDecodeError):
        msgpack.unpackb(message, raw=False)  # why the handshake is decoded raw
    pong = msgpack.unpackb(server.check_ping(msgpack.unpackb(message, raw=True)), raw=True)
    assert pong[:4] == [b"PONG", True, b"", b"logwarden-receiver"]
    nonce = helo[1][b"nonce"]
    assert pong[4] == hashlib.sha512(salt + b"logwarden-receiver" + nonce + b"s3cret").hexdigest().encode()


@pytest.mark.parametrize(
    ("key", "password", "reason"), [(b"wrong", b"pw", "shared key mismatch"), (b"s3cret", b"bad", "username/password")]
)
def test_handshake_refusal_says_why(key, password, reason):
    server = ServerHandshake(b"s3cret", "logwarden-receiver", {"ann": "pw"})
    helo = msgpack.unpackb(server.helo(), raw=True)
    message, _ = ping(helo, key, username=b"ann", password=password)
    with pytest.raises(HandshakeError, match=reason) as caught:
        server.check_ping(msgpack.unpackb(message, raw=True))
    pong = msgpack.unpackb(caught.value.pong, raw=True)
    assert pong[1] is False and reason in pong[2].decode()


def test_our_client_handshake_against_our_server_and_a_wrong_pong():
    server = ServerHandshake(b"k", "aggregator")
    client = ClientHandshake(b"k", "logwarden")
    ping_message = msgpack.unpackb(client.ping(msgpack.unpackb(server.helo(), raw=True)), raw=True)
    client.check_pong(msgpack.unpackb(server.check_ping(ping_message), raw=True))
    forged = ["PONG", True, "", "aggregator", "0" * 128]
    with pytest.raises(HandshakeError, match="digest mismatch"):
        client.check_pong(msgpack.unpackb(msgpack.packb(forged), raw=True))
