"""The transport-independent scoring service; the gRPC servicers and the HTTP/JSON gateway both call it.

API (all on the server's event loop; types in ``logwarden.grpc_server.service.schema``)::

    await service.score(events, mode="stream" | "sequence", timeout=None, idempotency_key="", model="",
                        window_scope="", partial_sessions=False) -> ScoreOutput
    await service.submit_labels(labels: Sequence[LabelIn]) -> list[LabelOut]
    await service.list_labels(query: LabelQuery) -> LabelPage
    await service.retract_labels(label_ids, external_ids, analyst) -> list[RetractOut]
    service.model_info(model="") -> ModelInfoOut
    await service.reload_model(version, model="") -> tuple[str, ModelInfoOut, bool]  # previous, now, changed

Errors are ``ServiceError`` subclasses (``errors.py``) carrying the gRPC code and HTTP status:
InvalidRequest (whole request unusable: empty, too many events, an unknown model route), Overloaded (queue
full: retry), ShuttingDown, DeadlineExceeded, NotFound / FailedPrecondition (reload), Unimplemented (no label
store). A bad *event* does not fail the call: its ``EventOut`` has ``status="invalid"`` and names the field,
and every other event is scored. ``timeout`` is the caller's remaining time in seconds; no work starts for a
call whose deadline passed.

Each event's ``message`` is a raw line, split with its model's line format; a line that does not match is
scored with the whole line as content and a warning. The session is the event's ``session_key``, else the
one the model's session rule finds in the line, else the source. The model is the request's ``model``
route, else the first route whose rules the event's attributes match, else the default (``routing``);
results carry the route's name.

*stream* mode continues each (source, session) from its stored window (the last ``window_size`` keys,
context only; an event with ``session_end`` also gets the end judged, a ``SessionOut``, and its window
dropped); windows live in the request's ``window_scope`` (``windows/scoped.py``: ad-hoc scopes never evict
the default scope's windows). *sequence* mode scores each (source, session) group of the request as a
complete session, keeps no state, and adds one ``SessionOut`` per session; with ``partial_sessions`` only
the sessions with an event marked ``session_end`` have their end and template set judged, the others are
``open``. For models whose sessions are count or time windows, sequence mode cuts each source's events
(without a ``session_key``) into windows exactly as training did (time windows need each event's time: from
the line or ``timestamp``); with overlapping windows an event's result comes from the first window holding
it. Stream mode keeps one window per source for them (the last ``window_size`` keys), an approximation.

A request with an ``idempotency_key`` is scored once: a replay gets the stored answer (``replayed``) and
touches no window (``idempotency``).

Plug-ins: ``k_lookup(source) -> int | None`` overrides the default model's calibrated top-K per source
(labels recalibrate it; it must not block), ``labels`` is the label store (``LabelSink``; the server's is
``label_sink.StoreLabelSink``), ``on_model_change(model)`` is awaited after a reload changed the default model.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from logwarden.core.detect.detector import EventVerdict
from logwarden.core.errors import LogWardenError
from logwarden.core.labels.store import Submitted
from logwarden.core.parsing.sessions import Event as ParsedEvent
from logwarden.core.parsing.sessions import build_sessions, in_time_range, session_key
from logwarden.core.records import LogRecord
from logwarden.grpc_server.observability import ServerMetrics
from logwarden.grpc_server.service.errors import DeadlineExceeded, InvalidRequest, ServiceError, Unimplemented
from logwarden.grpc_server.service.idempotency import Idempotency, MemoryIdempotency, check_key, fingerprint
from logwarden.grpc_server.service.locks import KeyedLocks
from logwarden.grpc_server.service.model_holder import ModelHolder, ModelRegistry, ServedModel
from logwarden.grpc_server.service.routing import check_route_name
from logwarden.grpc_server.service.scheduler import Scheduler, SessionScore, SessionWork
from logwarden.grpc_server.service.schema import (
    INVALID,
    SCORED,
    EventIn,
    EventOut,
    Expected,
    LabelIn,
    LabelOut,
    LabelPage,
    LabelQuery,
    Mode,
    ModelInfoOut,
    RetractOut,
    ScoreOutput,
    SessionOut,
)
from logwarden.grpc_server.service.validation import (
    Limits,
    check_batch,
    check_event,
    check_label,
    check_label_query,
    check_retraction,
    retract_id,
)
from logwarden.grpc_server.service.windows import window_key
from logwarden.grpc_server.service.windows.scoped import MAX_SCOPE_BYTES, ScopedWindows

KLookup = Callable[[str], int | None]
ModelListener = Callable[[ServedModel], Awaitable[None]]


class LabelSink(Protocol):
    """The label store as the service sees it (``label_sink.StoreLabelSink`` implements it)."""

    async def submit(self, labels: Sequence[LabelIn]) -> list[Submitted]:
        """Store valid labels durably; the store's id of each, and whether it was a duplicate or replaced one."""
        ...

    async def list(self, query: LabelQuery, limit: int) -> LabelPage:
        """One page of stored labels, oldest first."""
        ...

    async def retract(self, label_ids: Sequence[int], external_ids: Sequence[str], analyst: str) -> list[RetractOut]:
        """Withdraw labels by store id, then by external id; unknown ones are reported, not raised."""
        ...


@dataclass(slots=True)
class _Group:
    source: str
    session: str
    indices: list[int] = field(default_factory=list)
    contents: list[str] = field(default_factory=list)
    complete: bool = False  # an event marked the session's end
    levels: list[str | None] = field(default_factory=list)  # the level field's values (novelty's severity)


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """What a score request asks besides its events (see ScoreRequest in protos/logwarden/v1/scoring.proto)."""

    mode: Mode = "stream"
    idempotency_key: str = ""
    model: str = ""
    window_scope: str = ""
    partial_sessions: bool = False

    def check(self) -> None:
        if self.mode not in ("stream", "sequence"):
            raise InvalidRequest("mode", f"unknown mode {self.mode!r}: use stream or sequence")
        if self.idempotency_key:
            check_key(self.idempotency_key)
        if self.model:
            try:
                check_route_name(self.model)
            except ValueError as exc:
                raise InvalidRequest("model", str(exc)) from None
        if len(self.window_scope.encode("utf-8", "surrogatepass")) > MAX_SCOPE_BYTES:
            raise InvalidRequest("window_scope", f"longer than {MAX_SCOPE_BYTES} bytes")


@dataclass(slots=True)
class _Part:
    """One model route's share of a request's answer (results by request index)."""

    results: dict[int, EventOut]
    sessions: list[SessionOut]
    version: str


class ScoringService:
    def __init__(
        self,
        *,
        models: ModelRegistry,
        scheduler: Scheduler,
        windows: ScopedWindows,
        limits: Limits,
        window_size: int = 128,
        metrics: ServerMetrics | None = None,
        k_lookup: KLookup | None = None,
        labels: LabelSink | None = None,
        on_model_change: ModelListener | None = None,
        idempotency: Idempotency | None = None,
    ) -> None:
        self.models = models
        self.scheduler = scheduler
        self.windows = windows
        self.limits = limits
        self.window_size = window_size
        self.metrics = metrics or ServerMetrics()
        self.k_lookup = k_lookup
        self.labels = labels
        self.on_model_change = on_model_change
        self.idempotency = idempotency or MemoryIdempotency(ttl_s=600)
        self._locks = KeyedLocks()

    @property
    def holder(self) -> ModelHolder:
        """The default model route's holder."""
        return self.models.default

    # -- scoring ----------------------------------------------------------------------------------

    async def score(
        self,
        events: Sequence[EventIn],
        mode: Mode = "stream",
        *,
        timeout: float | None = None,
        idempotency_key: str = "",
        model: str = "",
        window_scope: str = "",
        partial_sessions: bool = False,
    ) -> ScoreOutput:
        loop = asyncio.get_running_loop()
        if timeout is not None and timeout <= 0:
            raise DeadlineExceeded("deadline passed before the call was read")
        deadline = None if timeout is None else loop.time() + timeout
        options = RequestOptions(mode, idempotency_key, model, window_scope, partial_sessions)
        options.check()
        check_batch(events, self.limits)
        if not options.idempotency_key:
            out = await self._score(events, options, deadline)
        else:
            digest = fingerprint(events, (options.mode, options.model, options.window_scope, partial_sessions))
            claim = await self.idempotency.claim(options.idempotency_key, digest, deadline)
            if claim.replay is not None:
                self.metrics.replays.inc()
                return replace(claim.replay, replayed=True)
            try:
                out = await self._score(events, options, deadline)
            except BaseException:
                await self.idempotency.release(options.idempotency_key)
                raise
            await self.idempotency.store(options.idempotency_key, digest, out)
        self._count(out)
        return out

    async def _score(self, events: Sequence[EventIn], options: RequestOptions, deadline: float | None) -> ScoreOutput:
        """Each model route scores its share of the events; the answer keeps the request's order."""
        routes = self._routes(events, options)
        parts = {
            name: await self._score_route(name, events, indices, options, deadline) for name, indices in routes.items()
        }
        first = next(iter(routes))
        if len(parts) == 1:
            part = parts[first]
            results = [part.results[i] for i in range(len(events))]
            return ScoreOutput(results, part.sessions, part.version, model=first)
        merged = {i: r for part in parts.values() for i, r in part.results.items()}
        sessions = [s for part in parts.values() for s in part.sessions]
        return ScoreOutput([merged[i] for i in range(len(events))], sessions, parts[first].version, model=first)

    def _routes(self, events: Sequence[EventIn], options: RequestOptions) -> dict[str, list[int]]:
        """Route name → the request indices of its events, routes in order of first appearance."""
        if options.model or len(self.models) == 1:
            self.models.holder(options.model)  # an unknown route name is refused here
            return {options.model or self.models.table.default: list(range(len(events)))}
        routes: dict[str, list[int]] = {}
        for i, event in enumerate(events):
            routes.setdefault(self.models.route(event.attributes), []).append(i)
        return routes

    async def _score_route(
        self,
        route: str,
        events: Sequence[EventIn],
        indices: list[int],
        options: RequestOptions,
        deadline: float | None,
    ) -> _Part:
        model = self.models.holder(route).current  # pinned for the whole call, even across a reload
        results, groups, warnings = self._group(model, events, indices, options.mode)
        sessions: list[SessionOut] = []
        if groups:
            if options.mode == "stream":
                scores = await self._score_stream(model, route, groups, options.window_scope, deadline)
                judged = [g.complete for g in groups]
            else:
                judged = [g.complete or not options.partial_sessions for g in groups]
                scores = await self._submit(model, groups, [[] for _ in groups], judged, deadline, judged)
            for group, score, was_judged in zip(groups, scores, judged, strict=True):
                for i, key, template, verdict in zip(
                    group.indices, score.keys, score.new_templates, score.verdict.events, strict=True
                ):
                    if i in results:  # overlapping windows: an event's verdict is from its first window
                        continue
                    results[i] = out_i = _event_out(events[i].id, verdict, key, model.version, group, warnings[i])
                    out_i.model = route
                    if template is not None:  # a new template: show the line as the template it would be
                        out_i.template = template
                if options.mode == "sequence" or group.complete:
                    session = _session_out(group, score, model, [events[i].id for i in group.indices])
                    session.model, session.open = route, not was_judged
                    sessions.append(session)
        return _Part(results, sessions, model.version)

    def _group(
        self, model: ServedModel, events: Sequence[EventIn], indices: list[int], mode: Mode
    ) -> tuple[dict[int, EventOut], list[_Group], dict[int, list[str]]]:
        """Invalid events' results, and the sessions (in order of first appearance) of the valid ones."""
        rule = model.detector.rule
        windowed = mode == "sequence" and rule.kind in ("count", "time")  # sessions are windows of a source
        results: dict[int, EventOut] = {}
        groups: dict[tuple[str, str], _Group] = {}
        to_window: list[ParsedEvent] = []  # build_sessions cuts them into windows per source
        warnings: dict[int, list[str]] = {}
        for i in indices:
            event = events[i]
            try:
                text, notes = check_event(i, event, self.limits)
            except InvalidRequest as exc:
                results[i] = _invalid(event, exc.field, exc.message, model.version)
                continue
            record = self._parse(model, text, event.source, notes, times=windowed and rule.kind == "time")
            warnings[i] = notes
            if windowed and not event.session_key:
                record.line_no = i  # where the window's events came from in the request
                if record.timestamp is None:
                    record.timestamp = event.timestamp
                if rule.kind == "time" and not in_time_range(record.timestamp):
                    results[i] = _invalid(
                        event,
                        f"events[{i}].timestamp",
                        "this model's sessions are time windows: send a timestamp (or a line whose format carries "
                        "one) between the years 1 and 9999",
                        model.version,
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
        for window in build_sessions(to_window, rule):  # windows are whole by their rule's definition
            groups[(window.source, window.key)] = _Group(
                window.source,
                window.key,
                [e.record.line_no for e in window.events],
                [e.record.content for e in window.events],
                complete=True,
                levels=[model.detector.line(e.record)[1] for e in window.events],
            )
        return results, list(groups.values()), warnings

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
        use_labels = model is self.models.default.current  # labels recalibrate the default model's K
        work = [
            SessionWork(g.contents, ctx, end, self._k(g.source) if use_labels else None, all_keys, g.levels)
            for g, ctx, end, all_keys in zip(groups, contexts, complete, whole, strict=True)
        ]
        return await self.scheduler.submit(model, work, deadline)

    async def _score_stream(
        self, model: ServedModel, route: str, groups: list[_Group], scope: str, deadline: float | None
    ) -> list[SessionScore]:
        windows = await self.windows.store(scope)
        named = "" if route == self.models.table.default else route
        keys = [window_key(g.source, g.session, named) for g in groups]
        async with self._locks.hold([f"{scope}\x1f{k}" for k in keys]):
            stored = await windows.get_many(keys)
            contexts = [
                list(w["keys"])[-self.window_size :] if w and w.get("version") == model.version else [] for w in stored
            ]
            # a window as long as its bound may have dropped the session's first keys: then its set of
            # templates is not known whole, and its combination is not judged at its end
            whole = [len(ctx) < self.window_size for ctx in contexts]
            scores = await self._submit(model, groups, contexts, [g.complete for g in groups], deadline, whole)
            await windows.put_many(
                {
                    key: {"version": model.version, "keys": [*ctx, *score.keys][-self.window_size :]}
                    for key, ctx, score, group in zip(keys, contexts, scores, groups, strict=True)
                    if not group.complete
                }
            )
            await windows.delete_many([key for key, group in zip(keys, groups, strict=True) if group.complete])
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
            stored = await self.labels.submit([label for _, label in valid])
            for (i, _), submitted in zip(valid, stored, strict=True):
                out[i].label_id = str(submitted.id)
                out[i].duplicate = submitted.duplicate
                out[i].replaced = submitted.replaced is not None
        return out

    async def list_labels(self, query: LabelQuery) -> LabelPage:
        """Stored labels in store order, one page (``next_after_id`` continues it)."""
        if self.labels is None:
            raise Unimplemented("this server has no label store configured (set label_db)")
        limit = check_label_query(query, self.limits)
        return await self.labels.list(query, limit)

    async def retract_labels(
        self, label_ids: Sequence[str], external_ids: Sequence[str], analyst: str
    ) -> list[RetractOut]:
        """Withdraw labels (an analyst's decision); one result per id, in the order given (store ids first)."""
        if self.labels is None:
            raise Unimplemented("this server has no label store configured (set label_db)")
        check_retraction(label_ids, external_ids, analyst, self.limits)
        given = [(f"label_ids[{i}]", x) for i, x in enumerate(label_ids)]
        given += [(f"external_ids[{i}]", x) for i, x in enumerate(external_ids)]
        out: list[RetractOut | None] = []
        wanted: list[tuple[int, int | str]] = []
        for field_name, value in given:
            try:
                wanted.append((len(out), retract_id(field_name, value, self.limits)))
                out.append(None)
            except InvalidRequest as exc:
                out.append(RetractOut(value, False, exc.message, exc.field))
        ids = [v for _, v in wanted if isinstance(v, int)]
        external = [v for _, v in wanted if isinstance(v, str)]
        done = await self.labels.retract(ids, external, analyst) if wanted else []
        for (k, _), result in zip(wanted, done, strict=True):  # the store answers store ids first, as asked
            if not result.retracted:
                result.error_field = given[k][0]
                result.error = f"{given[k][0]}: {result.error}"
            out[k] = result
        return [r for r in out if r is not None]

    def model_info(self, model: str = "") -> ModelInfoOut:
        return self.models.info(model)

    async def reload_model(self, version: str | None = None, model: str = "") -> tuple[str, ModelInfoOut, bool]:
        holder = self.models.holder(model)
        try:
            previous, served, changed = await holder.reload(version)
        except ServiceError:
            self.metrics.reloads.labels("failed").inc()
            raise
        self.metrics.reloads.labels("changed" if changed else "unchanged").inc()
        self.metrics.set_model(served.version, previous)
        if changed and holder is self.models.default and self.on_model_change is not None:
            await self.on_model_change(served)
        return previous, self.models.info(model), changed


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


def _invalid(event: EventIn, field: str, message: str, version: str) -> EventOut:
    return EventOut(
        id=event.id,
        status=INVALID,
        error=message,
        error_field=field,
        model_version=version,
        source=event.source,
        session_key=event.session_key,
    )


def _session_out(group: _Group, score: SessionScore, model: ServedModel, event_ids: list[str]) -> SessionOut:
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
        event_ids=event_ids,
    )
