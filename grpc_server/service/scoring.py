"""The transport-independent scoring service; the gRPC servicers and the HTTP/JSON gateway both call it.

API (all on the server's event loop; types in ``logwarden.grpc_server.service.schema``)::

    await service.score(events: Sequence[EventIn], mode="stream" | "sequence", timeout=None) -> ScoreOutput
    await service.submit_labels(labels: Sequence[LabelIn]) -> list[LabelOut]
    service.model_info() -> ModelInfoOut
    await service.reload_model(version: str | None) -> tuple[str, ModelInfoOut, bool]  # previous, now, changed

Errors are ``ServiceError`` subclasses (``errors.py``) carrying the gRPC code and HTTP status:
InvalidRequest (whole request unusable: empty, too many events), Overloaded (queue full: retry),
ShuttingDown, DeadlineExceeded, NotFound / FailedPrecondition (reload), Unimplemented (no label store).
A bad *event* does not fail the call: its ``EventOut`` has ``status="invalid"`` and names the field,
and every other event is scored. ``timeout`` is the caller's remaining time in seconds; no work
starts for a call whose deadline passed.

Each event's ``message`` is a raw line, split with the served model's line format; a line that does
not match is scored with the whole line as content and a warning. The session is the event's
``session_key``, else the one the model's session rule finds in the line, else the source.

*stream* mode continues each (source, session) from its stored window (the last ``window_size`` keys,
context only; an event with ``session_end`` also gets the end judged, a ``SessionOut``, and its window
dropped); *sequence* mode scores each (source, session) group of the request as a complete session,
keeps no state, and adds one ``SessionOut`` per session. For models whose sessions are count or time
windows, sequence mode cuts each source's events (without a ``session_key``) into windows exactly as
training did (time windows need each event's time: from the line or ``timestamp``); with overlapping
windows an event's result comes from the first window holding it. Stream mode keeps one window per
source for them (the last ``window_size`` keys), an approximation of the training windows.

Plug-ins: ``k_lookup(source) -> int | None`` overrides the calibrated top-K per source (labels
recalibrate it; it must not block), ``labels`` is the label store (``LabelSink``; the server's is
``label_sink.StoreLabelSink``), ``on_model_change(model)`` is awaited after a reload changed the model.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from logwarden.core.detect.detector import EventVerdict
from logwarden.core.errors import LogWardenError
from logwarden.core.parsing.sessions import Event as ParsedEvent
from logwarden.core.parsing.sessions import build_sessions, session_key
from logwarden.core.records import LogRecord
from logwarden.grpc_server.observability import ServerMetrics
from logwarden.grpc_server.service.errors import DeadlineExceeded, InvalidRequest, ServiceError, Unimplemented
from logwarden.grpc_server.service.locks import KeyedLocks
from logwarden.grpc_server.service.model_holder import ModelHolder, ServedModel
from logwarden.grpc_server.service.scheduler import Scheduler, SessionScore, SessionWork
from logwarden.grpc_server.service.schema import (
    INVALID,
    SCORED,
    EventIn,
    EventOut,
    Expected,
    LabelIn,
    LabelOut,
    Mode,
    ModelInfoOut,
    ScoreOutput,
    SessionOut,
)
from logwarden.grpc_server.service.validation import Limits, check_batch, check_event, check_label
from logwarden.grpc_server.service.windows import WindowStore, window_key

KLookup = Callable[[str], int | None]
ModelListener = Callable[[ServedModel], Awaitable[None]]


class LabelSink(Protocol):
    """The label store as the service sees it (``label_sink.StoreLabelSink`` implements it)."""

    async def submit(self, labels: Sequence[LabelIn]) -> list[str]:
        """Store valid labels durably; return the store's id of each."""
        ...


@dataclass(slots=True)
class _Group:
    source: str
    session: str
    indices: list[int] = field(default_factory=list)
    contents: list[str] = field(default_factory=list)
    complete: bool = False  # stream mode: an event marked the session's end
    levels: list[str | None] = field(default_factory=list)  # the level field's values (novelty's severity)


class ScoringService:
    def __init__(
        self,
        *,
        holder: ModelHolder,
        scheduler: Scheduler,
        windows: WindowStore,
        limits: Limits,
        window_size: int = 128,
        metrics: ServerMetrics | None = None,
        k_lookup: KLookup | None = None,
        labels: LabelSink | None = None,
        on_model_change: ModelListener | None = None,
    ) -> None:
        self.holder = holder
        self.scheduler = scheduler
        self.windows = windows
        self.limits = limits
        self.window_size = window_size
        self.metrics = metrics or ServerMetrics()
        self.k_lookup = k_lookup
        self.labels = labels
        self.on_model_change = on_model_change
        self._locks = KeyedLocks()

    # -- scoring ----------------------------------------------------------------------------------

    async def score(
        self, events: Sequence[EventIn], mode: Mode = "stream", *, timeout: float | None = None
    ) -> ScoreOutput:
        loop = asyncio.get_running_loop()
        if timeout is not None and timeout <= 0:
            raise DeadlineExceeded("deadline passed before the call was read")
        deadline = None if timeout is None else loop.time() + timeout
        if mode not in ("stream", "sequence"):
            raise InvalidRequest("mode", f"unknown mode {mode!r}: use stream or sequence")
        check_batch(events, self.limits)
        model = self.holder.current  # pinned for the whole call, even across a reload
        rule = model.detector.rule
        windowed = mode == "sequence" and rule.kind in ("count", "time")  # sessions are windows of a source
        results: list[EventOut | None] = [None] * len(events)
        groups: dict[tuple[str, str], _Group] = {}
        to_window: list[ParsedEvent] = []  # build_sessions cuts them into windows per source
        warnings: dict[int, list[str]] = {}
        for i, event in enumerate(events):
            try:
                text, notes = check_event(i, event, self.limits)
            except InvalidRequest as exc:
                results[i] = EventOut(
                    id=event.id,
                    status=INVALID,
                    error=exc.message,
                    error_field=exc.field,
                    model_version=model.version,
                    source=event.source,
                    session_key=event.session_key,
                )
                continue
            record = self._parse(model, text, event.source, notes, times=windowed and rule.kind == "time")
            warnings[i] = notes
            if windowed and not event.session_key:
                record.line_no = i  # where the window's events came from in the request
                if record.timestamp is None:
                    record.timestamp = event.timestamp
                if rule.kind == "time" and record.timestamp is None:
                    results[i] = EventOut(
                        id=event.id,
                        status=INVALID,
                        error_field=f"events[{i}].timestamp",
                        error="this model's sessions are time windows: send a timestamp (or a "
                        "line whose format carries one)",
                        model_version=model.version,
                        source=event.source,
                    )
                    continue
                to_window.append(ParsedEvent(record, None))
                continue
            session = event.session_key or session_key(rule, record, model.key_pattern) or event.source
            group = groups.get((event.source, session))
            if group is None:
                group = groups[(event.source, session)] = _Group(event.source, session)
            group.indices.append(i)
            group.contents.append(record.content)
            group.levels.append(model.detector.line(record)[1])
            group.complete |= event.session_end
        for window in build_sessions(to_window, rule):
            groups[(window.source, window.key)] = _Group(
                window.source,
                window.key,
                [e.record.line_no for e in window.events],
                [e.record.content for e in window.events],
                levels=[model.detector.line(e.record)[1] for e in window.events],
            )
        ordered = list(groups.values())
        sessions: list[SessionOut] = []
        version = model.version
        if ordered:
            if mode == "stream":
                scores = await self._score_stream(model, ordered, deadline)
            else:
                scores = await self._submit(model, ordered, [[] for _ in ordered], [True] * len(ordered), deadline)
            for group, score in zip(ordered, scores, strict=True):
                for i, content, key, verdict in zip(
                    group.indices, group.contents, score.keys, score.verdict.events, strict=True
                ):
                    if results[i] is not None:  # overlapping windows: an event's verdict is from its first window
                        continue
                    results[i] = out_i = _event_out(events[i].id, verdict, key, version, group, warnings[i])
                    if key is None:  # a new template: show the line as the template it would be
                        out_i.template = model.detector.new_template_text(content)
                if mode == "sequence" or group.complete:
                    sessions.append(_session_out(group, score, model))
        out = ScoreOutput([r for r in results if r is not None], sessions, model.version)
        self._count(out)
        return out

    def _parse(self, model: ServedModel, text: str, source: str, notes: list[str], times: bool) -> LogRecord:
        try:
            return model.fmt.parse(text, source, times=times)  # only time windows need the line's time
        except LogWardenError:
            notes.append(
                f"message does not match the model's line format {model.fmt.spec!r}; "
                "the whole message was scored as content"
            )
            return LogRecord(content=text.rstrip("\r\n"), source=source)

    async def _submit(
        self,
        model: ServedModel,
        groups: list[_Group],
        contexts: list[list[str | None]],
        complete: list[bool],
        deadline: float | None,
        whole: list[bool] | None = None,
    ) -> list[SessionScore]:
        whole = whole or [True] * len(groups)
        work = [
            SessionWork(g.contents, ctx, end, self._k(g.source), all_keys, g.levels)
            for g, ctx, end, all_keys in zip(groups, contexts, complete, whole, strict=True)
        ]
        return await self.scheduler.submit(model, work, deadline)

    async def _score_stream(
        self, model: ServedModel, groups: list[_Group], deadline: float | None
    ) -> list[SessionScore]:
        keys = [window_key(g.source, g.session) for g in groups]
        async with self._locks.hold(keys):
            stored = await self.windows.get_many(keys)
            contexts = [
                list(w["keys"])[-self.window_size :] if w and w.get("version") == model.version else [] for w in stored
            ]
            # a window as long as its bound may have dropped the session's first keys: then its set of
            # templates is not known whole, and its combination is not judged at its end
            whole = [len(ctx) < self.window_size for ctx in contexts]
            scores = await self._submit(model, groups, contexts, [g.complete for g in groups], deadline, whole)
            await self.windows.put_many(
                {
                    key: {"version": model.version, "keys": [*ctx, *score.keys][-self.window_size :]}
                    for key, ctx, score, group in zip(keys, contexts, scores, groups, strict=True)
                    if not group.complete
                }
            )
            await self.windows.delete_many([key for key, group in zip(keys, groups, strict=True) if group.complete])
        return scores

    def _k(self, source: str) -> int | None:
        return self.k_lookup(source) if self.k_lookup is not None else None

    def _count(self, out: ScoreOutput) -> None:
        m, version = self.metrics, out.model_version
        scored = [r for r in out.results if r.status != INVALID]
        m.events.labels(version, "scored").inc(len(scored))
        m.events.labels(version, "invalid").inc(len(out.results) - len(scored))
        m.anomalous.labels(version).inc(sum(r.anomalous for r in scored))
        m.new_templates.labels(version).inc(sum(r.new_template for r in scored))
        for s in out.sessions:
            m.sessions.labels(version, "anomalous" if s.anomalous else "normal").inc()

    # -- labels and model -------------------------------------------------------------------------

    async def submit_labels(self, labels: Sequence[LabelIn]) -> list[LabelOut]:
        if self.labels is None:
            raise Unimplemented("this server has no label store configured (set label_db)")
        check_batch(labels, self.limits, "labels")
        out: list[LabelOut] = []
        valid: list[tuple[int, LabelIn]] = []
        for i, label in enumerate(labels):
            try:
                check_label(i, label, self.limits)
            except InvalidRequest as exc:
                out.append(LabelOut(label.id, False, exc.message, exc.field))
                continue
            if label.time is None:
                label.time = time.time()
            out.append(LabelOut(label.id, True))
            valid.append((i, label))
        if valid:
            ids = await self.labels.submit([label for _, label in valid])
            for (i, _), label_id in zip(valid, ids, strict=True):
                out[i].label_id = label_id
        return out

    def model_info(self) -> ModelInfoOut:
        return self.holder.info()

    async def reload_model(self, version: str | None = None) -> tuple[str, ModelInfoOut, bool]:
        try:
            previous, model, changed = await self.holder.reload(version)
        except ServiceError:
            self.metrics.reloads.labels("failed").inc()
            raise
        self.metrics.reloads.labels("changed" if changed else "unchanged").inc()
        self.metrics.set_model(model.version, previous)
        if changed and self.on_model_change is not None:
            await self.on_model_change(model)
        return previous, self.holder.info(), changed


def _event_out(
    event_id: str, v: EventVerdict, key: str | None, version: str, group: _Group, warnings: list[str]
) -> EventOut:
    return EventOut(
        event_id,
        SCORED,
        "",
        "",
        v.score,
        v.anomalous,
        key or "",
        v.template,
        key is None,
        v.rank,
        None if v.surprisal == math.inf else v.surprisal,
        [Expected(e.key, e.template, e.probability) for e in v.expected] if v.expected else [],
        v.reason,
        version,
        group.source,
        group.session,
        warnings,
        v.reason_code.value if v.reason_code else "",
    )


def _session_out(group: _Group, score: SessionScore, model: ServedModel) -> SessionOut:
    v = score.verdict
    end = None
    if v.end is not None:
        end = _event_out("", v.end, None, model.version, group, [])
        end.template_id, end.new_template = "", False
    return SessionOut(
        source=group.source,
        session_key=group.session,
        score=v.score,
        anomalous=v.anomalous,
        reason=v.reason,
        events=len(group.indices),
        anomalous_events=v.n_anomalous,
        end=end,
        model_version=model.version,
        reason_code=v.reason_code.value if v.reason_code else "",
    )
