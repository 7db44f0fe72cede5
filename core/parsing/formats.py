"""Line formats: how a raw line splits into header fields, a timestamp, a label and the content.

``get_format(spec)`` is the one entry point. ``spec`` is a preset name (``hdfs``, ``bgl``,
``thunderbird``), ``plain`` (the whole line is the content), ``json`` (JSON lines, options below) or a
loghub-style format string such as ``<Date> <Time> <Level> <Component>: <Content>``. ``LineFormat.spec``
is a string that ``get_format`` turns back into the same format, so a model artifact can record it and
refuse input of another format.

Linear time: a format string is the user's, so its regex runs on RE2 (``linear_regex``; the presets'
own regexes run on Python's ``re`` and are held linear by tests). When ``<Content>`` is last, only the
header before it is matched and the content is the rest of the line, so the time spent on a line does
not grow with its content (and content may hold newlines, e.g. a stack trace sent as one event).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode

from logwarden.core.errors import BadLineError, LogWardenError
from logwarden.core.parsing.linear_regex import compile_regex
from logwarden.core.records import LogRecord

EXCERPT_CHARS = 80
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TIMESTAMP_CACHE = 4096
_CACHED_TIME_CHARS = 64  # longer timestamp texts are parsed uncached: the cache holds at most 4096 × 64 chars
_CONTENT_TAIL = "(?P<Content>.*)"
_DEFAULT_NORMAL = ("-", "0", "false", "normal", "ok", "benign")  # JSON label values meaning "normal"
_MISSING = object()
LEVEL_FIELDS = ("level", "severity", "loglevel", "log_level", "priority")  # a format field holding the level


@dataclass(frozen=True)
class TimestampSpec:
    """Which fields hold the time and how to read them: a strptime pattern, ``epoch`` or ``iso``.

    Several fields are joined with one space before parsing. Times without a zone are taken as UTC.
    """

    fields: tuple[str, ...]
    pattern: str = "iso"


@dataclass(frozen=True)
class FormatPreset:
    """A named, known log format and the session and label defaults that go with its data."""

    name: str
    format: str
    regex: str | None = None  # given when the format string cannot express the line (optional parts)
    timestamp: TimestampSpec | None = None
    label_field: str | None = None  # per-line label: a value in normal_labels is 0, anything else 1
    normal_labels: tuple[str, ...] = ("-",)
    session_key_regex: str | None = None  # a session id found in the content (HDFS block ids)
    session_field: str | None = None  # a session id in a header field
    session_window: str | None = None  # hint when sessions are windows: "time:<seconds>"
    host_field: str | None = None  # the field naming the machine a line comes from (per-host windows)
    description: str = ""


PRESETS: dict[str, FormatPreset] = {
    "hdfs": FormatPreset(
        name="hdfs",
        format="<Date> <Time> <Pid> <Level> <Component>: <Content>",
        timestamp=TimestampSpec(("Date", "Time"), "%y%m%d %H%M%S"),
        session_key_regex=r"blk_-?\d+",
        description="HDFS_v1 (loghub): sessions are block ids found in the content",
    ),
    "bgl": FormatPreset(
        name="bgl",
        format="<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
        timestamp=TimestampSpec(("Timestamp",), "epoch"),
        label_field="Label",
        session_window="time:60",
        host_field="Node",
        description="BlueGene/L (loghub): first token '-' is normal, an alert category is anomalous",
    ),
    "thunderbird": FormatPreset(
        name="thunderbird",
        format="<Label> <Timestamp> <Date> <User> <Month> <Day> <Time> <Location> <Component>(\\[<PID>\\])?: <Content>",
        regex=(
            r"(?P<Label>\S+)\s+(?P<Timestamp>\S+)\s+(?P<Date>\S+)\s+(?P<User>\S+)\s+(?P<Month>\S+)\s+"
            r"(?P<Day>\S+)\s+(?P<Time>\S+)\s+(?P<Location>\S+)\s+"
            r"(?:(?P<Component>.*?)(?:\[(?P<PID>\d+)\])?:\s+)?(?P<Content>.*)"
        ),
        timestamp=TimestampSpec(("Timestamp",), "epoch"),
        label_field="Label",
        session_window="time:60",
        host_field="User",
        description="Thunderbird (loghub): same label rule as BGL; lines without 'component:' keep all "
        "text after the location as content",
    ),
}


class LineFormat:
    """Turns one line into a ``LogRecord``; ``parse`` raises ``BadLineError`` for a line it cannot use."""

    spec: str = ""
    preset: FormatPreset | None = None
    session_field: str | None = None  # key in ``LogRecord.fields`` that holds a session id, if any
    level_field: str | None = None  # key in ``LogRecord.fields`` that holds the line's level, if any

    def parse(self, line: str, source: str = "", line_no: int = 0, *, times: bool = True) -> LogRecord:
        """One line as a record; ``times=False`` leaves ``timestamp`` unset (for callers that never read it)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


class PlainFormat(LineFormat):
    """The whole line is the content."""

    spec = "plain"

    def parse(self, line: str, source: str = "", line_no: int = 0, *, times: bool = True) -> LogRecord:
        return LogRecord(content=line.rstrip("\r\n"), source=source, line_no=line_no)


class RegexFormat(LineFormat):
    """A header regex with named groups, one of which is ``Content``."""

    def __init__(
        self,
        spec: str,
        regex: str,
        *,
        timestamp: TimestampSpec | None = None,
        label_field: str | None = None,
        normal_labels: Sequence[str] = ("-",),
        session_field: str | None = None,
        preset: FormatPreset | None = None,
    ) -> None:
        trusted = preset is not None and regex == (preset.regex or format_to_regex(preset.format))
        self._regex = compile_regex(regex, f"format {spec!r}", trusted=trusted)
        names = set(self._regex.groupindex)
        if "Content" not in names:
            raise LogWardenError(f"format {spec!r} has no <Content> field")
        for option, name in (("label_field", label_field), ("session_field", session_field)):
            if name is not None and name not in names:
                raise LogWardenError(f"format {spec!r}: {option} {name!r} is not one of its fields")
        if timestamp is not None:
            missing = [f for f in timestamp.fields if f not in names]
            if missing:
                raise LogWardenError(f"format {spec!r}: timestamp field(s) {', '.join(missing)} not in the format")
        self.spec = spec
        self.preset = preset
        self.fields = tuple(n for n in self._regex.groupindex if n != "Content")
        self.level_field = next((f for f in self.fields if f.lower() in LEVEL_FIELDS), None)
        self.timestamp = timestamp
        self._read_time = _time_reader(timestamp.pattern) if timestamp else None
        self.label_field = label_field
        self._normal = frozenset(normal_labels)
        self.session_field = session_field
        # Content last: match the header only (anchored at the start); the content is what follows it
        head = regex[: -len(_CONTENT_TAIL)]
        self._header = None
        if regex.endswith(_CONTENT_TAIL) and "Content" not in head:
            self._header = compile_regex(head, f"format {spec!r}", trusted=trusted).match
        self._fullmatch = self._regex.fullmatch

    def parse(self, line: str, source: str = "", line_no: int = 0, *, times: bool = True) -> LogRecord:
        line = line.rstrip("\r\n")
        if self._header is not None:
            match = self._header(line)
            if match is None:
                raise BadLineError(f"does not match format {self.spec!r}: {_excerpt(line)}")
            groups = match.groupdict()
            content = line[match.end() :]
        else:
            match = self._fullmatch(line)
            if match is None:
                raise BadLineError(f"does not match format {self.spec!r}: {_excerpt(line)}")
            groups = match.groupdict()
            content = groups.pop("Content") or ""
        fields = {k: v for k, v in groups.items() if v is not None}
        record = LogRecord(content=content, source=source, line_no=line_no, fields=fields)
        if times and self._read_time is not None and self.timestamp is not None:
            record.timestamp = self._read_time(" ".join(fields.get(f, "") for f in self.timestamp.fields))
        if self.label_field is not None:
            value = fields.get(self.label_field)
            record.label = None if value is None else int(value not in self._normal)
        return record


# the options of a ``json?message=...&session=...`` spec, and the JsonFormat keyword each one sets
JSON_SPEC_OPTIONS = {
    "message": "message_field",
    "timestamp": "timestamp_field",
    "time_format": "timestamp",
    "label": "label_field",
    "session": "session_field",
}


class JsonFormat(LineFormat):
    """JSON lines; field names may be dotted paths into nested objects (``log.message``)."""

    def __init__(
        self,
        *,
        message_field: str = "message",
        timestamp_field: str | None = None,
        timestamp: str | None = None,
        label_field: str | None = None,
        session_field: str | None = None,
        normal_labels: Sequence[str] = _DEFAULT_NORMAL,
    ) -> None:
        given = {
            "message_field": message_field,
            "timestamp_field": timestamp_field,
            "timestamp": timestamp,
            "label_field": label_field,
            "session_field": session_field,
        }
        fields = {option: name for option, name in given.items() if option.endswith("_field") and name is not None}
        for option, name in fields.items():
            if not name or any(not part for part in name.split(".")):
                raise LogWardenError(f"json format: {option} {name!r} is not a field name or dotted path")
        shown = {
            short: given[option]
            for short, option in JSON_SPEC_OPTIONS.items()
            if given[option] is not None and not (short == "message" and given[option] == "message")
        }
        self.spec = "json" + (f"?{urlencode(shown)}" if shown else "")
        self.message_field = message_field
        self.timestamp_field = timestamp_field
        self._read_time = _time_reader(timestamp) if timestamp else None
        self.label_field = label_field
        self._normal = frozenset(s.lower() for s in normal_labels)
        self.session_field = session_field
        self._paths = {name: name.split(".") for name in fields.values()}

    def _get(self, obj: dict, name: str) -> Any:
        for key in self._paths[name]:
            if not isinstance(obj, dict) or key not in obj:
                return _MISSING
            obj = obj[key]
        return obj

    def parse(self, line: str, source: str = "", line_no: int = 0, *, times: bool = True) -> LogRecord:
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise BadLineError(f"not valid JSON ({exc.args[0] if exc.args else exc}): {_excerpt(line)}") from None
        if not isinstance(obj, dict):
            raise BadLineError(f"JSON line is not an object: {_excerpt(line)}")
        message = self._get(obj, self.message_field)
        if message is _MISSING or message is None:
            raise BadLineError(f"JSON line has no {self.message_field!r} field: {_excerpt(line)}")
        content = message if isinstance(message, str) else json.dumps(message, ensure_ascii=False)
        record = LogRecord(content=content, source=source, line_no=line_no)
        if times and self.timestamp_field:
            record.timestamp = self._json_time(self._get(obj, self.timestamp_field))
        if self.label_field:
            record.label = self._json_label(self._get(obj, self.label_field))
        if self.session_field:
            value = self._get(obj, self.session_field)
            if value is not _MISSING and value is not None:
                record.fields[self.session_field] = value if isinstance(value, str) else json.dumps(value)
        return record

    def _json_time(self, value: Any) -> float | None:
        if isinstance(value, bool) or value is _MISSING or value is None:
            return None
        if isinstance(value, int | float):
            return _epoch(str(value))
        if not isinstance(value, str):
            return None
        if self._read_time is not None:
            return self._read_time(value)
        return _iso(value) if not _looks_numeric(value) else _epoch(value)

    def _json_label(self, value: Any) -> int | None:
        if value is _MISSING or value is None or value == "":
            return None
        if isinstance(value, bool | int | float):
            return int(bool(value))
        return int(str(value).strip().lower() not in self._normal)


def _looks_numeric(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _excerpt(line: str) -> str:
    return repr(line if len(line) <= EXCERPT_CHARS else line[:EXCERPT_CHARS] + "...")


# -- timestamps -------------------------------------------------------------------------------------


def _epoch(value: str) -> float | None:
    """Epoch seconds; values above 1e11 are taken as milliseconds."""
    try:
        seconds = float(value)
    except ValueError:
        return None
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return seconds / 1000.0 if abs(seconds) > 1e11 else seconds


def _iso(value: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _time_reader(pattern: str) -> Callable[[str], float | None]:
    """A cached function from the joined timestamp text to epoch seconds (``None`` if unparsable)."""
    if pattern == "epoch":
        return _bounded_cache(_epoch)
    if pattern == "iso":
        return _bounded_cache(_iso)
    if "%" not in pattern:
        raise LogWardenError(
            f"timestamp {pattern!r}: use 'epoch', 'iso' or a strptime pattern such as '%Y-%m-%d %H:%M:%S'"
        )

    def read(value: str) -> float | None:
        try:
            parsed = datetime.strptime(value, pattern)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()

    return _bounded_cache(read)


def _bounded_cache(read: Callable[[str], float | None]) -> Callable[[str], float | None]:
    """``read`` with an LRU cache for short texts only, so the cache's memory stays small whatever comes in."""
    cached = lru_cache(maxsize=_TIMESTAMP_CACHE)(read)

    def bounded(value: str) -> float | None:
        return cached(value) if len(value) <= _CACHED_TIME_CHARS else read(value)

    return bounded


# -- format strings -----------------------------------------------------------------------------------

_TOKEN = re.compile(r"<([^<>]*)>|\\(.)|(\s+)|([^<>\\\s]+)|([<>])", re.DOTALL)


def format_to_regex(fmt: str) -> str:
    """Compile a loghub-style format string into a regex with one named group per ``<Field>``.

    Literal text matches itself (a backslash escapes the next character, so loghub's ``\\[<Time>\\]``
    works too) and whitespace matches ``\\s+``. A field followed by whitespace or the end matches
    non-blank text; other fields match the shortest text up to the next literal. The last field is
    greedy. The format must contain ``<Content>``, exactly once.
    """
    if not fmt.strip():
        raise LogWardenError("format string is empty")
    pieces: list[tuple[str, str]] = []  # ("field", name) | ("lit", text) | ("ws", "")
    for match in _TOKEN.finditer(fmt):
        name, escaped, space, literal, stray = match.groups()
        if stray is not None:
            raise LogWardenError(f"format {fmt!r}: unbalanced {stray!r} at position {match.start()}")
        if name is not None:
            if not _FIELD_NAME.match(name):
                raise LogWardenError(f"format {fmt!r}: field name <{name}> must be letters, digits or '_'")
            if any(kind == "field" and value == name for kind, value in pieces):
                raise LogWardenError(f"format {fmt!r}: field <{name}> appears twice")
            pieces.append(("field", name))
        elif space is not None:
            pieces.append(("ws", ""))
        else:
            pieces.append(("lit", escaped if escaped is not None else literal))
    if fmt.endswith("\\") and not fmt.endswith("\\\\"):
        raise LogWardenError(f"format {fmt!r}: ends with a lone backslash")
    if ("field", "Content") not in pieces:
        raise LogWardenError(f"format {fmt!r} has no <Content> field")
    while pieces and pieces[0][0] == "ws":
        pieces.pop(0)
    while pieces and pieces[-1][0] == "ws":
        pieces.pop()
    last_field = max(i for i, (kind, _) in enumerate(pieces) if kind == "field")
    out = []
    for i, (kind, value) in enumerate(pieces):
        following = pieces[i + 1][0] if i + 1 < len(pieces) else "end"
        if kind == "field":
            if i == last_field:
                out.append(f"(?P<{value}>.*)")
            elif following in ("ws", "end"):
                out.append(rf"(?P<{value}>\S+)")
            else:
                out.append(f"(?P<{value}>.*?)")
        elif kind == "ws":
            is_last_gap = i + 1 == last_field and last_field == len(pieces) - 1
            out.append(r"(?:\s+|$)" if is_last_gap else r"\s+")
        else:
            out.append(re.escape(value))
    return "".join(out)


# -- entry point --------------------------------------------------------------------------------------


def get_format(
    spec: str,
    *,
    message_field: str = "message",
    timestamp_field: str | None = None,
    label_field: str | None = None,
    session_field: str | None = None,
    timestamp: str | None = None,
    timestamp_fields: Sequence[str] | str | None = None,
    normal_labels: Sequence[str] | None = None,
) -> LineFormat:
    """The ``LineFormat`` for a preset name, ``plain``, ``json`` (``json?message=...``) or a format string.

    Options: for ``json``, ``message_field`` / ``timestamp_field`` / ``label_field`` / ``session_field``
    (dotted paths) and ``timestamp`` (how to read string times; default ISO 8601 or epoch numbers).
    For format strings, ``timestamp`` (strptime pattern, ``epoch`` or ``iso``) over ``timestamp_fields``
    (default ``Timestamp``, else ``Date`` + ``Time``), ``label_field`` and ``session_field``.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise LogWardenError(
            "format is empty: give a preset name ("
            + ", ".join(PRESETS)
            + "), 'plain', 'json' or a format string containing <Content>"
        )
    spec = spec.strip()
    key = spec.lower()
    if key in PRESETS:
        return _preset_format(PRESETS[key], session_field)
    if key == "plain":
        return PlainFormat()
    if key == "json" or key.startswith("json?"):
        given = {
            "message_field": message_field,
            "timestamp_field": timestamp_field,
            "timestamp": timestamp,
            "label_field": label_field,
            "session_field": session_field,
        }
        return _json_format(spec, given, normal_labels)
    if "<" not in spec:
        raise LogWardenError(
            f"unknown format {spec!r}: use a preset ("
            + ", ".join(PRESETS)
            + "), 'plain', 'json' or a format string such as '<Date> <Time> <Content>'"
        )
    return _string_format(spec, timestamp, timestamp_fields, label_field, session_field, normal_labels)


def _preset_format(preset: FormatPreset, session_field: str | None) -> RegexFormat:
    return RegexFormat(
        preset.name,
        preset.regex or format_to_regex(preset.format),
        timestamp=preset.timestamp,
        label_field=preset.label_field,
        normal_labels=preset.normal_labels,
        session_field=session_field or preset.session_field,
        preset=preset,
    )


def _json_format(spec: str, defaults: dict[str, str | None], normal_labels: Sequence[str] | None) -> JsonFormat:
    """``json`` with the options of ``json?message=...&session=...`` over ``defaults`` (JsonFormat keywords)."""
    query = dict(parse_qsl(spec[5:], strict_parsing=True)) if "?" in spec else {}
    unknown = set(query) - set(JSON_SPEC_OPTIONS)
    if unknown:
        raise LogWardenError(f"format {spec!r}: unknown json option(s) {', '.join(sorted(unknown))}")
    options = {**defaults, **{JSON_SPEC_OPTIONS[short]: value for short, value in query.items()}}
    options["message_field"] = options["message_field"] or "message"
    return JsonFormat(**options, normal_labels=normal_labels or _DEFAULT_NORMAL)


def _string_format(
    spec: str,
    timestamp: str | None,
    timestamp_fields: Sequence[str] | str | None,
    label_field: str | None,
    session_field: str | None,
    normal_labels: Sequence[str] | None,
) -> RegexFormat:
    """A loghub-style format string; ``timestamp`` says how its time fields read."""
    regex = format_to_regex(spec)
    names = set(re.compile(regex).groupindex)
    ts = None
    if timestamp:
        if isinstance(timestamp_fields, str):
            timestamp_fields = [timestamp_fields]
        if not timestamp_fields:
            timestamp_fields = ["Timestamp"] if "Timestamp" in names else [f for f in ("Date", "Time") if f in names]
        if not timestamp_fields:
            raise LogWardenError(f"format {spec!r}: say which fields hold the timestamp (timestamp_fields)")
        ts = TimestampSpec(tuple(timestamp_fields), timestamp)
    return RegexFormat(
        spec,
        regex,
        timestamp=ts,
        label_field=label_field,
        normal_labels=normal_labels or ("-",),
        session_field=session_field,
    )
