"""``logwarden es-worker``: session verdicts, back-fill and analysts' labels, written back into Elasticsearch
(INTEGRATIONS.md §5.7).

A *pass* takes the documents after the checkpoint (window mode: ``time_field`` in [watermark, end), end =
now − ``lag_s``; pending mode: those an ingest pipeline marked ``logwarden.status: pending``), oldest first
through a point-in-time with ``search_after``, at most ``pass_docs`` of them (cut where the time changes),
plus the documents of the sessions still open at the checkpoint. It groups them by session (``session_field``,
else the key the model's rule finds in the line), and scores them in one sequence-mode call with
``partial_sessions``: a session is complete when its last event is more than ``idle_gap_s`` before the pass's
end (its last event carries ``session_end``); the others stay open. It writes back, with the official
client's bulk helper:

* event fields (``ScoredEvent.document()``) on documents that have none yet (pending ones, or shippers
  that bypass the proxy), with ``logwarden.session.state: open`` while their session is open;
* the session verdict (``logwarden.session``: state closed, verdict, score, reason, reason code, events)
  on every document of a complete session.

Regular indices get bulk ``update`` with ``retry_on_conflict``; data-stream backing indices get ``index``
with ``if_seq_no``/``if_primary_term`` (a conflict re-reads the document and tries again). A document
whose fields are already what the pass would write is not written (scores are rounded to 6 decimals so
the comparison is exact). Only when every write was acknowledged is the checkpoint saved (watermark and
open sessions), so a killed worker redoes at most its last pass, finds that pass's writes already done,
and neither misses a document nor writes one twice. Scorer trouble aborts the pass before any write; it is
tried again after ``poll_s``.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog

from logwarden.core.errors import LogWardenError
from logwarden.integrations.client.common import UNSCORED, Event, ScoredEvent, ScorerUnavailable, SessionVerdict
from logwarden.integrations.elasticsearch.bulk import lookup
from logwarden.integrations.elasticsearch.checkpoint import Checkpoint, CheckpointStore, OpenSession
from logwarden.integrations.elasticsearch.metrics import WorkerMetrics, serve_ops
from logwarden.integrations.elasticsearch.search import (
    Hit,
    deep_merge,
    fetch,
    iso,
    iter_hits,
    logical_index,
    to_millis,
    write_back,
)
from logwarden.integrations.elasticsearch.settings import WorkerSettings

log = structlog.get_logger("logwarden.es_worker")
DIGITS = 6


class ScorerTrouble(LogWardenError):
    """The scorer could not score a pass: nothing is written, the pass is tried again later."""


class WriteFailed(LogWardenError):
    """Elasticsearch refused some write-backs for good: the checkpoint stays where it was."""


@dataclass
class Session:
    key: str
    source: str
    hits: list[Hit] = field(default_factory=list)

    @property
    def last_ms(self) -> int | None:
        times = [h.time_ms for h in self.hits if h.time_ms is not None]
        return max(times) if times else None


@dataclass
class PassResult:
    documents: int = 0  # documents read in the pass (new ones)
    writes: int = 0
    closed: int = 0
    open: int = 0


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, DIGITS)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


class ModelRule:
    """The served model's session rule, applied here as the server applies it (its line format, then a key
    regex or a field), so that documents without a session field need no scoring call to find their session.
    None (``of``) when the server must decide: model routes, time or count windows, or no answer."""

    def __init__(self, line_format: str, rule) -> None:
        from logwarden.core.parsing.formats import get_format

        self.format, self.rule = get_format(line_format), rule
        self.pattern = re.compile(rule.key_regex) if rule.kind == "key" else None

    @classmethod
    def of(cls, scorer, model: str) -> ModelRule | None:
        from logwarden.core.parsing.sessions import SessionRule

        if model:
            return None
        try:
            info = scorer.model_info()
            rule = SessionRule.from_dict(json.loads(info.get("session_rule_json") or "{}"))
            if len(info.get("routes", [])) > 1 or rule.kind not in ("key", "field"):
                return None
            return cls(info.get("line_format", "plain"), rule)
        except (ScorerUnavailable, LogWardenError, ValueError, TypeError):
            return None  # the server finds the keys (one more call per pass)

    def key(self, line: str) -> str | None:
        from logwarden.core.parsing.sessions import session_key

        try:
            record = self.format.parse(line, times=False)
        except LogWardenError:
            return None
        return session_key(self.rule, record, self.pattern)


def session_fields(verdict: SessionVerdict) -> dict:
    return {
        "state": "closed",
        "verdict": "anomalous" if verdict.anomalous else "normal",
        "anomalous": verdict.anomalous,
        "score": round(verdict.score, DIGITS),
        "reason": verdict.reason,
        "reason_code": verdict.reason_code,
        "events": verdict.events,
        "anomalous_events": verdict.anomalous_events,
        "model_version": verdict.model_version,
    }


class EsWorker:
    """One worker over one index pattern: ``cycle()`` catches up with now − lag, ``backfill(a, b)`` a range."""

    def __init__(
        self,
        settings: WorkerSettings,
        es,
        scorer,
        *,
        metrics: WorkerMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.s, self.es, self.scorer = settings, es, scorer
        self.metrics = metrics or WorkerMetrics()
        self.clock = clock
        self.stopping = threading.Event()
        self.store = CheckpointStore(es, settings.checkpoint_index, settings.checkpoint_id())
        self._rule: ModelRule | None = None

    # -- driving --------------------------------------------------------------------------------

    def cycle(self) -> int:
        """Passes until the checkpoint reaches now − lag; the number of documents read."""
        s = self.s
        self._rule = ModelRule.of(self.scorer, s.model)
        self.store.ensure_index()
        checkpoint = self.store.load()
        end = int((self.clock() - s.lag_s) * 1000)
        start = None
        if s.mode == "window":
            start = checkpoint.watermark_ms
            if start is None:
                start = end - int(s.lookback_s * 1000)
            if start >= end:
                return 0
        read = 0
        for saved, result in self.passes(self.store, checkpoint, start, end):
            read += result.documents
            if saved.watermark_ms is not None:
                self.metrics.lag.set(max(0.0, self.clock() - saved.watermark_ms / 1000))
        return read

    def backfill(self, start_ms: int, end_ms: int, progress: bool = False) -> int:
        """Score the documents of [start, end) (a checkpoint of its own: a killed back-fill resumes). Sessions
        still open at ``end`` (an event less than ``idle_gap_s`` before it) keep ``session.state: open``."""
        from tqdm import tqdm

        store = CheckpointStore(
            self.es, self.s.checkpoint_index, f"{self.s.checkpoint_id()}:backfill:{start_ms}-{end_ms}"
        )
        store.ensure_index()
        checkpoint = store.load()
        begin = checkpoint.watermark_ms if checkpoint.watermark_ms is not None else start_ms
        total = self._count(start_ms, end_ms)
        done = self._count(start_ms, begin) if begin > start_ms else 0
        read = 0
        with tqdm(total=total, initial=done, unit="doc", disable=not progress, desc="back-fill") as bar:
            for _, result in self.passes(store, checkpoint, begin, end_ms, window=True):
                bar.update(result.documents)
                read += result.documents
        return read

    def _count(self, start_ms: int, end_ms: int) -> int:
        query = self._range(start_ms, end_ms)
        return int(self.es.count(index=self.s.index, query=query, ignore_unavailable=True)["count"])

    def _range(self, start_ms: int | None, end_ms: int) -> dict:
        bounds: dict[str, Any] = {"lt": end_ms, "format": "epoch_millis"}
        if start_ms is not None:
            bounds["gte"] = start_ms
        return {"range": {self.s.time_field: bounds}}

    def _query(self, start_ms: int | None, end_ms: int, window: bool) -> dict:
        if window:
            return self._range(start_ms, end_ms)
        return {"bool": {"filter": [{"term": {"logwarden.status": "pending"}}, self._range(None, end_ms)]}}

    def passes(
        self,
        store: CheckpointStore,
        checkpoint: Checkpoint,
        start_ms: int | None,
        end_ms: int,
        *,
        window: bool | None = None,
    ) -> Iterator[tuple[Checkpoint, PassResult]]:
        """Run passes over the documents of [start, end); yields the saved checkpoint after each."""
        window = self.s.mode == "window" if window is None else window
        hits = iter_hits(
            self.es,
            self.s.index,
            self._query(start_ms, end_ms, window),
            time_field=self.s.time_field,
            page_size=self.s.page_size,
            keep_alive=self.s.pit_keep_alive,
        )
        batch: list[Hit] = []
        for hit in hits:
            if self.stopping.is_set():
                return
            if len(batch) >= self.s.pass_docs and hit.time_ms != batch[-1].time_ms:
                checkpoint, result = self.run_pass(store, checkpoint, batch, hit.time_ms, window=window)
                yield checkpoint, result
                batch = []
            batch.append(hit)
        if not self.stopping.is_set():
            yield self.run_pass(store, checkpoint, batch, end_ms, window=window)

    # -- one pass -------------------------------------------------------------------------------

    def run_pass(
        self,
        store: CheckpointStore,
        checkpoint: Checkpoint,
        new: list[Hit],
        end_ms: int,
        *,
        window: bool,
    ) -> tuple[Checkpoint, PassResult]:
        started = time.perf_counter()
        s = self.s
        known = {ref: (o.source, o.key) for o in checkpoint.open for ref in o.docs}
        new_refs = {h.ref for h in new}
        carried = fetch(self.es, [r for r in known if r not in new_refs], time_field=s.time_field)
        hits = sorted([*carried, *new], key=lambda h: (h.time_ms is None, h.time_ms or 0))
        usable, skipped = [], []
        for h in hits:
            (usable if isinstance(self._message(h), str) and self._message(h) else skipped).append(h)
        if skipped and not window:  # pending documents without a message would come back forever
            self.write(
                [(h, {"logwarden": {"status": "skipped", "reason": f"no {s.message_field} field"}}) for h in skipped]
            )
        keys = self._keys(usable, known)
        sessions: dict[tuple[str, str], Session] = {}
        for h in usable:
            source, key = keys[h.ref]
            sessions.setdefault((source, key), Session(key, source)).hits.append(h)
        idle_ms = int(s.idle_gap_s * 1000)
        complete = {k: sess.last_ms is not None and sess.last_ms < end_ms - idle_ms for k, sess in sessions.items()}
        results, verdicts = self._score(sessions, complete)
        writes = self._writes(sessions, complete, results, verdicts)
        written = self.write(writes)
        checkpoint.open = [
            OpenSession(sess.key, sess.source, [h.ref for h in sess.hits[-s.max_session_events :]], sess.last_ms)
            for k, sess in sessions.items()
            if not complete[k]
        ]
        if window:
            checkpoint.watermark_ms = end_ms
        checkpoint = store.save(checkpoint, iso(int(self.clock() * 1000)))
        result = PassResult(len(new), written, sum(complete.values()), len(checkpoint.open))
        self.metrics.documents.labels("read").inc(len(new))
        self.metrics.passes.labels("done").inc()
        self.metrics.pass_seconds.observe(time.perf_counter() - started)
        log.info(
            "es worker pass",
            documents=result.documents,
            carried=len(carried),
            writes=result.writes,
            closed=result.closed,
            open=result.open,
            watermark=iso(checkpoint.watermark_ms),
        )
        return checkpoint, result

    def _message(self, hit: Hit) -> Any:
        return lookup(hit.source, self.s.message_field)

    def _source(self, hit: Hit) -> str:
        value = lookup(hit.source, self.s.source_field) if self.s.source_field else None
        return str(value) if value not in (None, "") else logical_index(hit.index)

    def _event(self, hit: Hit, source: str, key: str, end: bool = False) -> Event:
        return Event(
            id=hit.external_id,
            message=self._message(hit),
            source=source,
            session_key=key,
            timestamp=None if hit.time_ms is None else hit.time_ms / 1000,
            attributes={"index": logical_index(hit.index)},
            session_end=end,
        )

    def _keys(self, hits: list[Hit], known: dict) -> dict[tuple[str, str], tuple[str, str]]:
        """(source, session key) of every document: the checkpoint's, the session field's, else the model's."""
        out: dict[tuple[str, str], tuple[str, str]] = {}
        unknown: list[Hit] = []
        for h in hits:
            if h.ref in known:
                out[h.ref] = known[h.ref]
                continue
            value = lookup(h.source, self.s.session_field) if self.s.session_field else None
            if value in (None, "") and self._rule is not None:
                value = self._rule.key(self._message(h)) or self._source(h)
            if value not in (None, ""):
                out[h.ref] = (self._source(h), str(value))
            else:
                unknown.append(h)
        if unknown:  # the model's rule needs the server (windows, routes, a line its format cannot read)
            events = [self._event(h, self._source(h), "") for h in unknown]
            found = self.scorer.score(
                events, "sequence", budget_s=self.s.score_budget_s, partial_sessions=True, model=self.s.model
            )
            self._check(found)
            for h, e, r in zip(unknown, events, found, strict=True):
                out[h.ref] = (e.source, r.session_key or h.external_id)
        return out

    def _score(self, sessions: dict, complete: dict) -> tuple[dict[str, ScoredEvent], dict]:
        events: list[Event] = []
        for k, sess in sessions.items():
            scored = sess.hits[-self.s.max_session_events :]
            for i, h in enumerate(scored):
                events.append(self._event(h, sess.source, sess.key, end=complete[k] and i == len(scored) - 1))
        if not events:
            return {}, {}
        results, verdicts = self.scorer.score_sessions(
            events, mode="sequence", budget_s=self.s.score_budget_s, partial_sessions=True, model=self.s.model
        )
        self._check(results)
        by_id = {e.id: r for e, r in zip(events, results, strict=True)}
        for r in results:
            self.metrics.documents.labels(r.status).inc()
        return by_id, {(v.source, v.session_key): v for v in verdicts}

    @staticmethod
    def _check(results: list[ScoredEvent]) -> None:
        unscored = [r for r in results if r.status == UNSCORED]
        if unscored:
            raise ScorerTrouble(f"{len(unscored)} of {len(results)} events unscored: {unscored[0].reason}")

    def _writes(self, sessions: dict, complete: dict, results: dict, verdicts: dict) -> list[tuple[Hit, dict]]:
        writes = []
        for k, sess in sessions.items():
            verdict = verdicts.get(k) if complete[k] else None
            if complete[k]:
                self.metrics.sessions.labels("closed", "anomalous" if verdict and verdict.anomalous else "normal").inc()
            for h in sess.hits:
                patch: dict[str, Any] = {}
                current = lookup(h.source, "logwarden.status")
                result = results.get(h.external_id)
                if result is not None and current != "scored":
                    patch = _rounded(result.document())
                    patch["logwarden"]["session"] = {"state": "open"}
                if verdict is not None:
                    patch.setdefault("logwarden", {})["session"] = session_fields(verdict)
                if patch:
                    writes.append((h, patch))
        return writes

    # -- writing --------------------------------------------------------------------------------

    def write(self, writes: list[tuple[Hit, dict]]) -> int:
        """Apply ``(document, patch)`` write-backs; the number of documents changed. Conflicts on backing
        indices are re-read and tried again; anything refused for good raises ``WriteFailed``."""
        from elasticsearch import helpers

        pending = writes
        changed = 0
        for _ in range(self.s.retry_on_conflict + 1):
            actions, targets = [], []
            for hit, patch in pending:
                merged = deep_merge(hit.source, patch)
                if merged == hit.source:
                    self.metrics.updates.labels("unchanged").inc()
                    continue
                targets.append((hit, patch))
                actions.append(write_back(hit, patch, retry_on_conflict=self.s.retry_on_conflict))
            if not actions:
                return changed
            conflicts, failures = [], []
            outcomes = helpers.streaming_bulk(
                self.es,
                actions,
                chunk_size=500,
                max_retries=self.s.write_retries,
                initial_backoff=0.5,
                raise_on_error=False,
                yield_ok=True,
            )
            for (hit, patch), (ok, item) in zip(targets, outcomes, strict=True):
                info = next(iter(item.values()))
                status = info.get("status")
                if ok:
                    changed += info.get("result") != "noop"
                    self.metrics.updates.labels(info.get("result", "updated")).inc()
                elif status == 409:
                    self.metrics.updates.labels("conflict").inc()
                    conflicts.append((hit, patch))
                elif status == 404:
                    self.metrics.updates.labels("gone").inc()
                else:
                    self.metrics.updates.labels("failed").inc()
                    failures.append(f"{hit.external_id}: {status} {info.get('error')}")
            if failures:
                raise WriteFailed(f"{len(failures)} write-backs refused, e.g. {failures[0]}")
            if not conflicts:
                return changed
            fresh = {h.ref: h for h in fetch(self.es, [h.ref for h, _ in conflicts], time_field=self.s.time_field)}
            pending = [(fresh[h.ref], p) for h, p in conflicts if h.ref in fresh]
        raise WriteFailed(f"{len(pending)} write-backs still conflict after {self.s.retry_on_conflict + 1} tries")


def parse_time(text: str) -> int:
    value = to_millis(text)
    if value is None:
        raise LogWardenError(f"not a time: {text!r} (ISO 8601 such as 2026-01-01T00:00:00Z, or epoch milliseconds)")
    return value


def run(settings: WorkerSettings, *, backfill: list[str] | None = None, once: bool = False) -> int:
    """The command: back-fill a range, or follow the index (passes, then labels) until SIGTERM."""
    from logwarden.integrations.client import LogWardenClient
    from logwarden.integrations.elasticsearch.labels import LabelForwarder

    metrics = WorkerMetrics()
    state = {"status": "starting", "error": ""}

    def ready() -> tuple[bool, dict]:  # ready once a pass (and label round) went through; not while failing
        return state["status"] == "ok", dict(state)

    if settings.metrics_port is not None:
        serve_ops(metrics, settings.metrics_port, ready, host=settings.metrics_host)
    es = settings.es_client()
    scorer = LogWardenClient(settings.scorer, **settings.scorer_options(settings.score_budget_s))
    worker = EsWorker(settings, es, scorer, metrics=metrics)
    labels = LabelForwarder(settings, es, scorer, metrics=metrics)

    def stop(signum, frame) -> None:
        log.info("es worker stopping after the current pass", signal=signum)
        worker.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        if backfill:
            start, end = parse_time(backfill[0]), parse_time(backfill[1])
            if end <= start:
                raise LogWardenError("--backfill FROM TO: TO must come after FROM")
            state["status"] = "ok"
            read = worker.backfill(start, end, progress=settings.progress)
            log.info("es worker back-fill done", documents=read, stopped=worker.stopping.is_set())
            return 0
        while not worker.stopping.is_set():
            try:
                worker.cycle()
                if settings.labels:
                    labels.forward()
                state.update(status="ok", error="")
            except (ScorerTrouble, WriteFailed) as exc:
                worker.metrics.passes.labels("failed").inc()
                state.update(status="failing", error=str(exc))
                log.warning("es worker pass failed, trying again later", error=str(exc))
            except Exception as exc:  # the cluster unreachable and the like: wait and try again
                from elasticsearch import ApiError, TransportError

                if not isinstance(exc, ApiError | TransportError):
                    raise
                worker.metrics.passes.labels("failed").inc()
                state.update(status="failing", error=type(exc).__name__)
                log.warning("es worker: Elasticsearch trouble, trying again later", error=f"{type(exc).__name__}")
            if once:
                break
            worker.stopping.wait(settings.poll_s)
        return 0
    finally:
        scorer.close()
        es.close()
