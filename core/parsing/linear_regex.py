"""Regexes whose matching time is linear in the line, whatever the pattern: RE2 for what users configure.

A log line is untrusted input. Python's ``re`` backtracks, so a pattern with nested or adjacent
repetition (``(?P<A>.*?):(?P<B>.*?):``, as a format string compiles to) can take time quadratic or
worse in the line's length: one 64 KiB line could hold the server for minutes. Every regex a user
configures and an attacker's line is matched against (extra masks, format strings, session key
regexes) is compiled here with RE2 (``google-re2``), which never backtracks. A pattern RE2 cannot run
(back-references, look-around, possessive quantifiers) is refused with a ``LogWardenError`` naming it.
RE2's ``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII-only (``\\pL``, ``\\p{Nd}`` name Unicode classes);
everything else LogWarden's patterns use means the same as in Python.

LogWarden's own regexes (the built-in masks, the presets' formats and session keys) stay on Python's
``re``, which is faster per call; they are written to be linear and ``tests/core/parsing/
test_linearity.py`` holds them to it over adversarial lines. ``compile_regex(pattern, trusted=True)``
is how a caller says a pattern is one of those.

``LinearRegex`` offers the part of ``re.Pattern`` LogWarden uses (``search``, ``match``, ``fullmatch``,
``groupindex``, ``pattern``) plus ``replace_all`` for masking. Text is matched as UTF-8; a string that
is not valid Unicode (a lone surrogate) is matched with the surrogate passed through, never an error.
"""

from __future__ import annotations

import re
from typing import Any

import re2

from logwarden.core.errors import LogWardenError

_RE2 = re2._re2  # the compiled-program binding: byte offsets, no per-match Python machinery
_UNANCHORED = _RE2.RE2.Anchor.UNANCHORED
_START = _RE2.RE2.Anchor.ANCHOR_START
_BOTH = _RE2.RE2.Anchor.ANCHOR_BOTH
_NO_MATCH = (-1, -1)
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print parse errors on stderr; ours name the pattern instead


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


class LinearMatch:
    """A match of a ``LinearRegex``: ``group``, ``groups``, ``groupdict``, ``lastgroup`` (as ``re.Match``)."""

    __slots__ = ("_data", "_names", "_spans", "_text")

    def __init__(self, text: str, data: bytes, spans: list[tuple[int, int]], names: dict[int, str]) -> None:
        self._text, self._data, self._spans, self._names = text, data, spans, names

    def group(self, index: int | str = 0) -> str | None:
        if isinstance(index, str):
            index = next(i for i, name in self._names.items() if name == index)
        start, end = self._spans[index]
        if start < 0:
            return None
        if len(self._data) == len(self._text):  # ASCII: byte offsets are character offsets
            return self._text[start:end]
        return _decode(self._data[start:end])

    def groups(self) -> tuple[str | None, ...]:
        return tuple(self.group(i) for i in range(1, len(self._spans)))

    def groupdict(self) -> dict[str, str | None]:
        return {name: self.group(i) for i, name in self._names.items()}

    def end(self) -> int:
        """Where the match ends, as a character offset into the text."""
        end = self._spans[0][1]
        return end if len(self._data) == len(self._text) else len(_decode(self._data[:end]))

    @property
    def lastgroup(self) -> str | None:
        """The name of the last named group that took part in the match (an alternation's branch)."""
        found = [name for i, name in self._names.items() if self._spans[i][0] >= 0]
        return found[-1] if found else None


class LinearRegex:
    """A pattern compiled with RE2; ``LogWardenError`` names ``what`` when RE2 cannot run it."""

    def __init__(self, pattern: str, what: str = "regex") -> None:
        try:
            self._regex = re2.compile(pattern, _OPTIONS)._regexp
        except re2.error as exc:
            try:
                re.compile(pattern)
            except re.error as invalid:
                raise LogWardenError(f"{what}: invalid regex {pattern!r}: {invalid}") from None
            detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
            raise LogWardenError(
                f"{what}: {pattern!r} cannot run in linear time (RE2: {detail}); back-references, "
                "look-around and possessive quantifiers are not supported"
            ) from None
        self.pattern = pattern
        self.groupindex = {_decode(name): i for name, i in self._regex.NamedCapturingGroups()}
        self._names = {i: name for name, i in sorted(self.groupindex.items(), key=lambda kv: kv[1])}
        self.groups = self._regex.NumberOfCapturingGroups()

    def __repr__(self) -> str:
        return f"LinearRegex({self.pattern!r})"

    def _match(self, anchor: Any, text: str) -> LinearMatch | None:
        data = _encode(text)
        spans = self._regex.Match(anchor, data, 0, len(data))
        if spans[0] == _NO_MATCH:
            return None
        return LinearMatch(text, data, spans, self._names)

    def search(self, text: str) -> LinearMatch | None:
        return self._match(_UNANCHORED, text)

    def match(self, text: str) -> LinearMatch | None:
        return self._match(_START, text)

    def fullmatch(self, text: str) -> LinearMatch | None:
        return self._match(_BOTH, text)

    def replace_all(self, replacement: str, text: str) -> str:
        """``text`` with every non-overlapping match replaced by ``replacement`` (a literal)."""
        data = _encode(text)
        size = len(data)
        cut = text.__getitem__ if size == len(text) else (lambda s: _decode(data[s]))  # ASCII: bytes are chars
        pieces: list[str] = []
        done = pos = 0
        while pos <= size:
            start, end = self._regex.Match(_UNANCHORED, data, pos, size)[0]
            if start < 0:
                break
            if end == start:  # an empty match (an anchor such as \b): nothing to replace, step over a character
                pos = end + _char_bytes(data, end)
                continue
            pieces += (cut(slice(done, start)), replacement)
            done = pos = end
        if not pieces:
            return text
        pieces.append(cut(slice(done, size)))
        return "".join(pieces)

    def finditer_names(self, text: str) -> list[tuple[str | None, str]]:
        """``(name of the named group that matched, matched text)`` for every match, in order."""
        data = _encode(text)
        size = len(data)
        out: list[tuple[str | None, str]] = []
        pos = 0
        while pos <= size:
            spans = self._regex.Match(_UNANCHORED, data, pos, size)
            start, end = spans[0]
            if start < 0:
                break
            if end > start:
                out.append((LinearMatch(text, data, spans, self._names).lastgroup, _decode(data[start:end])))
            pos = end if end > start else end + _char_bytes(data, end)
        return out


def _char_bytes(data: bytes, pos: int) -> int:
    """The length in bytes of the UTF-8 character at ``pos`` (1 past the end)."""
    if pos >= len(data):
        return 1
    lead = data[pos]
    return 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


Regex = re.Pattern[str] | LinearRegex


def compile_regex(pattern: str, what: str = "regex", *, trusted: bool = False) -> Regex:
    """``pattern`` compiled: with Python's ``re`` when ``trusted`` (LogWarden's own, held linear by tests),
    else with RE2. ``LogWardenError`` names ``what`` for a pattern that is invalid or RE2 cannot run."""
    if not trusted:
        return LinearRegex(pattern, what)
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise LogWardenError(f"{what}: invalid regex {pattern!r}: {exc}") from None
