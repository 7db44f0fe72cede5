"""``| anomalyscore``'s logic, apart from the search command framework: rows in, rows with ``logwarden_*``
fields out, in the order they came in, never a row lost.

Sequence mode (the default) must not cut sessions (a normal session cut in two looks as if it ended early):
rows are held across the framework's chunks, grouped by (source, session), put in time order per session
(Splunk returns newest first) and scored as whole sessions when the input ends. When more than
``max_buffer`` rows are held, what is held is scored at once as *partial* sessions (the server does not
judge their ends) and the command says so; sessions that continue after such a flush are scored partially
again at the end, while sessions seen whole have their ends judged.

Stream mode (real-time searches) scores each chunk at once against the server's stream windows, scoped to
the search id so an ad-hoc search never touches the windows of the live shippers.

Trouble never raises: a scorer that is down, slow or overloaded, or settings that cannot be read, give the
rows back with ``logwarden_status=unscored`` and a reason, and one warning for the search.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from logwarden_splunk import rows as R

PREFIX = "logwarden_"
OUTPUT_FIELDS = (
    "logwarden_status",
    "logwarden_score",
    "logwarden_verdict",
    "logwarden_reason",
    "logwarden_reason_code",
    "logwarden_template",
    "logwarden_template_id",
    "logwarden_new_template",
    "logwarden_expected",
    "logwarden_session_verdict",
    "logwarden_session_reason",
    "logwarden_session_reason_code",
    "logwarden_session_open",
    "logwarden_session_key",
    "logwarden_source",
    "logwarden_model_version",
)
MODES = ("sequence", "stream")
SLICE_EVENTS = 5_000  # events per score call: bounds the results held at once
# sequence-mode requests on the wire at once: a scorer on another machine (or with cores to spare) scores one
# batch while the network carries the others and this process codes them
IN_FLIGHT = 3


@dataclass
class Options:
    message_field: str = "_raw"
    source_field: str = "host"
    session_field: str = ""  # "" = the model's own session rule
    model: str = ""  # a model route on the server ("" = its default)
    mode: str = "sequence"
    max_buffer: int = 100_000  # rows held before a partial flush (sequence mode)


class Unavailable(Exception):
    """The scorer cannot be used for this search (settings unreadable, model info unavailable)."""


@dataclass
class Flush:
    """What one flush gives back: the rows in input order, and what to tell the job inspector."""

    rows: list[dict]
    warnings: list[str]


class Scorer:
    """Feed it the framework's chunks with ``take(rows, finished)``; it answers the rows to emit now.

    ``client``: a callable returning the LogWarden ``HttpClient`` (called lazily, once; it raises
    ``Unavailable`` with the reason when there is none). ``search_id`` keys idempotency and stream windows.
    """

    def __init__(self, options: Options, search_id: str, client: Callable[[], Any]) -> None:
        if options.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {options.mode!r}")
        self.options, self.search_id = options, search_id
        self._client_factory = client
        self._client: Any = None
        self._unavailable = ""
        self._session_pattern: re.Pattern[str] | None = None
        self._session_rule_known = bool(options.session_field)
        self._held: list[dict] = []
        self._flushes = 0
        self._partial_groups: set[tuple[str, str]] = set()
        self._warned = False
        self._internal = ""
        self.partial_flushes = 0

    # -- input ------------------------------------------------------------------------------------------

    def take(self, rows: Sequence[dict], finished: bool) -> Flush:
        if self.options.mode == "stream":
            return self._flush(list(rows), "stream")
        self._held.extend(rows)
        if finished:
            held, self._held = self._held, []
            return self._flush(held, "final")
        if len(self._held) >= self.options.max_buffer:
            held, self._held = self._held, []
            self.partial_flushes += 1
            flush = self._flush(held, "partial")
            flush.warnings.insert(
                0,
                f"anomalyscore held {len(held)} rows (max_buffer={self.options.max_buffer}): scored them as "
                "partial sessions, whose ends were not judged; raise max_buffer or narrow the search to keep "
                "sessions whole",
            )
            return flush
        return Flush([], [])

    # -- scoring ----------------------------------------------------------------------------------------

    def _flush(self, held: list[dict], kind: str) -> Flush:
        """Score ``held`` and write the ``logwarden_*`` fields into its rows (in place, to keep memory low)."""
        if not held:
            return Flush([], [])
        done = bytearray(len(held))  # 1 where the row has its fields
        warnings: list[str] = []
        try:
            client = self._ready()
            units, key_of, messages = self._units(held, done)
            self._flushes += 1
            for n, piece in enumerate(_slices(units, SLICE_EVENTS)):
                events = self._events(held, piece, key_of, messages, kind)
                self._score(client, held, events, kind, f"splunk:{self.search_id}:{self._flushes}:{n}")
                for unit in piece:
                    for i in unit:
                        done[i] = 1
        except Unavailable as exc:
            self._unavailable = self._unavailable or str(exc)
        except Exception as exc:  # never lose the chunk: the rows go on unscored, the inspector says why
            self._internal = f"internal error: {type(exc).__name__}: {exc}"
        reasons: dict[str, int] = {}
        for i, row in enumerate(held):
            if not done[i]:
                row.update(unscored(self._internal or self._unavailable or "not scored"))
            if row["logwarden_status"] == "unscored":
                reasons[row["logwarden_reason"]] = reasons.get(row["logwarden_reason"], 0) + 1
        self._internal = ""
        if reasons and not self._warned:
            self._warned = True
            reason, count = max(reasons.items(), key=lambda kv: kv[1])
            more = sum(reasons.values()) - count
            warnings.append(
                f"LogWarden: {count} rows passed through unscored: {reason}"
                + (f" (and {more} more for other reasons)" if more else "")
            )
        return Flush(held, warnings)

    def _ready(self) -> Any:
        if self._unavailable:
            raise Unavailable(self._unavailable)
        if self._client is None:
            try:
                self._client = self._client_factory()
            except Unavailable as exc:
                self._unavailable = str(exc)
                raise
        if not self._session_rule_known:
            self._session_pattern = session_pattern(self._client)
            self._session_rule_known = True
        return self._client

    def _session_of(self, row: Mapping[str, Any], message: str) -> str:
        if self.options.session_field:
            return R.text(row, self.options.session_field)
        if self._session_pattern is not None:
            found = self._session_pattern.search(message)
            return found.group(0) if found else ""
        return ""

    def _units(self, held: list[dict], done: bytearray) -> tuple[list[list[int]], dict, dict[int, str]]:
        """Rows grouped for scoring: each (source, session) in time order (stream mode: the whole chunk in time
        order as one unit); the group of every row; the rows' messages. Rows without a message get their
        ``invalid`` fields here."""
        o = self.options
        groups: dict[tuple[str, str], list[int]] = {}
        messages: dict[int, str] = {}
        for i, row in enumerate(held):
            message = R.text(row, o.message_field)
            if not message:
                row.update(empty("invalid", f"no {o.message_field} field in this row"))
                done[i] = 1
                continue
            messages[i] = message
            source = R.text(row, o.source_field)
            groups.setdefault((source, self._session_of(row, message) if o.mode == "sequence" else ""), []).append(i)
        key_of = {i: key for key, members in groups.items() for i in members}
        if o.mode == "stream":
            times = [R.epoch(r) for r in held]
            return [[i for i in R.time_order(times) if i in messages]], key_of, messages
        units = []
        for members in groups.values():
            order = R.time_order([R.epoch(held[i]) for i in members])
            units.append([members[j] for j in order])
        return units, key_of, messages

    def _events(self, held, units: list[list[int]], key_of: dict, messages: dict[int, str], kind: str) -> list[dict]:
        events = []
        for unit in units:
            for n, i in enumerate(unit):
                source, session = key_of[i]
                row = held[i]
                event: dict[str, Any] = {"id": str(i), "message": messages[i], "source": source}
                if session:
                    event["session_key"] = session
                t = R.epoch(row)
                if t is not None:
                    event["timestamp"] = t
                attributes = R.attributes(row)
                if attributes:
                    event["attributes"] = attributes
                if kind == "final" and self._flushes > 1 and n == len(unit) - 1:
                    # after a partial flush only sessions never cut have their ends judged
                    event["session_end"] = (source, session) not in self._partial_groups
                events.append(event)
        if kind == "partial":
            self._partial_groups.update(key_of[unit[0]] for unit in units if unit)
        return events

    def _score(self, client: Any, held: list[dict], events: list[dict], kind: str, key: str) -> None:
        o = self.options
        budget = 30.0 + len(events) / 1000.0
        if o.mode == "stream":
            results = client.score(
                events, "stream", budget_s=budget, idempotency_key=key, model=o.model, window_scope=self.search_id
            )
            sessions: list = []
        else:
            partial = kind == "partial" or (kind == "final" and self._flushes > 1)
            results, sessions = client.score_sessions(
                events, mode="sequence", budget_s=budget, idempotency_key=key, model=o.model, partial_sessions=partial
            )
        by_id: dict[str, Any] = {}
        by_key: dict[tuple[str, str], Any] = {}
        for s in sessions:
            for event_id in s.event_ids:
                by_id[event_id] = s
            by_key[(s.source, s.session_key)] = s
        for event, result in zip(events, results):
            session = by_id.get(event["id"]) or by_key.get((result.source or event["source"], result.session_key))
            held[int(event["id"])].update(output(result, session, event["source"]))


def _slices(units: list[list[int]], size: int) -> list[list[list[int]]]:
    """Whole units (sessions) packed into slices of about ``size`` rows, so that results are written into the
    rows as they come and never all held at once."""
    out: list[list[list[int]]] = []
    current: list[list[int]] = []
    count = 0
    for unit in units:
        if current and count + len(unit) > size:
            out.append(current)
            current, count = [], 0
        current.append(unit)
        count += len(unit)
    if current:
        out.append(current)
    return out


def session_pattern(client: Any) -> re.Pattern[str] | None:
    """The served model's session key rule, applied here so that every session reaches the server whole
    (None when the rule is not a key in the line; the server then groups by its own rule)."""
    try:
        info = client.model_info()
    except Exception as exc:  # ScorerUnavailable and friends: the scorer cannot be asked about its model
        raise Unavailable(str(exc) or type(exc).__name__) from None
    rule = info.get("session_rule") or {}
    if rule.get("kind") == "key" and rule.get("key_regex"):
        try:
            return re.compile(rule["key_regex"])
        except re.error:
            return None
    return None


# -- the fields written on every row ----------------------------------------------------------------------


def empty(status: str, reason: str) -> dict:
    out = dict.fromkeys(OUTPUT_FIELDS, "")
    out["logwarden_status"], out["logwarden_reason"] = status, reason
    return out


def unscored(reason: str) -> dict:
    return empty("unscored", reason)


_SHARED: dict[Any, Any] = {}
MAX_SHARED = 50_000


def shared(value: Any) -> Any:
    """One object for equal values (templates, reasons, expected lists repeat on most rows): held rows cost
    far less memory. Bounded: past ``MAX_SHARED`` distinct values, new ones are kept as they are."""
    found = _SHARED.get(value)
    if found is not None:
        return found
    if len(_SHARED) < MAX_SHARED:
        _SHARED[value] = value
    return value


def output(result: Any, session: Any, source: str) -> dict:
    """The row's ``logwarden_*`` fields from the client's ``ScoredEvent`` and, when known, its ``SessionVerdict``."""
    if result.status != "scored":
        out = empty(result.status, result.error or result.reason)
        out["logwarden_source"] = source
        return out
    out = empty("scored", shared(result.reason))
    out.update(
        logwarden_score=f"{result.score:.4f}",
        logwarden_verdict=result.verdict,
        logwarden_reason_code=shared(result.reason_code),
        logwarden_template=shared(result.template),
        logwarden_template_id=shared(result.template_id),
        logwarden_new_template="1" if result.new_template else "0",
        logwarden_expected=shared(tuple(shared(e.template) for e in result.expected)),
        logwarden_session_key=shared(result.session_key),
        logwarden_source=shared(result.source or source),
        logwarden_model_version=shared(result.model_version),
    )
    if session is not None:
        out.update(
            logwarden_session_verdict="anomalous" if session.anomalous else "normal",
            logwarden_session_reason=shared(session.reason),
            logwarden_session_reason_code=shared(session.reason_code),
            logwarden_session_open="1" if session.open else "0",
        )
    return out
