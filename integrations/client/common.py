"""What both clients share: events in, results out, batching, the retry schedule. Standard library only
(the HTTP client runs inside Splunk's own Python), and nothing newer than Python 3.9 at run time."""

from __future__ import annotations

import math
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Union

SCORED, INVALID, UNSCORED = "scored", "invalid", "unscored"
MODES = ("stream", "sequence")
MIN_EPOCH, MAX_EPOCH = -62135596800.0, 253402300799.0  # 0001-01-01 and 9999-12-31T23:59:59 UTC


@dataclass
class Event:
    """One raw log line. ``message`` is text; ``raw`` bytes in any encoding (one of the two)."""

    id: str = ""
    message: str | None = None
    raw: bytes | None = None
    source: str = ""
    session_key: str = ""
    timestamp: float | None = None  # epoch seconds
    attributes: dict[str, str] = field(default_factory=dict)
    session_end: bool = False  # stream mode: the last event of its session (the server judges its end)


EventLike = Union[Event, str, Mapping[str, Any]]  # noqa: UP007 - evaluated at run time on Python 3.9 too
EVENT_FIELDS = ("id", "message", "raw", "source", "session_key", "timestamp", "attributes", "session_end")


def as_event(value: EventLike) -> Event:
    """An ``Event`` from an Event, a raw line, or a mapping with Event's field names. Loose types are
    normalised so that one odd event never fails a batch: ids and keys become text, a bytes message
    becomes ``raw``, attribute values text, and a timestamp that is neither epoch seconds nor ISO 8601
    text is dropped (it is informational)."""
    if isinstance(value, str):
        return Event(message=value)
    if isinstance(value, Mapping):
        unknown = set(value) - set(EVENT_FIELDS)
        if unknown:
            raise ValueError(f"unknown event fields: {sorted(unknown)}")
        value = Event(**{k: v for k, v in value.items() if v is not None})
    elif not isinstance(value, Event):
        raise TypeError(f"an event is an Event, a str or a mapping, not {type(value).__name__}")
    message, raw = value.message, value.raw
    if isinstance(message, (bytes, bytearray)):
        message, raw = None, bytes(message)
    elif message is not None and not isinstance(message, str):
        message = str(message)
    return Event(
        id=_text(value.id),
        message=message,
        raw=raw,
        source=_text(value.source),
        session_key=_text(value.session_key),
        timestamp=_epoch(value.timestamp),
        attributes={str(k): _text(v) for k, v in (value.attributes or {}).items()},
        session_end=bool(value.session_end),
    )


def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def _epoch(value: Any) -> float | None:
    """Epoch seconds within the years 1-9999, else None (a timestamp is informational: never an error)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            return None
        return seconds if math.isfinite(seconds) and MIN_EPOCH <= seconds <= MAX_EPOCH else None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()  # noqa: UP017
    if isinstance(value, str):
        try:
            return _epoch(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def unicode_problem(event: Event) -> tuple[str, str] | None:
    """``(field, error)`` when a text field of ``event`` is not valid Unicode (a lone surrogate such as
    ``"\\ud800"``, which no wire format can carry), else None."""
    fields = [("id", event.id), ("message", event.message), ("source", event.source)]
    fields.append(("session_key", event.session_key))
    for key, value in event.attributes.items():
        fields += [("attributes", key), (f"attributes[{key!r}]", value)]
    for name, text in fields:
        if text is None:
            continue
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return name, f"not valid Unicode: a lone surrogate at character {exc.start}; send such lines as raw bytes"
    return None


@dataclass
class Expected:
    template_id: str
    template: str
    probability: float


@dataclass
class ScoredEvent:
    """The result for one input event, at its input position, with the caller's id.

    ``status``: ``scored`` (score, verdict and explanation are set), ``invalid`` (the server refused
    this event: ``error`` and ``error_field`` say why; retrying will not help) or ``unscored`` (the
    scorer could not be asked in time: ``reason`` says why; pass the event on and move along).
    """

    id: str
    status: str
    score: float | None = None
    anomalous: bool | None = None
    template_id: str = ""
    template: str = ""
    new_template: bool = False
    rank: int = 0
    reason: str = ""
    expected: list[Expected] = field(default_factory=list)
    model_version: str = ""
    source: str = ""
    session_key: str = ""
    error: str = ""
    error_field: str = ""
    warnings: list[str] = field(default_factory=list)
    reason_code: str = ""  # machine-readable reason ("new_template", "unexpected_template", ...); "" when normal
    model: str = ""  # the model route that scored the event

    @property
    def scored(self) -> bool:
        return self.status == SCORED

    @property
    def verdict(self) -> str:
        """``anomalous``, ``normal``, or ``""`` when there is no verdict."""
        return "" if self.anomalous is None else ("anomalous" if self.anomalous else "normal")

    def fields(self) -> dict[str, Any]:
        """Flat fields for the host's event (``logwarden.status``, ``logwarden.score``, ...)."""
        out: dict[str, Any] = {"status": self.status, "reason": self.reason}
        if self.scored:
            out.update(
                score=self.score,
                verdict=self.verdict,
                anomalous=self.anomalous,
                template=self.template,
                template_id=self.template_id,
                new_template=self.new_template,
                rank=self.rank,
                model_version=self.model_version,
                session_key=self.session_key,
                expected=[e.template for e in self.expected],
                reason_code=self.reason_code,
                model=self.model,
            )
        elif self.status == INVALID:
            out.update(error=self.error, error_field=self.error_field)
        return out

    def document(self) -> dict[str, Any]:
        """What an integration adds to the host's record: ``{"logwarden": fields(), "event": {...}}`` with
        ECS ``event.risk_score`` (0-100) and ``event.risk_score_norm`` (0-100) when scored."""
        out: dict[str, Any] = {"logwarden": self.fields()}
        if self.scored and self.score is not None:
            risk = round(self.score * 100, 3)
            out["event"] = {"risk_score": risk, "risk_score_norm": risk}
        return out


@dataclass
class SessionVerdict:
    """The verdict for one whole session (sequence mode), or for a stream-mode request's part of a
    session and its end (an event with ``session_end``)."""

    source: str
    session_key: str
    score: float
    anomalous: bool
    reason: str
    events: int
    anomalous_events: int
    model_version: str
    event_ids: list[str] = field(default_factory=list)  # the caller's ids of this request's events in the session
    reason_code: str = ""
    open: bool = False  # partial_sessions: the session may go on; its end and template set were not judged
    model: str = ""


@dataclass(frozen=True)
class ScoreOptions:
    """Per-call options of ``score`` / ``score_sessions`` (see the contract in protos/logwarden/v1/scoring.proto).

    ``idempotency_key``: a key for this exact call (e.g. a Forward chunk id); a replay with the same key is
    answered from the server's memory and does not advance stream windows twice. Without one the client makes
    a random key per request, so its own retries are never scored twice. A call split into several requests
    sends ``<key>/<n>`` for its n-th request. ``model``: a model route; ``window_scope``: stream windows of
    an ad-hoc scope (e.g. a search id); ``partial_sessions``: sequence mode, sessions may be cut (only those
    with a ``session_end`` event have their end and template set judged).
    """

    idempotency_key: str | None = None
    model: str = ""
    window_scope: str = ""
    partial_sessions: bool = False

    def request_key(self, batch: int | str, batches: int) -> str:
        """The key of request ``batch`` (its number; ``3.0``, ``3.1`` for the halves of a split one)."""
        if self.idempotency_key is None:
            return uuid.uuid4().hex
        return self.idempotency_key if batches == 1 and str(batch) == "0" else f"{self.idempotency_key}/{batch}"


def label_filters(
    since: Any = None, after_id: int = 0, source: str = "", limit: int = 0, include_retracted: bool = False
) -> dict[str, Any]:
    """The filters of ``list_labels`` that are set, checked (``ValueError``: the caller's mistake); ``since``
    (epoch seconds, a datetime or ISO 8601 text: the analyst's time) as epoch seconds."""
    out: dict[str, Any] = {}
    if since is not None:
        seconds = _epoch(since)
        if seconds is None:
            raise ValueError(f"since must be epoch seconds, a datetime or ISO 8601 text, not {since!r}")
        out["since"] = seconds
    for name, value in (("after_id", after_id), ("limit", limit)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
        if value:
            out[name] = value
    if source:
        out["source"] = source
    if include_retracted:
        out["include_retracted"] = True
    return out


class LabelPages:
    """``iter_labels`` for a client with ``list_labels`` (both clients share it)."""

    def list_labels(self, **query: Any) -> dict:
        raise NotImplementedError

    def iter_labels(
        self,
        *,
        since: Any = None,
        after_id: int = 0,
        source: str = "",
        page_size: int = 1000,
        include_retracted: bool = False,
        budget_s: float | None = None,
    ) -> Iterator[dict]:
        """Every stored label matching the filters, oldest first, fetched a page at a time (``list_labels``)."""
        label_filters(since, after_id, source, page_size, include_retracted)  # the caller's mistakes, at once
        query = {"since": since, "source": source, "limit": page_size, "include_retracted": include_retracted}
        return self._pages(dict(query, budget_s=budget_s), after_id)

    def _pages(self, query: dict, after_id: int) -> Iterator[dict]:
        while True:
            answer = self.list_labels(after_id=after_id, **query)
            yield from answer["labels"]
            after_id = answer["next_after_id"]
            if not after_id:
                return


def unscored(event: Event, reason: str) -> ScoredEvent:
    return ScoredEvent(id=event.id, status=UNSCORED, reason=reason, source=event.source, session_key=event.session_key)


def invalid(event: Event, field: str, error: str) -> ScoredEvent:
    """The client's own refusal of one event (retrying cannot help): ``error_field`` names the field."""
    return ScoredEvent(
        id=event.id,
        status=INVALID,
        error=error,
        error_field=field,
        reason=error,
        source=event.source,
        session_key=event.session_key,
    )


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")


def plan_batches(
    events: Sequence[Event], sizes: Sequence[int], mode: str, max_events: int, max_bytes: int
) -> list[list[int]]:
    """Input positions grouped into requests of at most ``max_events`` events and ``max_bytes`` bytes.

    Stream mode keeps input order (a session's events stay in order across requests). Sequence mode
    keeps every session the caller keyed (``source``, ``session_key``) whole in one request — alone,
    and over the limits, when it is bigger than they are; events without a session key may be split.
    """
    units = plan_units(events, mode, range(len(events)))
    return [[i for unit in batch for i in unit] for batch in pack(units, sizes, max_events, max_bytes)]


def plan_units(events: Sequence[Event], mode: str, positions: Sequence[int]) -> list[list[int]]:
    """The positions in units that are never split: one event each, or (sequence mode) a keyed session."""
    if mode != "sequence":
        return [[i] for i in positions]
    units: list[list[int]] = []
    keyed: dict[tuple[str, str], list[int]] = {}
    for i in positions:
        e = events[i]
        if e.session_key:
            group = keyed.get((e.source, e.session_key))
            if group is None:
                group = keyed[(e.source, e.session_key)] = []
                units.append(group)
            group.append(i)
        else:
            units.append([i])
    return units


def pack(
    units: list[list[int]], sizes: Sequence[int] | Mapping[int, int], max_events: int, max_bytes: int
) -> list[list[list[int]]]:
    """Units packed, in order, into batches within the limits (a unit bigger than they are goes alone)."""
    batches: list[list[list[int]]] = []
    current: list[list[int]] = []
    count = current_bytes = 0
    for unit in units:
        unit_bytes = sum(sizes[i] for i in unit)
        if current and (count + len(unit) > max_events or current_bytes + unit_bytes > max_bytes):
            batches.append(current)
            current, count, current_bytes = [], 0, 0
        current.append(unit)
        count += len(unit)
        current_bytes += unit_bytes
    if current:
        batches.append(current)
    return batches


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter: try ``i`` waits up to min(max, initial × multiplier^i);
    a server's Retry-After (or gRPC retry pushback) raises the wait to at least what it asks."""

    max_attempts: int = 4
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    multiplier: float = 2.0

    def backoff(self, failures: int, retry_after: float | None = None) -> float:
        ceiling = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** max(0, failures - 1))
        delay = random.uniform(0, ceiling)
        return max(delay, retry_after) if retry_after is not None else delay


class Attempts:
    """The retry loop's bookkeeping for one request: per-try timeouts within the call's deadline.

    attempts = Attempts(policy, deadline, timeout_s)
    while (timeout := attempts.next_timeout()) is not None:
        try: return send(timeout)
        except Retryable as exc: sleep(attempts.failed(reason, retryable=True) or 0)
    # attempts.reason says why the events go back unscored
    """

    def __init__(
        self, policy: RetryPolicy, deadline: float, timeout_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy, self.deadline, self.timeout_s, self.clock = policy, deadline, timeout_s, clock
        self.failures = 0
        self.reason = ""
        self._done = False

    def next_timeout(self) -> float | None:
        if self._done:
            return None
        remaining = self.deadline - self.clock()
        if remaining <= 0:
            self.reason = self.reason or "deadline exceeded: the call's time budget ran out"
            return None
        return min(self.timeout_s, remaining)

    def failed(self, reason: str, retryable: bool, retry_after: float | None = None) -> float | None:
        """Record a failure; the seconds to wait before the next try, or None to give up."""
        self.failures += 1
        self.reason = reason
        if not retryable or self.failures >= self.policy.max_attempts:
            self._done = True
            return None
        delay = self.policy.backoff(self.failures, retry_after)
        if self.clock() + delay >= self.deadline:  # no time left for another try after the wait
            self._done = True
            return None
        return delay


class CallFailed(Exception):
    """One try failed: ``reason`` is what unscored events carry; ``retryable`` when trying again may work;
    ``too_large`` when the server refused the request for its size (smaller requests may work, this never)."""

    def __init__(
        self, reason: str, retryable: bool = False, retry_after: float | None = None, too_large: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason, self.retryable, self.retry_after, self.too_large = reason, retryable, retry_after, too_large


class ScorerUnavailable(Exception):
    """Labels and model info could not be sent or fetched within the retry budget (scoring never raises it)."""


def call_with_retries(
    send: Callable[[float], Any],
    policy: RetryPolicy,
    deadline: float,
    timeout_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """``send(timeout)`` until it succeeds; ``CallFailed`` with the last reason when retries or time run out."""
    attempts = Attempts(policy, deadline, timeout_s)
    while True:
        timeout = attempts.next_timeout()
        if timeout is None:
            raise CallFailed(attempts.reason)
        try:
            return send(timeout)
        except CallFailed as exc:
            delay = attempts.failed(exc.reason, exc.retryable, exc.retry_after)
            if delay is None:
                raise CallFailed(attempts.reason, too_large=exc.too_large) from None
            sleep(delay)


class Batch:
    """One request's events: their input positions, in units that are never split (see ``plan_units``);
    ``label`` numbers it (``3``; the halves of a batch split because it was too large: ``3.0``, ``3.1``)."""

    def __init__(self, units: list[list[int]], label: str) -> None:
        self.units = units
        self.label = label
        self.order = tuple(int(n) for n in label.split("."))  # sorts as the batches were planned
        self.indices = [i for unit in units for i in unit]

    def __len__(self) -> int:
        return len(self.indices)


class Plan:
    """One ``score`` call: its batches, and the results gathered at their input positions.

    Events with a text field that is not valid Unicode are answered ``invalid`` at once and never sent.
    ``next()`` gives the batches in order; a batch the server refused as too large is split in two
    (``too_large``) and its halves come next, down to single units, which are answered ``invalid``.
    """

    def __init__(
        self,
        events: Sequence[Event],
        mode: str,
        encode: Callable[[Event], tuple[Any, int]],
        max_events: int,
        max_bytes: int,
    ) -> None:
        """``encode(event)`` gives an event's wire form and its size in bytes (``payloads[i]`` keeps it)."""
        self.events = events
        self.results: list[ScoredEvent | None] = [None] * len(events)
        self.refused = 0  # events the client answered invalid itself
        for i, event in enumerate(events):
            problem = unicode_problem(event)
            if problem is not None:
                self.results[i] = invalid(event, *problem)
                self.refused += 1
        sendable = [i for i, r in enumerate(self.results) if r is None]
        self.payloads: dict[int, Any] = {}
        sizes: dict[int, int] = {}
        for i in sendable:
            self.payloads[i], sizes[i] = encode(events[i])
        units = plan_units(events, mode, sendable)
        batches = pack(units, sizes, max_events, max_bytes)
        self.planned = len(batches)  # before any split
        self._queue = deque(Batch(b, str(n)) for n, b in enumerate(batches))
        self._sessions: list[tuple[tuple[int, ...], Sequence[SessionVerdict]]] = []  # (batch order, verdicts)

    def next(self) -> Batch | None:
        return self._queue.popleft() if self._queue else None

    def fill(self, batch: Batch, results: Sequence[ScoredEvent], sessions: Sequence[SessionVerdict]) -> None:
        if len(results) != len(batch):
            raise CallFailed(f"bad response: {len(results)} results for {len(batch)} events")
        for i, result in zip(batch.indices, results):  # noqa: B905 - lengths checked; no strict= on 3.9
            result.id = self.events[i].id  # the caller's id, whatever came back
            self.results[i] = result
        self._sessions.append((batch.order, sessions))

    @property
    def sessions(self) -> list[SessionVerdict]:
        """The session verdicts in batch order, whatever order the batches came back in."""
        return [s for _, verdicts in sorted(self._sessions, key=lambda x: x[0]) for s in verdicts]

    def fail(self, batch: Batch, reason: str) -> None:
        for i in batch.indices:
            self.results[i] = unscored(self.events[i], reason)

    def failed(self, batch: Batch, exc: CallFailed) -> None:
        """A try of ``batch`` failed for good: split it (too large) or give its events back unscored."""
        if not exc.too_large:
            self.fail(batch, exc.reason)
        elif len(batch.units) > 1:
            half = len(batch.units) // 2
            halves = [Batch(batch.units[:half], f"{batch.label}.0"), Batch(batch.units[half:], f"{batch.label}.1")]
            self._queue.extendleft(reversed(halves))
        else:
            what = "this event" if len(batch) == 1 else f"this session's {len(batch)} events"
            error = f"{exc.reason} (a request of only {what} is larger than the server accepts: never scorable)"
            for i in batch.indices:
                self.results[i] = invalid(self.events[i], "event", error)
            self.refused += len(batch)

    def done(self, log) -> list[ScoredEvent]:
        out = [r if r is not None else unscored(self.events[i], "not sent") for i, r in enumerate(self.results)]
        reasons: dict[str, int] = {}
        for r in out:
            if r.status == UNSCORED:
                reasons[r.reason] = reasons.get(r.reason, 0) + 1
        for reason, count in reasons.items():
            log.warning("logwarden: %d events passed through unscored: %s", count, reason)
        if self.refused:
            log.warning("logwarden: %d events refused as invalid (not valid Unicode, or too large)", self.refused)
        return out
