"""Splunk HTTP Event Collector next hop (``POST /services/collector/event``, INTEGRATIONS.md §6.7).

Records go as concatenated JSON events ``{"time", "host", "source", "sourcetype", "index", "event"}`` in
requests of at most ``max_batch_bytes``, one at a time (order kept), with ``Authorization: Splunk <token>``.
Splunk's answers, by their machine-readable ``code``:

* 200 ``{"code": 0}``: accepted. 400 ``{"code": 5}`` (no data): nothing to accept.
* 400 with ``invalid-event-number`` N and code 6 (invalid data format), 12 (event field required) or 13 (event
  field blank): the events before N were indexed, event N is refused for good (logged, counted); the events
  after it are sent again.
* 429, 503 (``code`` 9, server busy) and other 5xx, or no answer: retried with backoff until ``budget_s``
  runs out, then ``NextHopError`` (the chunk is not acked; the shipper sends it again).
* Any other refusal (401/403 token codes 2-4, 400 incorrect index code 7, ...): ``NextHopError`` at once,
  never a silent drop.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from logwarden.integrations.outputs.base import Chunk, NextHopError, Unsupported, epoch, to_json

log = structlog.get_logger("logwarden.outputs.splunk_hec")

RETRYABLE = {429, 500, 502, 503, 504}
CODE_NO_DATA = 5
EVENT_REFUSALS = {6, 12, 13}  # invalid data format, event field required, event field blank: one event at fault


@dataclass(frozen=True)
class HecConfig:
    url: str = "https://127.0.0.1:8088"
    token: str = ""
    index: str | None = None
    sourcetype: str | None = "logwarden"
    source: str | None = None  # None: the tag
    host_key: str | None = "host"  # record key for the event's host field
    channel: str | None = None  # X-Splunk-Request-Channel (needed when indexer acknowledgement is on)
    ca_file: Path | None = None
    tls_verify: bool = True
    max_batch_bytes: int = 1 << 20
    timeout_s: float = 10.0
    budget_s: float = 30.0


@dataclass
class HecOutcome:
    accepted: int = 0
    refused: int = 0


class SplunkHecOutput:
    name = "splunk_hec"

    def __init__(self, config: HecConfig) -> None:
        self.config = config
        self.session: aiohttp.ClientSession | None = None
        self.refused = 0

    async def start(self) -> None:
        c = self.config
        ssl_arg: Any = None
        if c.url.startswith("https"):
            if not c.tls_verify:
                ssl_arg = False
            elif c.ca_file:
                import ssl

                ssl_arg = ssl.create_default_context(cafile=str(c.ca_file))
        headers = {"Authorization": f"Splunk {c.token}", "Content-Type": "application/json"}
        if c.channel:
            headers["X-Splunk-Request-Channel"] = c.channel
        self.session = aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(ssl=ssl_arg, limit=16),
            timeout=aiohttp.ClientTimeout(total=c.timeout_s),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def events(self, chunk: Chunk) -> list[bytes]:
        c = self.config
        out = []
        for r in chunk.records:
            event: dict[str, Any] = {"time": round(epoch(r.time), 6), "source": c.source or chunk.tag}
            if c.sourcetype:
                event["sourcetype"] = c.sourcetype
            if c.index:
                event["index"] = c.index
            host = r.record.get(c.host_key) if c.host_key else None
            if isinstance(host, str) and host:
                event["host"] = host
            event["event"] = r.record
            out.append(to_json(event))
        return out

    async def send(self, chunk: Chunk) -> None:
        await self.write(self.events(chunk), chunk.tag)

    async def send_signal(self, tag: str, payload: bytes, options: dict[str, Any]) -> None:
        raise Unsupported("Splunk HEC carries log events only, not Fluent Bit metrics or traces")

    async def write(self, events: list[bytes], tag: str = "") -> HecOutcome:
        """Send ``events`` (JSON objects) in order; accepted and permanently refused counts."""
        outcome = HecOutcome()
        start = 0
        while start < len(events):
            end, size = start, 0
            while end < len(events) and (end == start or size + len(events[end]) <= self.config.max_batch_bytes):
                size += len(events[end])
                end += 1
            start = await self._post(events, start, end, outcome, tag)
        return outcome

    async def _post(self, events: list[bytes], start: int, end: int, outcome: HecOutcome, tag: str) -> int:
        """POST ``events[start:end]`` until Splunk takes it; returns where the next request starts."""
        assert self.session is not None, "start() first"
        c = self.config
        deadline = time.monotonic() + c.budget_s
        failures = 0
        url = c.url.rstrip("/") + "/services/collector/event"
        while True:
            body = b"".join(events[start:end])
            try:
                async with self.session.post(url, data=body) as response:
                    status, text = response.status, await response.text()
                reply = _reply(text)
                code = reply.get("code")
                if status == 200 or (status == 400 and code == CODE_NO_DATA):
                    outcome.accepted += end - start
                    return end
                if status == 400 and code in EVENT_REFUSALS and isinstance(reply.get("invalid-event-number"), int):
                    bad = start + reply["invalid-event-number"]
                    if start <= bad < end:
                        outcome.accepted += bad - start
                        outcome.refused += 1
                        self.refused += 1
                        log.error(
                            "HEC refused an event for good", tag=tag, position=bad - start, reply=reply.get("text")
                        )
                        return bad + 1
                reason = f"HTTP {status} code {code}: {reply.get('text', text[:200])}"
                if status not in RETRYABLE:
                    raise NextHopError(f"splunk hec refused the events: {reason}")
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            failures += 1
            delay = random.uniform(0, min(2.0, 0.05 * 2**failures))
            if time.monotonic() + delay >= deadline:
                raise NextHopError(f"splunk hec {c.url}: {reason}")
            log.warning("next hop try failed", next_hop="splunk_hec", tag=tag, failures=failures, error=reason)
            await asyncio.sleep(delay)


def _reply(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
