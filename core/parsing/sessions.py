"""Group parsed events into sessions: by a key in the line or a field, or by time / count windows.

The rule is part of the model's config, so serving groups events exactly as training did.
Events whose key rule finds no key fall back to one session per source (named after the source).

Time and count windows run over one timeline per ``scope``: each input source (a file or stream, the
default), all sources together (``global``), or each value of a parsed field within a source (``field``,
e.g. a node or host name: one timeline per machine). A window holding more than ``max_events`` events is
cut into consecutive parts of at most that many (``Session.part`` counts them; ``capped`` says how many
windows were cut), so one burst cannot make a window unbounded.

A key regex is searched in every line: the presets' run on Python's ``re`` (held linear by tests), any
other on RE2 (``linear_regex``), so no line can make the search slow.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Literal

from logwarden.core.errors import LogWardenError
from logwarden.core.parsing.formats import PRESETS
from logwarden.core.parsing.linear_regex import Regex, compile_regex
from logwarden.core.records import LogRecord

SessionKind = Literal["key", "field", "time", "count", "source"]
WindowScope = Literal["source", "global", "field"]
GLOBAL = "*"  # the timeline name of global windows
# Time windows' timestamps lie between 0001-01-01 and 9999-12-31T23:59:59 UTC (far beyond, a float cannot
# step through windows of seconds)
MIN_EPOCH, MAX_EPOCH = -62135596800.0, 253402300799.0
DEFAULT_KEY_REGEX = r"blk_-?\d+"
_TRUSTED_KEY_REGEXES = {DEFAULT_KEY_REGEX} | {p.session_key_regex for p in PRESETS.values() if p.session_key_regex}


@dataclass(frozen=True)
class SessionRule:
    """How events become sessions. ``key``: regex over the content; ``field``: a parsed field."""

    kind: SessionKind = "key"
    key_regex: str = DEFAULT_KEY_REGEX
    field: str = ""
    window_seconds: float = 60.0
    step_seconds: float = 60.0
    window_size: int = 20
    step_size: int = 20
    scope: WindowScope = "source"  # windows' timelines: per source, global, or per value of group_field
    group_field: str = ""  # scope "field": the parsed field naming a timeline (a node, a host)
    max_events: int = 1000  # longer windows are cut into parts of this many events (0: never)

    def __post_init__(self) -> None:
        if self.kind not in ("key", "field", "time", "count", "source"):
            raise LogWardenError(f"unknown session kind {self.kind!r}: use key, field, time, count or source")
        if self.kind == "key":
            key_pattern(self)  # refuses a regex that is invalid or cannot run in linear time
        if self.kind == "field" and not self.field:
            raise LogWardenError("session kind 'field' needs a field name")
        if self.kind == "time" and not (self.step_seconds > 0 and self.window_seconds > 0):
            raise LogWardenError("time windows need window_seconds > 0 and step_seconds > 0")
        if self.kind == "count" and not (0 < self.step_size <= self.window_size):
            raise LogWardenError("count windows need 0 < step_size <= window_size")
        if self.scope not in ("source", "global", "field"):
            raise LogWardenError(f"unknown window scope {self.scope!r}: use source, global or field")
        if self.scope == "field" and not self.group_field:
            raise LogWardenError("window scope 'field' needs group_field (the field naming a node or host)")
        if self.max_events < 0:
            raise LogWardenError("max_events must be 0 (no cap) or positive")

    @property
    def windowed(self) -> bool:
        """True for time and count windows (sessions cut from a timeline, not named by a key)."""
        return self.kind in ("time", "count")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SessionRule:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(slots=True)
class Event:
    """A parsed log event: its record and its log key (template id; None for a template never seen)."""

    record: LogRecord
    key: str | None


@dataclass(slots=True)
class Session:
    key: str
    source: str  # the input source; for windows, the timeline (see the module doc)
    events: list[Event] = field(default_factory=list)
    part: int = 0  # a window cut because it held more than max_events: which part (0: the first, or uncut)

    @property
    def start(self) -> float | None:
        """The timestamp of the first event (None when it has none)."""
        return self.events[0].record.timestamp if self.events else None

    @property
    def label(self) -> int | None:
        """Anomalous when any line is labelled anomalous; None when no line carries a label."""
        labels = [e.record.label for e in self.events if e.record.label is not None]
        return max(labels) if labels else None


def key_pattern(rule: SessionRule) -> Regex:
    """The rule's key regex, compiled (RE2 unless it is a preset's)."""
    return compile_regex(rule.key_regex, "session key regex", trusted=rule.key_regex in _TRUSTED_KEY_REGEXES)


def session_key(rule: SessionRule, record: LogRecord, pattern: Regex | None = None) -> str | None:
    """The key named by a key/field rule, or None when the record carries none."""
    if rule.kind == "field":
        return record.fields.get(rule.field) or None
    if rule.kind == "key":
        match = (pattern or key_pattern(rule)).search(record.content)
        if match:
            return match.group(1) if match.groups() else match.group(0)
    return None


def build_sessions(events: Iterable[Event], rule: SessionRule) -> list[Session]:
    """Group events (in input order) into sessions; windows are formed per timeline (see ``scope``)."""
    if rule.kind in ("key", "field", "source"):
        return _by_key(events, rule)
    per_timeline: OrderedDict[str, list[Event]] = OrderedDict()
    for event in events:
        per_timeline.setdefault(timeline(rule, event.record), []).append(event)
    sessions: list[Session] = []
    for name, items in per_timeline.items():
        if rule.kind == "count":
            sessions.extend(_count_windows(name, items, rule))
        else:
            sessions.extend(_time_windows(name, items, rule))
    return _cap(sessions, rule.max_events)


def timeline(rule: SessionRule, record: LogRecord) -> str:
    """The timeline a record's windows belong to: its source, the global one, or source|field value."""
    if rule.scope == "global":
        return GLOBAL
    if rule.scope == "field":
        return f"{record.source}|{record.fields.get(rule.group_field, '')}"
    return record.source


def capped(sessions: Iterable[Session]) -> int:
    """How many windows were cut into parts for holding more than ``max_events`` events."""
    return sum(1 for s in sessions if s.part == 1)


def _cap(sessions: list[Session], max_events: int) -> list[Session]:
    if not max_events or all(len(s.events) <= max_events for s in sessions):
        return sessions
    out: list[Session] = []
    for s in sessions:
        if len(s.events) <= max_events:
            out.append(s)
            continue
        for part, at in enumerate(range(0, len(s.events), max_events)):
            key = s.key if part == 0 else f"{s.key}+{part}"
            out.append(Session(key, s.source, s.events[at : at + max_events], part))
    return out


def _by_key(events: Iterable[Event], rule: SessionRule) -> list[Session]:
    pattern = key_pattern(rule) if rule.kind == "key" else None
    sessions: OrderedDict[tuple[str, str], Session] = OrderedDict()
    for event in events:
        source = event.record.source
        key = session_key(rule, event.record, pattern) or source
        session = sessions.get((source, key))
        if session is None:
            session = sessions[(source, key)] = Session(key, source)
        session.events.append(event)
    return list(sessions.values())


def _count_windows(source: str, items: list[Event], rule: SessionRule) -> list[Session]:
    out = []
    for start in range(0, len(items), rule.step_size):
        out.append(Session(f"{source}#{start}", source, items[start : start + rule.window_size]))
        if start + rule.window_size >= len(items):
            break
    return out


def _time_windows(source: str, items: list[Event], rule: SessionRule) -> list[Session]:
    timed = [e for e in items if e.record.timestamp is not None]
    if len(timed) != len(items):
        missing = next(e for e in items if e.record.timestamp is None).record
        raise LogWardenError(
            f"time windows need a timestamp on every line; {missing.source}:{missing.line_no} has none "
            "(check the format's timestamp setting)"
        )
    if not timed:
        return []
    odd = next((e.record for e in timed if not in_time_range(e.record.timestamp)), None)
    if odd is not None:
        raise LogWardenError(
            f"time windows need timestamps between the years 1 and 9999; {odd.source}:{odd.line_no} has "
            f"{odd.timestamp!r}"
        )
    timed.sort(key=lambda e: e.record.timestamp)  # type: ignore[arg-type, return-value]
    first, last = timed[0].record.timestamp, timed[-1].record.timestamp
    assert first is not None and last is not None
    out, lo, start = [], 0, first
    window, step = rule.window_seconds, rule.step_seconds
    while start <= last:
        end = start + window
        while lo < len(timed) and timed[lo].record.timestamp < start:  # type: ignore[operator]
            lo += 1
        hi = lo
        while hi < len(timed) and timed[hi].record.timestamp < end:  # type: ignore[operator]
            hi += 1
        if hi > lo:
            out.append(Session(f"{source}@{int(start)}", source, timed[lo:hi]))
            start += step
        else:  # an empty window: skip straight to the first window that holds the next event (a gap of
            # years between two timestamps must not cost a loop turn per step)
            upcoming = timed[lo].record.timestamp
            skipped = max(1, math.floor((upcoming - end) / step) + 1)  # type: ignore[operator]
            start += skipped * step
    return out


def in_time_range(seconds: float | None) -> bool:
    """True for epoch seconds that time windows can use (between the years 1 and 9999)."""
    return seconds is not None and MIN_EPOCH <= seconds <= MAX_EPOCH


def default_session_rule(fmt) -> SessionRule:
    """A line format's own session rule: a preset's key regex or window, a session field, else the source."""
    preset = fmt.preset
    if fmt.session_field:
        return SessionRule(kind="field", field=fmt.session_field)
    if preset and preset.session_key_regex:
        return SessionRule(kind="key", key_regex=preset.session_key_regex)
    if preset and preset.session_window and preset.session_window.startswith("time:"):
        seconds = float(preset.session_window.split(":", 1)[1])
        return SessionRule(kind="time", window_seconds=seconds, step_seconds=seconds)
    return SessionRule(kind="source")
