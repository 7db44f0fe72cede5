"""No log line can make parsing slow: masking, every format and the session key search stay linear in the
line's length over adversarial shapes (colons, ``a:``/``f:`` alternations, digit runs with separators,
slashes, dots, hex runs, random mixes), and a seeded fuzz of lines through the masker and every format
raises nothing but ``BadLineError``.

Work is bounded, not timed: the whole adversarial set (every shape at 1 KiB, 16 KiB and 64 KiB, through
the masker, every preset, format strings and the session key regexes) runs in a child process that must
finish within a generous liveness bound — linear code needs a second or two, the quadratic masks of
before needed minutes for one 64 KiB line of colons. The per-line figures are ``benchmarks/adversarial.py``'s.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from logwarden.core.errors import BadLineError, LogWardenError
from logwarden.core.parsing.adversarial import SHAPES, fuzz_lines, line_of
from logwarden.core.parsing.formats import PRESETS, get_format
from logwarden.core.parsing.linear_regex import LinearRegex, compile_regex
from logwarden.core.parsing.masking import Masker, MaskingConfig
from logwarden.core.parsing.sessions import SessionRule, key_pattern

FORMAT_STRINGS = ("<A>:<B>:<C> <Content>", "<Date> <Time> [<Level>] <Component>: <Content>", "<Content> (<Pid>)")
LIVENESS_BOUND_S = 120  # every shape, size and parser together; linear code takes a few seconds at most

CHILD = textwrap.dedent(
    """
    from logwarden.core.parsing.adversarial import SHAPES, line_of
    from logwarden.core.parsing.formats import PRESETS, get_format
    from logwarden.core.parsing.masking import Masker, MaskingConfig
    from logwarden.core.parsing.sessions import SessionRule, key_pattern

    maskers = [Masker(), Masker(MaskingConfig(extra=(("ticket", r"(?:TCK|tck)-[0-9a-f:]+"),)))]
    formats = [get_format(name) for name in PRESETS] + [get_format(f) for f in {formats!r}]
    keys = [key_pattern(SessionRule()), key_pattern(SessionRule(key_regex=r"(?:req|id)=([\\w:.-]+)"))]
    for shape in SHAPES:
        for size in (1024, 16384, 65536):
            line = line_of(shape, size)
            for masker in maskers:
                masker.mask(line)
            for fmt in formats:
                try:
                    fmt.parse(line)
                except Exception:
                    pass
            for key in keys:
                key.search(line)
    print("done", len(SHAPES))
    """
)


def test_every_adversarial_shape_is_parsed_in_linear_time() -> None:
    code = CHILD.format(formats=FORMAT_STRINGS)
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=LIVENESS_BOUND_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"parsing the adversarial lines took more than {LIVENESS_BOUND_S} s: a regex backtracks")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["done", str(len(SHAPES))]


def test_adversarial_masking_is_unchanged_on_normal_lines() -> None:
    """The bounded look-aheads mask addresses as before (the built-in examples live in test_masking)."""
    masker = Masker()
    assert masker.mask("a fe80::1 b ::ffff:1 c 2001:db8::1:2 d 1::2:3:4:5:6:7") == "a <*> b <*> c <*> d <*>"
    assert masker.mask("::: :a:b dead:beef:cafe") == "::: :a:b dead:beef:cafe"  # no digit: no address
    long_address = "fe:" * 20 + "1"  # longer than any IPv6 address: the digit is beyond its 39 characters
    assert masker.mask(long_address) != "<*>"


@pytest.mark.parametrize("seed", [1, 2])
def test_fuzzed_lines_through_the_masker_and_every_format(seed: int) -> None:
    maskers = [Masker(), Masker(MaskingConfig(extra=(("ticket", r"TCK-\d+"),)))]
    formats = [get_format(name) for name in PRESETS] + [get_format(f) for f in FORMAT_STRINGS]
    formats += [get_format("plain"), get_format("json")]
    for line in fuzz_lines(seed, 1500):
        for masker in maskers:
            assert isinstance(masker.mask(line), str)
        for fmt in formats:
            try:
                record = fmt.parse(line)
            except BadLineError:
                continue
            assert isinstance(record.content, str)
            if fmt.spec != "json":
                assert record.content in line


def test_user_regexes_run_on_re2_and_those_it_cannot_run_are_named() -> None:
    assert isinstance(get_format("<A>:<B> <Content>")._regex, LinearRegex)
    assert not isinstance(get_format("hdfs")._regex, LinearRegex)  # the presets' own regexes: Python's re
    assert isinstance(key_pattern(SessionRule(key_regex=r"id=(\d+)")), LinearRegex)
    assert not isinstance(key_pattern(SessionRule()), LinearRegex)
    for make, name in (
        (lambda: Masker(MaskingConfig(extra=(("look", r"(?<=x)\d+"),))), "mask 'look'"),
        (lambda: SessionRule(key_regex=r"(a)\1"), "session key regex"),
        (lambda: compile_regex(r"a++", "format 'x'"), "format 'x'"),
    ):
        with pytest.raises(LogWardenError, match=f"{name}.*linear time"):
            make()


def test_re2_matches_like_re_on_unicode_and_surrogates() -> None:
    regex = LinearRegex(r"(?P<A>[^ =]+)=(?P<B>[^ ]*)")
    match = regex.search("x ünï=çödé y")
    assert match.groupdict() == {"A": "ünï", "B": "çödé"} and match.end() == len("x ünï=çödé")
    assert LinearRegex(r"\w+").search("ünï").group() == "n"  # RE2's \w, \d, \s are ASCII (documented)
    assert regex.search("k=\ud800 z").group("B") == "\ud800"  # passed through, never an error
    assert LinearRegex(r"\d+").replace_all("<*>", "a1 é22 b333\ud800") == "a<*> é<*> b<*>\ud800"
    assert LinearRegex(r"\b").replace_all("<*>", "ab cd") == "ab cd"  # empty matches replace nothing


def test_format_headers_alone_are_matched_and_content_may_hold_newlines() -> None:
    fmt = get_format("<Date> <Level> <Content>")
    record = fmt.parse("2024-01-01 ERROR boom\n  at Foo.bar(Foo.java:1)")
    assert record.fields == {"Date": "2024-01-01", "Level": "ERROR"}
    assert record.content == "boom\n  at Foo.bar(Foo.java:1)"
    hdfs = get_format("hdfs").parse("081109 203518 143 INFO dfs.X: " + line_of("colons", 60000))
    assert hdfs.fields["Component"] == "dfs.X" and len(hdfs.content) == 60000


def test_time_windows_skip_long_gaps() -> None:
    from logwarden.core.parsing.sessions import Event, build_sessions
    from logwarden.core.records import LogRecord

    events = [Event(LogRecord(content="x", source="s", timestamp=t), None) for t in (0.0, 30.0, 2.5e11)]
    windows = build_sessions(events, SessionRule(kind="time", window_seconds=60, step_seconds=1))
    assert [len(w.events) for w in windows] == [2] + [1] * 30 + [1] * 60  # stepwise, the empty gap skipped
    assert windows[-1].key == "s@250000000000" and windows[31].key == "s@249999999941"
    with pytest.raises(LogWardenError, match="between the years 1 and 9999"):
        build_sessions([Event(LogRecord(content="x", timestamp=1e300), None)], SessionRule(kind="time"))
