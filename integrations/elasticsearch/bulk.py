"""The ``_bulk`` body as Elasticsearch reads it, kept byte for byte except the source lines the proxy enriches.

A body is NDJSON: an action line (``{"index"|"create"|"update"|"delete": {metadata}}``), then a source line
for every action but ``delete``. Elasticsearch skips blank action lines and accepts ``\\r\\n``; the body must
end with a newline. ``BulkBody`` finds the actions without judging them: a line it cannot read as an action
is left alone (Elasticsearch will answer for it), and every line the proxy does not rewrite goes upstream
exactly as it came, so item count, order and everything the shipper wrote are kept.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

WRITE_OPS = ("index", "create")
OPS = ("index", "create", "update", "delete")


class BodyError(ValueError):
    """A request body the proxy cannot read (bad gzip); it is forwarded as it came."""


def decompress(body: bytes, encoding: str | None) -> bytes:
    """The body without its ``Content-Encoding`` (gzip or deflate); ``BodyError`` when it does not inflate."""
    encoding = (encoding or "").strip().lower()
    if not encoding or encoding == "identity":
        return body
    try:
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        raise BodyError(f"cannot decompress the {encoding} body: {exc}") from None
    raise BodyError(f"unsupported Content-Encoding {encoding!r}")


def compress(body: bytes, encoding: str | None) -> bytes:
    """``body`` in the shipper's ``Content-Encoding`` again (level 1: speed over size, on loopback or LAN)."""
    encoding = (encoding or "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return gzip.compress(body, compresslevel=1)
    if encoding == "deflate":
        return zlib.compress(body, 1)
    return body


def body_key(body: bytes) -> str:
    """The idempotency key of a bulk: SHA-256 of its decompressed bytes (a shipper's retry sends the same)."""
    return hashlib.sha256(body).hexdigest()


@dataclass(slots=True)
class Action:
    """One bulk item: its op, metadata, target index (metadata or the path's default) and source line number."""

    position: int  # item number, 0-based, as Elasticsearch numbers its answers
    op: str
    meta: dict
    index: str | None
    action_line: int  # index into BulkBody.lines
    source_line: int | None  # index into BulkBody.lines, None for delete


class BulkBody:
    """A decompressed bulk body split into lines (endings kept) and the actions found in it."""

    def __init__(self, body: bytes, default_index: str | None = None) -> None:
        self.lines: list[bytes] = body.splitlines(keepends=True)
        self.actions: list[Action] = []
        self.readable = True  # False: some action line was not an action; the body is forwarded untouched
        self._parse(default_index)

    def _parse(self, default_index: str | None) -> None:
        known: dict[bytes, tuple[str, dict] | None] = {}  # shippers repeat action lines: read each once
        i = 0
        while i < len(self.lines):
            action_line, line = i, self.lines[i].strip()
            i += 1
            if not line:
                continue
            if line not in known:
                known[line] = _action(line)
            found = known[line]
            if found is None:
                self.readable = False
                return
            op, meta = found
            source_line = None
            if op != "delete":
                if i >= len(self.lines):
                    self.readable = False
                    return
                source_line = i
                i += 1
            index = meta.get("_index") or default_index
            index = index if isinstance(index, str) else None
            self.actions.append(Action(len(self.actions), op, meta, index, action_line, source_line))

    def writes(self) -> Iterator[Action]:
        """The ``index`` and ``create`` actions (the documents the proxy may enrich)."""
        return (a for a in self.actions if a.op in WRITE_OPS)

    def source(self, action: Action) -> dict | None:
        """The action's source as an object, or None when its line is not a JSON object."""
        if action.source_line is None:
            return None
        value = loads(self.lines[action.source_line])
        return value if isinstance(value, dict) else None

    def replace_source(self, action: Action, source: dict) -> None:
        """Write ``source`` on the action's line, keeping that line's ending (``\\n``, ``\\r\\n`` or none)."""
        old = self.lines[action.source_line]
        ending = old[len(old.rstrip(b"\r\n")) :]
        self.lines[action.source_line] = dumps(source) + ending

    def add_to_source(self, action: Action, source: dict, fields: dict) -> None:
        """Add ``fields`` (new top-level keys: ``logwarden``, ``event``) to the action's source. When the source
        has none of them, they are spliced in before its closing brace and the shipper's bytes stay as they
        were; otherwise they are merged (``merge_enrichment``) and the source written anew."""
        line = self.lines[action.source_line]
        body = line.rstrip()
        if source and fields and body.endswith(b"}") and not any(k in source for k in fields):
            members = dumps(fields)[1:-1]  # '"logwarden":{...},"event":{...}'
            self.lines[action.source_line] = body[:-1] + b"," + members + b"}" + line[len(body) :]
        else:  # written anew: read exactly first (orjson reads an integer beyond 64 bits as a float)
            try:
                exact = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                exact = None
            self.replace_source(action, merge_enrichment(exact if isinstance(exact, dict) else source, fields))

    def body(self) -> bytes:
        return b"".join(self.lines)

    def sub_body(self, positions: list[int]) -> bytes:
        """A bulk of only these items (action and source lines as they now stand), newline-terminated."""
        by_position = {a.position: a for a in self.actions}
        out = []
        for p in positions:
            a = by_position[p]
            out.append(_terminated(self.lines[a.action_line]))
            if a.source_line is not None:
                out.append(_terminated(self.lines[a.source_line]))
        return b"".join(out)


def _action(line: bytes) -> tuple[str, dict] | None:
    """``(op, metadata)`` of an action line, or None when it is not one."""
    try:
        action = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(action, dict) or len(action) != 1:
        return None
    op, meta = next(iter(action.items()))
    return (op, meta) if op in OPS and isinstance(meta, dict) else None


def _terminated(line: bytes) -> bytes:
    return line if line.endswith(b"\n") else line + b"\n"


def dumps(value: Any) -> bytes:
    """Compact JSON, UTF-8 (orjson: this runs once per document). What orjson refuses (text with a lone
    surrogate, which a source can hold as a ``\\ud800`` escape; integers beyond 64 bits) is written by the
    standard library, non-ASCII as escapes, so the surrogate stays the escape it was."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def loads(line: bytes) -> Any:
    """A JSON value (orjson; what it refuses but the standard library reads, such as a ``\\ud800`` escape,
    read by the latter), or None when the line is not JSON."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None


def lookup(source: dict, path: str) -> Any:
    """The value at dotted ``path`` (nested objects or a literal dotted key), or None."""
    if path in source:
        return source[path]
    node: Any = source
    parts = path.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, dict):
            return None
        if part in node:
            node = node[part]
            continue
        rest = ".".join(parts[i:])
        return node.get(rest)
    return node


def merge_enrichment(source: dict, enrichment: dict) -> dict:
    """``source`` with ``ScoredEvent.document()`` added: ``logwarden`` replaced, ``event.risk_score*`` set
    next to whatever ECS ``event.*`` fields the document already has."""
    for key, value in enrichment.items():
        current = source.get(key)
        if key == "event" and isinstance(current, dict):
            source[key] = {**current, **value}
        else:
            source[key] = value
    return source
