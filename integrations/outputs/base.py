"""What every next hop shares: the record type, the ``NextHop`` interface, its error, time and JSON helpers."""

from __future__ import annotations

import json
import struct
import time as _time
from dataclasses import dataclass, field
from typing import Any, Protocol

from msgpack import ExtType

EVENT_TIME = 0  # msgpack ext type of Fluentd/Fluent Bit EventTime: uint32 BE seconds, uint32 BE nanoseconds


@dataclass(slots=True)
class Record:
    """One log record as a Forward entry carries it.

    ``time`` is kept as received (int seconds, float, or the EventTime ``ExtType``) so a Forward next hop gets
    it back byte for byte; ``metadata`` is Fluent Bit's v2 metadata map (entries ``[[time, metadata], record]``)
    or None for ``[time, record]`` entries."""

    time: Any
    record: dict[str, Any]
    metadata: dict[str, Any] | None = None


@dataclass(slots=True)
class Chunk:
    """Records of one tag, re-emitted together; ``key`` identifies the chunk (the Forward chunk id or a hash of
    its payload), stable across resends, so next hops can derive idempotent ids from it."""

    tag: str
    records: list[Record]
    key: str
    attributes: dict[str, Any] = field(default_factory=dict)


class NextHopError(Exception):
    """The next hop did not accept the records (down, refusing, timing out): do not acknowledge them."""


class Unsupported(NextHopError):
    """This next hop cannot carry what was asked (e.g. Fluent Bit metrics or traces to Elasticsearch)."""


class NextHop(Protocol):
    """A next-hop writer. ``send`` returns once every record is accepted (or refused for good, logged)."""

    name: str

    async def start(self) -> None: ...

    async def send(self, chunk: Chunk) -> None: ...

    async def send_signal(self, tag: str, payload: bytes, options: dict[str, Any]) -> None:
        """Pass a non-log Forward chunk (metrics, traces: ``fluent_signal`` > 0) on as it came."""
        ...

    async def close(self) -> None: ...


def epoch(value: Any) -> float:
    """Seconds since the epoch of a Forward time (int, float or EventTime); now when it is none of those."""
    if type(value) is ExtType and value.code == EVENT_TIME and len(value.data) == 8:
        seconds, nanos = struct.unpack(">II", value.data)
        return seconds + nanos / 1e9
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return _time.time()


def event_time(seconds: float) -> ExtType:
    """An EventTime for ``seconds`` since the epoch."""
    whole = int(seconds)
    return ExtType(EVENT_TIME, struct.pack(">II", whole, round((seconds - whole) * 1e9) % 1_000_000_000))


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, ExtType):
        return epoch(value) if value.code == EVENT_TIME else value.data.hex()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def _clean(value: Any) -> Any:
    """``value`` with text that is not valid UTF-8 (surrogate-escaped bytes) replaced by U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def to_json(value: Any) -> bytes:
    """UTF-8 JSON of a record: bytes as text, EventTime as epoch seconds, invalid UTF-8 replaced."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from bytes that were not UTF-8
        return json.dumps(_clean(value), ensure_ascii=False, separators=(",", ":"), default=_json_default).encode()
