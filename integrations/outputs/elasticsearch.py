"""Elasticsearch ``_bulk`` next hop, on the ``elasticsearch`` client's async bulk helper (INTEGRATIONS.md §5).

``BulkWriter.write(actions)`` is the reusable part (the Elasticsearch integration uses it too): it sends
bulk actions with ``helpers.async_streaming_bulk`` and reads every item's result.

* An item accepted (2xx) counts as ``accepted``; a ``create`` answered 409 (the document exists: a resend
  of a chunk already written) as ``duplicates``.
* Items refused with a retryable status (``retry_on_status``: 429, 502, 503, 504) are resent — only those
  items — with exponential backoff, ``max_retries`` times (the transport itself also retries whole requests
  answered 429/502/503/504).
* Items refused with any other status (400 mapping errors, 404, ...) are refused for good: counted and
  logged with their reason, never retried.
* Whole-request failures that outlive the retries (connection refused, 401, 413, ...) and items still
  refused with a retryable status leave the outcome incomplete (``complete`` false).

``ElasticsearchOutput`` turns a chunk's records into ``create`` actions (``@timestamp`` from the record's
time, as Fluent Bit's ``es`` output does; ``_id`` derived from the chunk key and position, so a resent chunk
is answered 409 instead of being indexed twice) and raises ``NextHopError`` unless the outcome is complete:
the chunk is acked when every record is accepted or permanently refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from logwarden.integrations.outputs.base import Chunk, NextHopError, Unsupported, epoch, to_json

log = structlog.get_logger("logwarden.outputs.elasticsearch")

RETRY_ON_STATUS = (429, 502, 503, 504)


@dataclass
class BulkOutcome:
    """What the cluster did with a batch of actions."""

    accepted: int = 0
    duplicates: int = 0  # create answered 409: already indexed
    refused: list[dict[str, Any]] = field(default_factory=list)  # permanent item refusals: _id, status, error
    failed: list[dict[str, Any]] = field(default_factory=list)  # still failing after the retries
    error: str = ""  # why the batch failed as a whole

    @property
    def complete(self) -> bool:
        """Every action accepted or refused for good (nothing left to retry)."""
        return not self.failed and not self.error


class BulkWriter:
    """Bulk actions in, per-item outcome out; only retryable item refusals are retried."""

    def __init__(
        self,
        client,
        *,
        max_retries: int = 3,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        chunk_size: int = 500,
        max_chunk_bytes: int = 10 << 20,
        retry_on_status: Iterable[int] = RETRY_ON_STATUS,
        **bulk_params: Any,
    ) -> None:
        self.client = client
        self.max_retries = max_retries
        self.initial_backoff_s, self.max_backoff_s = initial_backoff_s, max_backoff_s
        self.chunk_size, self.max_chunk_bytes = chunk_size, max_chunk_bytes
        self.retry_on_status = tuple(retry_on_status)
        self.bulk_params = bulk_params  # e.g. pipeline=..., refresh=...

    async def write(self, actions: Iterable[dict[str, Any]]) -> BulkOutcome:
        from elasticsearch import ApiError, TransportError
        from elasticsearch.helpers import async_streaming_bulk

        outcome = BulkOutcome()
        try:
            async for ok, item in async_streaming_bulk(
                self.client,
                actions,
                chunk_size=self.chunk_size,
                max_chunk_bytes=self.max_chunk_bytes,
                raise_on_error=False,
                raise_on_exception=False,
                max_retries=self.max_retries,
                initial_backoff=self.initial_backoff_s,
                max_backoff=self.max_backoff_s,
                retry_on_status=self.retry_on_status,
                **self.bulk_params,
            ):
                op, info = next(iter(item.items()))
                if ok:
                    outcome.accepted += 1
                    continue
                status = info.get("status")
                detail = {"_id": info.get("_id"), "_index": info.get("_index"), "status": status}
                if "exception" in info:  # the whole request failed (auth, size, ...): nothing was refused
                    outcome.error = f"bulk request failed: HTTP {status}: {str(info.get('error'))[:300]}"
                    outcome.failed.append(detail)
                elif status == 409 and op == "create":
                    outcome.duplicates += 1
                elif status in self.retry_on_status or not isinstance(status, int) or status >= 500:
                    outcome.failed.append({**detail, "error": _reason(info.get("error"))})
                else:
                    outcome.refused.append({**detail, "error": _reason(info.get("error"))})
        except (ApiError, TransportError) as exc:
            outcome.error = f"bulk request failed: {type(exc).__name__}: {exc}"
        for item in outcome.refused:
            log.error("document refused for good", **item)
        return outcome


def _reason(error: Any) -> str:
    if isinstance(error, dict):
        return f"{error.get('type', '')}: {error.get('reason', '')}"[:500]
    return str(error)[:500]


@dataclass(frozen=True)
class ElasticsearchConfig:
    url: str = "http://127.0.0.1:9200"
    index: str = "logs-logwarden"
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    tls_verify: bool = True
    pipeline: str | None = None
    tag_key: str | None = None  # add the Forward tag to each document under this key
    idempotent_ids: bool = True  # _id from the chunk key and position (resends answered 409)
    compress: bool = True
    max_retries: int = 3
    initial_backoff_s: float = 0.5
    timeout_s: float = 30.0


class ElasticsearchOutput:
    name = "elasticsearch"

    def __init__(self, config: ElasticsearchConfig, client=None) -> None:
        self.config = config
        self.client = client
        self.writer: BulkWriter | None = None

    async def start(self) -> None:
        c = self.config
        if self.client is None:
            from elasticsearch import AsyncElasticsearch

            auth: dict[str, Any] = {}
            if c.api_key:
                auth["api_key"] = c.api_key
            elif c.username:
                auth["basic_auth"] = (c.username, c.password or "")
            self.client = AsyncElasticsearch(
                c.url,
                ca_certs=str(c.ca_file) if c.ca_file else None,
                verify_certs=c.tls_verify,
                http_compress=c.compress,
                request_timeout=c.timeout_s,
                retry_on_status=RETRY_ON_STATUS,
                max_retries=c.max_retries,
                retry_on_timeout=True,
                **auth,
            )
        params = {"pipeline": c.pipeline} if c.pipeline else {}
        self.writer = BulkWriter(
            self.client, max_retries=c.max_retries, initial_backoff_s=c.initial_backoff_s, **params
        )

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    def actions(self, chunk: Chunk) -> list[dict[str, Any]]:
        c = self.config
        out = []
        for i, r in enumerate(chunk.records):
            doc = json.loads(to_json(r.record))  # bytes, EventTime, invalid UTF-8 made JSON-safe
            doc.setdefault("@timestamp", _iso(epoch(r.time)))
            if c.tag_key:
                doc[c.tag_key] = chunk.tag
            action: dict[str, Any] = {"_op_type": "create", "_index": c.index, "_source": doc}
            if c.idempotent_ids:
                action["_id"] = hashlib.blake2b(f"{chunk.key}\x00{i}".encode(), digest_size=15).hexdigest()
            out.append(action)
        return out

    async def send(self, chunk: Chunk) -> None:
        assert self.writer is not None, "start() first"
        outcome = await self.writer.write(self.actions(chunk))
        if not outcome.complete:
            raise NextHopError(
                f"elasticsearch: {len(outcome.failed)} of {len(chunk.records)} documents not accepted"
                + (f" ({outcome.error})" if outcome.error else "")
            )

    async def send_signal(self, tag: str, payload: bytes, options: dict[str, Any]) -> None:
        raise Unsupported("the Elasticsearch next hop writes log records only, not Fluent Bit metrics or traces")


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
