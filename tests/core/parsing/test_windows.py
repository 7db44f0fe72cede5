"""Time and count windows: per source, global, or per node/host field; long windows cut at a bound."""

from __future__ import annotations

import pytest

from logwarden.core.errors import LogWardenError
from logwarden.core.parsing.sessions import GLOBAL, Event, SessionRule, build_sessions, capped
from logwarden.core.records import LogRecord


def events(spec: list[tuple[str, str, float]]) -> list[Event]:
    """(source, node, time) per line; the key is the node and the time, to follow each line."""
    return [
        Event(LogRecord(f"line {i}", source, i + 1, t, {"Node": node}), f"{node}@{t:g}")
        for i, (source, node, t) in enumerate(spec)
    ]


LINES = [("a.log", "n1", 0), ("a.log", "n2", 10), ("b.log", "n1", 20), ("a.log", "n1", 70), ("b.log", "n2", 75)]


def test_windows_per_source_global_and_per_field():
    rule = SessionRule(kind="time", window_seconds=60, step_seconds=60)
    per_source = build_sessions(events(LINES), rule)
    assert [(s.key, [e.key for e in s.events]) for s in per_source] == [
        ("a.log@0", ["n1@0", "n2@10"]),
        ("a.log@60", ["n1@70"]),
        ("b.log@20", ["n1@20", "n2@75"]),
    ]
    everything = build_sessions(events(LINES), SessionRule(kind="time", window_seconds=60, scope="global"))
    assert [[e.key for e in s.events] for s in everything] == [["n1@0", "n2@10", "n1@20"], ["n1@70", "n2@75"]]
    assert {s.source for s in everything} == {GLOBAL}
    by_node = build_sessions(
        events(LINES), SessionRule(kind="count", window_size=2, step_size=2, scope="field", group_field="Node")
    )
    assert [(s.source, [e.key for e in s.events]) for s in by_node] == [
        ("a.log|n1", ["n1@0", "n1@70"]),
        ("a.log|n2", ["n2@10"]),
        ("b.log|n1", ["n1@20"]),
        ("b.log|n2", ["n2@75"]),
    ]


def test_long_windows_are_cut_at_the_bound():
    burst = events([("a.log", "n1", i / 100) for i in range(25)])
    rule = SessionRule(kind="time", window_seconds=60, step_seconds=60, max_events=10)
    parts = build_sessions(burst, rule)
    assert [len(s.events) for s in parts] == [10, 10, 5] and [s.part for s in parts] == [0, 1, 2]
    assert [s.key for s in parts] == ["a.log@0", "a.log@0+1", "a.log@0+2"] and capped(parts) == 1
    assert [e for s in parts for e in s.events] == burst
    assert len(build_sessions(burst, SessionRule(kind="time", max_events=0))) == 1  # 0: never cut


def test_bad_scopes_are_refused():
    with pytest.raises(LogWardenError, match="group_field"):
        SessionRule(kind="time", scope="field")
    with pytest.raises(LogWardenError, match="unknown window scope"):
        SessionRule(kind="time", scope="node")  # type: ignore[arg-type]
