"""Masking: replace the variable parts of a log line with ``<*>`` in one regex pass.

All masks are compiled into ONE regex, an alternation of named groups, so masking a line is a single
``re.sub`` with a constant replacement (no Python callback per match). Order matters, because at each
position the regex engine takes the first alternative that matches, not the longest:

1. user masks (``MaskingConfig.extra``), in the order given: they know the data best;
2. ``url``: what follows ``scheme:/`` (the scheme itself stays: ``https:<*>``), before the paths,
   hosts and numbers inside it;
3. ``path`` (two or more ``/segments``) before the numbers that may appear in a segment;
4. ``uuid`` and ``blk`` (HDFS block ids) before ``hex``/``num``, which would split them into pieces;
5. ``ipv6`` (and MAC-like colon-hex runs) and ``ipv4`` (with optional ``:port``) before ``num``,
   which would leave ``<*>.<*>.<*>.<*>``;
6. ``hex``: ``0x...`` numbers and hex strings of 8+ characters with a digit and a letter (hashes, ids);
7. ``num``: integers and decimals with an optional sign, runs of numbers joined by ``.:/-,``
   (dates, times, versions: one placeholder instead of several), and numbers glued to a short unit
   suffix (``12ms``, ``64KB``). Digits glued to other letters (``ipv4``, ``eth0``, ``sha256``) are
   left alone: they are usually names, and drain3 already routes tokens with digits to wildcards in
   its prefix tree.

Built-in masks only start at a token boundary (the previous character is not a letter or digit; ``_``
and ``-`` are boundaries) and must end at one, so ``user123`` keeps its digits while ``blk_123``,
``part-0001`` and ``=42`` do not. There is no built-in e-mail mask (an address starts with any letter,
which would cost the speed trick below); add one as a user mask if your logs need it.

Speed: the built-ins form one branch that starts with a single character class, so Python's regex
engine skips, in C, every character that cannot start a mask; the masks are grouped by their first
character so a position tries only the masks that can start there.

Linear time (a log line is untrusted input): every look-ahead and every repetition that can cross a
separator is bounded by what the mask can match (an IPv6 address has at most 39 characters and 8
groups), so each attempt at a position costs a bounded amount of work or ends in a match that covers
the positions it read; and inside a run of letters and digits only the first character can start a
mask. ``tests/core/parsing/test_linearity.py`` and ``benchmarks/adversarial.py`` hold this over lines of
colons, ``a:`` alternations, digit runs with separators, slashes, dots, hex runs and random mixes.

User masks are the user's regexes, so they run on RE2 (``linear_regex``), in a pass of their own
before the built-ins: at each position they win; the built-ins then mask what is left (a ``<*>`` the
user pass wrote counts as a boundary for them). A mask RE2 cannot run is refused, naming it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from logwarden.core.errors import LogWardenError
from logwarden.core.parsing.linear_regex import LinearRegex

PARAM = "<*>"
"""The placeholder every mask writes."""

_H = "[0-9a-fA-F]"
_B = "(?![A-Za-z0-9])"  # right boundary: no letter or digit follows
_UNITS = "(?:[munµ]?s|min|h|d|[kKMGTP]i?[bB]?|[bB]|bytes?|%)"
# An IPv6 address: eight groups, or fewer around one "::" (at most seven written groups then).
_IPV6_REST = rf"(?:{_H}{{0,3}}(?::{_H}{{0,4}}){{3,7}}|{_H}{{0,3}}::(?:{_H}{{1,4}}(?::{_H}{{1,4}}){{0,5}})?){_B}"
# An address that starts with a letter (or "::") must hold a digit within its 39 characters: the first
# character in the next 38 that is not a hex letter or a colon is a digit (possessive: no backtracking).
_IPV6_DIGIT_AFTER_LETTER = "(?=[a-fA-F:]{0,37}+\\d)"
_IPV6_DIGIT_AFTER_DOUBLE_COLON = "(?=[a-fA-F:]{0,33}+\\d)"
_UUID_REST = rf"{_H}{{7}}-{_H}{{4}}-{_H}{{4}}-{_H}{{4}}-{_H}{{12}}{_B}"
_NUM_REST = rf"\d*(?:[.,:/-]\d+)*(?:{_UNITS})?{_B}"

# (first character class, [(mask name, rest of the regex after that first character)]), in match order.
_DISPATCH: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        r"\d",
        (
            ("num", r"\d*(?![\w.,:/@%-])"),  # fast path: a plain integer that no longer mask can extend
            ("uuid", _UUID_REST),
            ("ipv6", _IPV6_REST),
            ("ipv4", rf"\d{{0,2}}(?:\.\d{{1,3}}){{3}}(?::\d{{1,5}})?{_B}"),
            ("hex", rf"(?<=0)[xX]{_H}+{_B}|(?=\d*[a-fA-F]){_H}{{7,}}{_B}"),
            ("num", _NUM_REST),
        ),
    ),
    (
        "[a-fA-F]",
        (
            ("blk", rf"(?<=b)lk_-?\d+{_B}"),
            ("uuid", _UUID_REST),
            ("ipv6", _IPV6_DIGIT_AFTER_LETTER + _IPV6_REST),
            ("hex", rf"(?=[a-fA-F]*\d){_H}{{7,}}{_B}"),
        ),
    ),
    (r"[/\\]", (("path", r"[/\\]?[\w.@%+~-]+(?:[/\\][\w.@%+~-]+)+[/\\]?"),)),
    (r"[+\-]", (("num", r"\d" + _NUM_REST),)),
    (":", (("ipv6", rf":(?={_H}){_IPV6_DIGIT_AFTER_DOUBLE_COLON}{_H}{{1,4}}(?::{_H}{{1,4}}){{0,6}}{_B}"),)),
)
_URL_REST = r"/[^\s\"'<>]+"  # after "scheme:/", the scheme stays as it is
BUILTIN_NAMES = ("url", "path", "uuid", "blk", "ipv6", "ipv4", "hex", "num")


def _builtin_pattern(disabled: frozenset[str]) -> str:
    """The built-in masks as one regex whose first item is a character class (see the module doc)."""
    first_chars, groups, seen = [], [], {}
    for first, masks in _DISPATCH:
        alts = []
        for name, rest in masks:
            if name in disabled:
                continue
            seen[name] = seen.get(name, 0) + 1
            group = name if seen[name] == 1 else f"{name}__{seen[name]}"
            alts.append(f"(?P<{group}>{rest})")
        if alts:
            first_chars.append(first[1:-1] if first.startswith("[") else first)
            groups.append(f"(?<={first})(?:{'|'.join(alts)})")
    branches = []
    if "url" not in disabled:
        first_chars.append("/")
        branches.append(rf"(?<=[A-Za-z0-9]:/)(?P<url>{_URL_REST})")
    if groups:
        branches.append(rf"(?<![A-Za-z0-9].)(?:{'|'.join(groups)})")
    if not branches:
        return ""
    return f"[{''.join(dict.fromkeys(first_chars))}](?:{'|'.join(branches)})"


@dataclass(frozen=True)
class MaskingConfig:
    """Which masks to apply: user masks first, then the built-ins (all, or those not disabled)."""

    extra: tuple[tuple[str, str], ...] = ()
    disabled: tuple[str, ...] = ()


_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*\Z")  # no "__": it marks repeated groups
_ENGINES = "user masks: RE2, one pass; built-ins: Python re, bounded (masks v2)"  # part of the fingerprint


def _check_user_mask(name: str, regex: str, taken: set[str]) -> None:
    if not _NAME.match(name):
        raise LogWardenError(f"mask name {name!r}: use letters, digits and '_' only")
    if name in taken:
        raise LogWardenError(f"mask name {name!r} is used twice (built-in names: {', '.join(BUILTIN_NAMES)})")
    compiled = LinearRegex(regex, f"mask {name!r}")
    if compiled.fullmatch(""):
        raise LogWardenError(f"mask {name!r}: regex {regex!r} matches the empty string")
    taken.add(name)


class Masker:
    """Applies a ``MaskingConfig``: the user masks (one RE2 pass), then the built-ins (one ``re`` pass)."""

    def __init__(self, config: MaskingConfig | None = None) -> None:
        self.config = config or MaskingConfig()
        builtin_names = set(BUILTIN_NAMES)
        unknown = set(self.config.disabled) - builtin_names
        if unknown:
            raise LogWardenError(f"cannot disable unknown built-in mask(s): {', '.join(sorted(unknown))}")
        taken = set(builtin_names)
        for name, regex in self.config.extra:
            _check_user_mask(name, regex, taken)
        self.user_pattern = "|".join(f"(?P<{name}>{regex})" for name, regex in self.config.extra)
        self._user = LinearRegex(self.user_pattern, "user masks") if self.user_pattern else None
        self.pattern = _builtin_pattern(frozenset(self.config.disabled)) or "(?!)"
        self._regex = re.compile(self.pattern)
        self._sub = self._regex.sub

    @property
    def fingerprint(self) -> str:
        """A short hash of the masks and how they run: models record it to refuse a different masking."""
        text = "\n".join((_ENGINES, self.user_pattern, self.pattern))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def mask(self, text: str) -> str:
        """Return ``text`` with every masked span replaced by ``<*>``."""
        if self._user is not None:
            text = self._user.replace_all(PARAM, text)
        return self._sub(PARAM, text)

    def find(self, text: str) -> list[tuple[str, str]]:
        """The ``(mask name, matched text)`` pairs: the user masks' in ``text``, then the built-ins' in what
        the user masks left (for explanations and tests)."""
        found: list[tuple[str, str]] = []
        if self._user is not None:
            found = [(name or "", match) for name, match in self._user.finditer_names(text)]
            text = self._user.replace_all(PARAM, text)
        return found + [((m.lastgroup or "").split("__")[0], m.group()) for m in self._regex.finditer(text)]
