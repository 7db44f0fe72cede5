"""Reading documents back with the official client: point-in-time paging with ``search_after``, times, and
the names Elasticsearch gives data-stream backing indices."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from logwarden.integrations.elasticsearch.bulk import lookup

BACKING_INDEX = re.compile(r"^\.ds-(?P<stream>.+)-\d{4}\.\d{2}\.\d{2}-\d{6}$")


@dataclass(slots=True)
class Hit:
    """A document as a search returned it, with what a conditional write needs."""

    index: str
    id: str
    seq_no: int
    primary_term: int
    source: dict
    time_ms: int | None = None

    @property
    def ref(self) -> tuple[str, str]:
        return (self.index, self.id)

    @property
    def external_id(self) -> str:
        return f"{self.index}/{self.id}"


def logical_index(name: str) -> str:
    """The data stream a backing index belongs to (``.ds-logs-app-2026.01.01-000001`` → ``logs-app``), else
    the index itself."""
    match = BACKING_INDEX.match(name)
    return match.group("stream") if match else name


def is_backing_index(name: str) -> bool:
    return BACKING_INDEX.match(name) is not None


def to_millis(value: Any) -> int | None:
    """Epoch milliseconds of an ISO 8601 time or an epoch-millisecond number (or its text)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def deep_merge(base: dict, patch: dict) -> dict:
    """``base`` with ``patch`` merged in, objects key by key (as a partial ``update`` merges ``doc``)."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def write_back(hit: Hit, patch: dict, *, retry_on_conflict: int | None = None) -> dict:
    """The bulk action (for the client's helpers) that merges ``patch`` into ``hit``: a partial ``update`` — with
    ``retry_on_conflict``, or, without, only if the document is still the version read (``if_seq_no``); on a
    data-stream backing index, which takes no updates, ``index`` of the merged source with ``if_seq_no``."""
    target = {"_index": hit.index, "_id": hit.id}
    read = {"if_seq_no": hit.seq_no, "if_primary_term": hit.primary_term}
    if is_backing_index(hit.index):
        return {"_op_type": "index", **target, **read, "_source": deep_merge(hit.source, patch)}
    guard = read if retry_on_conflict is None else {"retry_on_conflict": retry_on_conflict}
    return {"_op_type": "update", **target, **guard, "doc": patch}


def iso(millis: int | None) -> str | None:
    if millis is None:
        return None
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iter_hits(
    client,
    index: str,
    query: dict,
    *,
    time_field: str,
    page_size: int = 1000,
    keep_alive: str = "5m",
    source: Any = True,
) -> Iterator[Hit]:
    """Every document of ``index`` matching ``query``, oldest first (by ``time_field``, then Elasticsearch's
    ``_shard_doc``), one point-in-time snapshot paged with ``search_after``; the PIT is closed at the end."""
    pit = client.open_point_in_time(index=index, keep_alive=keep_alive, ignore_unavailable=True)["id"]
    search_after = None
    try:
        while True:
            kwargs = {"search_after": search_after} if search_after is not None else {}
            page = client.search(
                pit={"id": pit, "keep_alive": keep_alive},
                query=query,
                sort=[{time_field: {"order": "asc"}}],
                size=page_size,
                seq_no_primary_term=True,
                track_total_hits=False,
                source=source,
                **kwargs,
            )
            pit = page.get("pit_id", pit)
            hits = page["hits"]["hits"]
            if not hits:
                return
            for h in hits:
                time_ms = h["sort"][0] if h.get("sort") else None
                if not isinstance(time_ms, int) or abs(time_ms) >= 2**62:  # a missing time sorts as Long.MAX
                    time_ms = to_millis(lookup(h.get("_source", {}), time_field))
                yield Hit(h["_index"], h["_id"], h["_seq_no"], h["_primary_term"], h.get("_source", {}), time_ms)
            search_after = hits[-1]["sort"]
    finally:
        with contextlib.suppress(Exception):  # it expires by itself; closing is a courtesy
            client.close_point_in_time(id=pit)


def fetch(client, refs: list[tuple[str, str]], *, time_field: str) -> list[Hit]:
    """The current version of each ``(index, id)`` (``_mget``, with seq_no and primary term); gone ones left out."""
    out: list[Hit] = []
    for start in range(0, len(refs), 1000):
        chunk = refs[start : start + 1000]
        docs = client.mget(docs=[{"_index": i, "_id": d} for i, d in chunk])["docs"]
        for doc in docs:
            if doc.get("found"):
                source = doc.get("_source", {})
                out.append(
                    Hit(
                        doc["_index"],
                        doc["_id"],
                        doc["_seq_no"],
                        doc["_primary_term"],
                        source,
                        to_millis(lookup(source, time_field)),
                    )
                )
    return out
