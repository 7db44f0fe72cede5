"""Micro-batching: requests of all callers are queued; each tick packs the pending sessions of many
requests into one ``Detector.score_keys`` call, run in a single worker thread so the event loop stays
responsive (and the template parser, which keeps caches, is only ever used from that thread).

Bounds: a job waits at most ``max_wait_s`` for others to join its batch (with 0, the server's default,
a batch is whatever queued while the previous one ran: no added delay when idle, big batches under
load; on CPU a 5 ms wait cost ~15 % of the throughput and ~10 ms of median latency in
``benchmarks/server.py``); a batch holds at most ``max_batch_events`` events (a bigger single job goes
alone); at most ``max_queue_events`` events wait, beyond that ``submit`` raises ``Overloaded`` at once.
Jobs whose deadline passed or whose caller went away are dropped before any work is done for them. Jobs
pinned to different model versions (during a reload) are scored in separate calls, each on its own version.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from logwarden.core.detect.detector import Detector, SessionVerdict
from logwarden.core.records import LogRecord
from logwarden.grpc_server.observability import ServerMetrics
from logwarden.grpc_server.service.errors import DeadlineExceeded, Overloaded, ShuttingDown
from logwarden.grpc_server.service.model_holder import ServedModel


@dataclass(slots=True)
class SessionWork:
    """One session's part of a request: new event contents after ``context`` keys (context only)."""

    contents: list[str]
    context: list[str | None] = field(default_factory=list)
    complete: bool = False
    k: int | None = None
    whole: bool = True  # context holds every earlier key of the session (its window never dropped any)
    levels: list[str | None] | None = None  # the new events' level field values (novelty judges unknown templates)


@dataclass(slots=True)
class SessionScore:
    keys: list[str | None]  # the log keys of the new events
    verdict: SessionVerdict
    new_templates: list[str | None]  # per new event: its masked line when its key is None (a new template)


@dataclass(slots=True)
class _Job:
    model: ServedModel
    work: Sequence[SessionWork]
    size: int
    deadline: float | None  # loop time
    enqueued: float
    future: asyncio.Future


class Scheduler:
    def __init__(
        self,
        *,
        max_wait_s: float = 0.005,
        max_batch_events: int = 4096,
        max_queue_events: int = 65536,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.max_wait_s = max_wait_s
        self.max_batch_events = max_batch_events
        self.max_queue_events = max_queue_events
        self.metrics = metrics
        self._pending: deque[_Job] = deque()
        self._queued = 0
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="logwarden-model")
        self._task: asyncio.Task | None = None

    @property
    def queued_events(self) -> int:
        return self._queued

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="logwarden-scheduler")

    async def submit(
        self, model: ServedModel, work: Sequence[SessionWork], deadline: float | None = None
    ) -> list[SessionScore]:
        """Queue one request's sessions and wait for their scores (in ``work`` order)."""
        if self._closing:
            raise ShuttingDown("the server is shutting down; retry on another replica")
        size = sum(len(w.contents) for w in work)
        if size == 0:
            return []
        if self._queued and self._queued + size > self.max_queue_events:
            raise Overloaded(f"scoring queue is full ({self._queued} events waiting); retry with backoff")
        loop = asyncio.get_running_loop()
        job = _Job(model, work, size, deadline, loop.time(), loop.create_future())
        self._pending.append(job)
        self._set_queued(self._queued + size)
        if self._queued >= self.max_batch_events:
            self._full.set()
        self._wakeup.set()
        return await job.future

    async def close(self) -> None:
        """Stop accepting; finish every queued job; stop the worker."""
        self._closing = True
        self._wakeup.set()
        self._full.set()  # cut a pending batching wait short
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=True)

    # -- the loop -----------------------------------------------------------------------------------

    def _set_queued(self, n: int) -> None:
        self._queued = n
        if self.metrics is not None:
            self.metrics.queue_events.set(n)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            remaining = self._pending[0].enqueued + self.max_wait_s - loop.time()
            if remaining > 0 and self._queued < self.max_batch_events and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), remaining)
            batch = self._take(loop.time())
            if batch:
                await self._execute(batch)

    def _take(self, now: float) -> list[_Job]:
        batch: list[_Job] = []
        total = 0
        while self._pending:
            job = self._pending[0]
            if job.future.done():  # the caller went away
                self._pop()
                continue
            if job.deadline is not None and job.deadline <= now:
                self._pop()
                job.future.set_exception(DeadlineExceeded("deadline passed before scoring started"))
                continue
            if batch and total + job.size > self.max_batch_events:
                break
            batch.append(self._pop())
            total += job.size
        if self._queued < self.max_batch_events:
            self._full.clear()
        return batch

    def _pop(self) -> _Job:
        job = self._pending.popleft()
        self._set_queued(self._queued - job.size)
        return job

    async def _execute(self, batch: list[_Job]) -> None:
        groups: dict[int, list[_Job]] = {}
        for job in batch:
            groups.setdefault(id(job.model), []).append(job)
        loop = asyncio.get_running_loop()
        for jobs in groups.values():
            try:
                results = await loop.run_in_executor(self._executor, self._score, jobs)
            except Exception as exc:  # a model failure fails this group's calls, not the server
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            for job, result in zip(jobs, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)

    def _score(self, jobs: list[_Job]) -> list[list[SessionScore]]:
        """Worker thread: match templates and score every session of ``jobs`` in one call."""
        started = time.perf_counter()
        detector = jobs[0].model.detector
        default_k = detector.calibration.k
        seqs: list[list[str | None]] = []
        starts: list[int] = []
        complete: list[bool] = []
        whole: list[bool] = []
        ks: list[int] = []
        lines: list[list[tuple[str, str | None] | None]] = []  # what unknown templates are judged from
        new_keys: list[list[str | None]] = []
        new_templates: list[list[str | None]] = []
        for job in jobs:
            for w in job.work:
                keys, templates = _keys(detector, w.contents)
                new_keys.append(keys)
                new_templates.append(templates)
                seqs.append([*w.context, *keys])
                starts.append(len(w.context))
                complete.append(w.complete)
                whole.append(w.whole)
                ks.append(w.k or default_k)
                levels = w.levels or [None] * len(w.contents)
                lines.append([*([None] * len(w.context)), *zip(w.contents, levels, strict=True)])
        verdicts = detector.score_keys(seqs, complete=complete, k=ks, starts=starts, whole=whole, lines=lines)
        out: list[list[SessionScore]] = []
        at = 0
        for job in jobs:
            n = len(job.work)
            out.append([SessionScore(new_keys[i], verdicts[i], new_templates[i]) for i in range(at, at + n)])
            at += n
        if self.metrics is not None:
            version = detector.version
            self.metrics.batch_events.labels(version).observe(sum(j.size for j in jobs))
            self.metrics.batch_seconds.labels(version).observe(time.perf_counter() - started)
        return out


def _keys(detector: Detector, contents: list[str]) -> tuple[list[str | None], list[str | None]]:
    """``detector.parse(record).key`` of each content (without building a record and an event per line), and
    for each content without a key the template it would be (its masked text): both here, off the event loop."""
    parser = getattr(detector, "parser", None)
    if parser is None:  # a detector without a template parser: let it answer (or raise its own error)
        found = [detector.parse(LogRecord(content=c)).key for c in contents]
        news = [None if k is not None else detector.new_template_text(c) for k, c in zip(found, contents, strict=True)]
        return found, news
    match = parser.match_masked
    keys: list[str | None] = []
    templates: list[str | None] = []
    for content in contents:
        cluster, masked = match(content)
        keys.append(None if cluster is None else key_text(cluster))
        templates.append(masked if cluster is None else None)
    return keys, templates


_KEY_TEXT: dict[int, str] = {}
_MAX_KEY_TEXTS = 1 << 20


def key_text(cluster_id: int) -> str:
    """The log key of a cluster id, as one shared string per id: the stream windows hold many copies of
    the same keys, and shared strings cost them a pointer each (``windows.memory`` counts them so)."""
    text = _KEY_TEXT.get(cluster_id)
    if text is None:
        text = str(cluster_id)
        if len(_KEY_TEXT) < _MAX_KEY_TEXTS:
            _KEY_TEXT[cluster_id] = text
    return text
