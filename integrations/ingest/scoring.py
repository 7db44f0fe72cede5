"""Score a chunk of records with the scoring server and enrich each with ``ScoredEvent.document()``.

Which record key holds the line (``log``, then ``message``, ...), what is the source (a record key such as
``host`` or ``kubernetes.pod_name``, else the tag) and the session (a record key, else the model's rule) are
settings (``FieldMap``). The model route is a fixed name, or a record key's value; every event also carries
the tag as attribute ``tag``, so the server's routing rules can match on it. Scoring is fail-open: the client
never raises for scorer trouble, and records it could not score go on with ``logwarden.status: unscored``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from logwarden.integrations.client import UNSCORED, Event, ScoredEvent
from logwarden.integrations.outputs.base import Record, epoch


class Scorer(Protocol):
    async def score(self, events: Sequence[Event], mode: str = "stream", **options: Any) -> list[ScoredEvent]: ...


@dataclass(frozen=True)
class FieldMap:
    """Where the scorer's inputs are found in a record (dotted keys walk nested maps)."""

    message_keys: tuple[str, ...] = ("log", "message")
    source_key: str | None = None  # None: the tag is the source
    session_key: str | None = None  # None: the model's session rule finds it in the line
    model: str = ""  # fixed model route ("" = the server's default / its attribute rules)
    model_key: str | None = None  # record key whose value is the model route


def lookup(record: dict[str, Any], key: str) -> Any:
    """``record[key]``, or the nested value of a dotted key (``kubernetes.pod_name``; names that contain dots
    themselves, such as ``resource.host.name`` for ``{"resource": {"host.name": ...}}``, are found too)."""
    if key in record:
        return record[key]
    dot = key.find(".")
    while dot != -1:
        inner = record.get(key[:dot])
        if type(inner) is dict:
            found = lookup(inner, key[dot + 1 :])
            if found is not None:
                return found
        dot = key.find(".", dot + 1)
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


def enrich(record: dict[str, Any], document: dict[str, Any]) -> None:
    """Add ``document`` (``logwarden`` and ECS ``event.risk_score*``) to ``record``, keeping its own ``event`` keys."""
    record["logwarden"] = document["logwarden"]
    ecs = document.get("event")
    if ecs is not None:
        own = record.get("event")
        if own is None:
            record["event"] = ecs
        elif type(own) is dict:
            record["event"] = {**own, **ecs}


def unscored(reason: str) -> ScoredEvent:
    return ScoredEvent(id="", status=UNSCORED, reason=reason)


@dataclass
class ChunkResult:
    """How a chunk's records came out: counts per ``logwarden.status``."""

    statuses: Counter = field(default_factory=Counter)


class RecordScorer:
    """Scores and enriches chunks; ``scorer`` None means scoring is off (records go on marked unscored)."""

    def __init__(self, scorer: Scorer | None, fields: FieldMap, *, budget_s: float = 5.0) -> None:
        self.scorer = scorer
        self.fields = fields
        self.budget_s = budget_s
        self._off = unscored("scoring disabled (passthrough)").document()

    def _line(self, record: dict[str, Any]) -> Any:
        for key in self.fields.message_keys:
            value = lookup(record, key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, bytes) and value:
                return value
        return None

    async def enrich(self, tag: str, records: list[Record], key: str) -> ChunkResult:
        """Score ``records`` (one request per model route, in record order) and enrich each in place."""
        result = ChunkResult()
        if self.scorer is None:
            for r in records:
                enrich(r.record, self._off)
            result.statuses[UNSCORED] += len(records)
            return result
        f = self.fields
        routes: dict[str, tuple[list[int], list[Event]]] = {}
        missing = unscored(f"no message field (looked for {', '.join(f.message_keys)})").document()
        attributes = {"tag": tag}
        for i, r in enumerate(records):
            line = self._line(r.record)
            if line is None:
                enrich(r.record, missing)
                result.statuses[UNSCORED] += 1
                continue
            rec = r.record
            event = Event(
                id=str(i),
                source=_text(lookup(rec, f.source_key)) or tag if f.source_key else tag,
                session_key=_text(lookup(rec, f.session_key)) if f.session_key else "",
                timestamp=epoch(r.time),
                attributes=attributes,
            )
            if isinstance(line, bytes):
                event.raw = line
            else:
                event.message = line
            route = (_text(lookup(rec, f.model_key)) if f.model_key else "") or f.model
            routes.setdefault(route, ([], []))
            routes[route][0].append(i)
            routes[route][1].append(event)
        calls = [
            self.scorer.score(
                events,
                "stream",
                budget_s=self.budget_s,
                idempotency_key=key if len(routes) == 1 else f"{key}#{route}",
                model=route,
            )
            for route, (_, events) in routes.items()
        ]
        for (positions, _), scored in zip(routes.values(), await asyncio.gather(*calls), strict=True):
            for i, s in zip(positions, scored, strict=True):
                enrich(records[i].record, s.document())
                result.statuses[s.status] += 1
        return result
