"""Session grouping: by key regex, by field, by time windows and by count windows."""

import pytest

from logwarden.core.errors import LogWardenError
from logwarden.core.parsing.sessions import Event, SessionRule, build_sessions
from logwarden.core.records import LogRecord


def ev(content: str, source: str = "a.log", ts: float | None = None, label: int | None = None, **fields) -> Event:
    return Event(LogRecord(content, source=source, timestamp=ts, fields=fields, label=label), key="1")


def test_key_regex_groups_by_block_id_per_source():
    events = [ev("read blk_1"), ev("write blk_-2"), ev("close blk_1"), ev("read blk_1", source="b.log")]
    sessions = build_sessions(events, SessionRule(kind="key", key_regex=r"blk_-?\d+"))
    assert [(s.source, s.key, len(s.events)) for s in sessions] == [
        ("a.log", "blk_1", 2),
        ("a.log", "blk_-2", 1),
        ("b.log", "blk_1", 1),
    ]


def test_key_regex_group_and_fallback_to_source():
    events = [ev("user=alice login"), ev("no user here"), ev("user=alice logout")]
    sessions = build_sessions(events, SessionRule(kind="key", key_regex=r"user=(\w+)"))
    assert {s.key: len(s.events) for s in sessions} == {"alice": 2, "a.log": 1}


def test_field_sessions():
    events = [ev("x", host="h1"), ev("y", host="h2"), ev("z", host="h1")]
    sessions = build_sessions(events, SessionRule(kind="field", field="host"))
    assert {s.key: [e.record.content for e in s.events] for s in sessions} == {"h1": ["x", "z"], "h2": ["y"]}


def test_sliding_time_windows_and_labels():
    events = [ev(f"m{i}", ts=float(t), label=int(i == 3)) for i, t in enumerate([0, 10, 35, 61, 95])]
    sessions = build_sessions(events, SessionRule(kind="time", window_seconds=60, step_seconds=30))
    contents = [[e.record.content for e in s.events] for s in sessions]
    assert contents == [["m0", "m1", "m2"], ["m2", "m3"], ["m3", "m4"], ["m4"]]
    assert [s.label for s in sessions] == [0, 1, 1, 0]


def test_time_windows_need_timestamps():
    with pytest.raises(LogWardenError, match="timestamp"):
        build_sessions([ev("a", ts=1.0), ev("b")], SessionRule(kind="time"))


def test_count_windows():
    events = [ev(f"m{i}") for i in range(7)]
    sessions = build_sessions(events, SessionRule(kind="count", window_size=4, step_size=2))
    assert [len(s.events) for s in sessions] == [4, 4, 3]
    assert sessions[1].events[0].record.content == "m2"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "weekly"}, "unknown session kind"),
        ({"kind": "key", "key_regex": "blk_("}, "session key regex: invalid regex"),
        ({"kind": "key", "key_regex": r"(blk)_\1"}, "session key regex: .* cannot run in linear time"),
        ({"kind": "field"}, "needs a field name"),
        ({"kind": "count", "window_size": 2, "step_size": 3}, "count windows"),
    ],
)
def test_bad_rules_are_named(kwargs, message):
    with pytest.raises(LogWardenError, match=message):
        SessionRule(**kwargs)
