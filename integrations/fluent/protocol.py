"""The Forward protocol's transport frames as Fluent Bit, Fluentd and other clients send them (INTEGRATIONS.md §3).

Modes: Message ``[tag, time, record, options?]``, Forward ``[tag, [entry, ...], options?]``, PackedForward
``[tag, bin|str(entries), options?]`` and CompressedPackedForward (the same with ``compressed: gzip|zstd``;
gzip payloads may hold several concatenated members). Entries are ``[time, record]`` or Fluent Bit ≥ 5.0.5's
``[[time, metadata], record]``; times are integers, floats or EventTime (ext type 0, fixext 8 or ext 8). A
msgpack ``nil`` is a heartbeat. Options may carry ``chunk`` (answer ``{"ack": chunk}`` once the records are
safe), ``size`` and ``fluent_signal`` (0 logs; 1 metrics, 2 traces, ... are passed on as they came).

Frames are unpacked with ``raw=False, unicode_errors="surrogateescape"``: text that is not UTF-8 survives
as surrogates and is packed back byte for byte (``packer()``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import zlib
from dataclasses import dataclass, field
from typing import Any

import msgpack
from msgpack import ExtType

from logwarden.integrations.outputs.base import EVENT_TIME, Record

LOG_SIGNAL = 0
COMPRESSIONS = ("gzip", "zstd")


class ProtocolError(Exception):
    """A frame that is not valid Forward protocol (the connection is closed without an ack)."""


@dataclass(slots=True)
class Frame:
    """One transport frame, decoded. ``records`` are the log entries (empty for other signals, whose still
    compressed ``payload`` is kept to pass on as it came)."""

    tag: str
    mode: str  # message | forward | packed | compressed
    records: list[Record]
    options: dict[str, Any] = field(default_factory=dict)
    payload: bytes | None = None  # PackedForward: the (decompressed) entries; other signals: as received
    signal: int = LOG_SIGNAL

    @property
    def chunk(self) -> Any:
        """The ``chunk`` option (str or bin) to echo in the ack, or None when no ack is asked for."""
        return self.options.get("chunk")

    def key(self) -> str:
        """The chunk's idempotency key: its chunk id when it has one, else SHA-256 of its entries."""
        chunk = self.chunk
        if isinstance(chunk, str) and chunk:
            return chunk.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        if isinstance(chunk, bytes) and chunk:
            return base64.b64encode(chunk).decode()
        payload = self.payload
        if payload is None:
            payload = packer().pack([entry(r) for r in self.records])
        return "sha256:" + hashlib.sha256(payload).hexdigest()


def _ext(code: int, data: bytes) -> ExtType:
    """msgpack's ExtType without its constructor's checks (a fifth of the decoding time of an EventTime)."""
    return tuple.__new__(ExtType, (code, data))


def unpacker(max_buffer_size: int) -> msgpack.Unpacker:
    """A streaming unpacker for transport frames (feed it bytes as they arrive)."""
    return msgpack.Unpacker(
        raw=False,
        unicode_errors="surrogateescape",
        strict_map_key=False,
        max_buffer_size=max_buffer_size,
        timestamp=0,
        ext_hook=_ext,
    )


def packer() -> msgpack.Packer:
    return msgpack.Packer(use_bin_type=True, unicode_errors="surrogateescape", datetime=False)


def entry(record: Record, retain_metadata: bool = True) -> list:
    """The Forward entry of ``record``: ``[[time, metadata], record]`` when it came so, else ``[time, record]``."""
    if record.metadata is not None and retain_metadata:
        return [[record.time, record.metadata], record.record]
    return [record.time, record.record]


def ack(chunk: Any) -> bytes:
    """``{"ack": chunk}`` with the chunk echoed as the same msgpack object."""
    return packer().pack({"ack": chunk})


def _is_time(value: Any) -> bool:
    kind = type(value)
    if kind is int or kind is float:
        return True
    return kind is ExtType and value.code == EVENT_TIME and len(value.data) == 8


def to_record(value: Any, position: int) -> Record:
    """A Record from one entry; ``ProtocolError`` naming the entry when it has neither shape."""
    if type(value) is list and len(value) == 2:
        head, record = value
        if type(record) is dict:
            if type(head) is list:  # Fluent Bit v2: [[time, metadata], record]
                if len(head) == 2 and type(head[1]) is dict and _is_time(head[0]):
                    return Record(head[0], record, head[1])
                raise ProtocolError(f"entry {position}: header is not [time, metadata]")
            if _is_time(head):
                return Record(head, record)
            raise ProtocolError(f"entry {position}: time is a {type(head).__name__}, not an integer or EventTime")
        raise ProtocolError(f"entry {position}: the record is a {type(record).__name__}, not a map")
    raise ProtocolError(f"entry {position}: not a [time, record] pair")


def decompress(payload: bytes, kind: str, limit: int) -> bytes:
    """The entries of a CompressedPackedForward payload (every gzip member, or every zstd frame), at most
    ``limit`` bytes; ``ProtocolError`` when corrupt, truncated or larger."""
    if kind == "gzip":
        out = bytearray()
        rest = payload
        while rest:
            inflater = zlib.decompressobj(wbits=31)
            try:
                out += inflater.decompress(rest, limit + 1 - len(out))
            except zlib.error as exc:
                raise ProtocolError(f"gzip payload is corrupt: {exc}") from None
            if len(out) > limit or inflater.unconsumed_tail:
                raise ProtocolError(f"chunk larger than {limit} bytes once decompressed")
            if not inflater.eof:
                raise ProtocolError("gzip payload is truncated")
            rest = inflater.unused_data
        return bytes(out)
    if kind == "zstd":
        import zstandard

        try:
            reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload), read_across_frames=True)
            out = reader.read(limit + 1)
        except zstandard.ZstdError as exc:
            raise ProtocolError(f"zstd payload is corrupt: {exc}") from None
        if len(out) > limit:
            raise ProtocolError(f"chunk larger than {limit} bytes once decompressed")
        return out
    raise ProtocolError(f"unknown compression {kind!r} (supported: {', '.join(COMPRESSIONS)})")


def unpack_entries(payload: bytes, limit: int) -> list[Record]:
    """The entries of a PackedForward payload; ``ProtocolError`` when one is malformed or the last is cut."""
    entries = unpacker(max(limit, len(payload)))
    entries.feed(payload)
    records, end = [], 0
    try:
        for value in entries:
            records.append(to_record(value, len(records)))
            end = entries.tell()
    except (ValueError, msgpack.UnpackException) as exc:
        raise ProtocolError(f"packed entries do not decode: {exc}") from None
    if end != len(payload):
        raise ProtocolError(f"packed entries are truncated after {len(records)} entries")
    return records


def decode_frame(value: Any, max_chunk_bytes: int) -> Frame | None:
    """The frame ``value`` (one unpacked msgpack object) is; None for a heartbeat; ``ProtocolError`` otherwise."""
    if value is None:
        return None
    if type(value) is not list or not 2 <= len(value) <= 4 or type(value[0]) is not str:
        raise ProtocolError(f"not a Forward frame (a {type(value).__name__}, expected [tag, ...])")
    tag, body = value[0], value[1]
    if type(body) is list:
        return Frame(tag, "forward", [to_record(v, i) for i, v in enumerate(body)], _options(value, 2, 3))
    if type(body) is bytes or type(body) is str:
        options = _options(value, 2, 3)
        payload = body if type(body) is bytes else body.encode("utf-8", "surrogateescape")
        signal = options.get("fluent_signal", LOG_SIGNAL)
        if signal != LOG_SIGNAL:
            return Frame(tag, "packed", [], options, payload, signal if type(signal) is int else -1)
        compressed = options.get("compressed")
        mode = "packed"
        if compressed not in (None, "", "text"):
            payload, mode = decompress(payload, compressed, max_chunk_bytes), "compressed"
        elif len(payload) > max_chunk_bytes:
            raise ProtocolError(f"chunk larger than {max_chunk_bytes} bytes")
        return Frame(tag, mode, unpack_entries(payload, max_chunk_bytes), options, payload)
    if _is_time(body):
        if len(value) < 3 or type(value[2]) is not dict:
            raise ProtocolError("Message mode frame without a record map")
        return Frame(tag, "message", [Record(body, value[2])], _options(value, 3, 4))
    raise ProtocolError(f"frame's second element is a {type(body).__name__}: neither entries, payload nor a time")


def _options(value: list, position: int, length: int) -> dict[str, Any]:
    if len(value) > length:
        raise ProtocolError(f"frame has {len(value)} elements")
    if len(value) <= position or value[position] is None:
        return {}
    options = value[position]
    if type(options) is not dict:
        raise ProtocolError(f"options is a {type(options).__name__}, not a map")
    return options
