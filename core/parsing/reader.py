"""Reading log records from files, globs, gzip files and stdin, robust to bad lines.

Lines are read in binary with a bounded ``readline``, so one huge line never sits in memory whole.
A line the format cannot use is counted and skipped (and reported through ``on_bad_line``); the
stream goes on. Empty input is not an error here: the caller decides what it means.
"""

from __future__ import annotations

import glob
import gzip
import io
import os
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from logwarden.core.errors import BadLineError, LogWardenError
from logwarden.core.parsing.formats import LineFormat
from logwarden.core.records import LogRecord

GZIP_MAGIC = b"\x1f\x8b"
STDIN = "-"
STDIN_NAME = "<stdin>"
CHUNK = 1 << 16
MAX_CONTROL_SHARE = 0.3  # a line with more control bytes / replacement characters than this is binary
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13))
_KEEP = bytes(range(256)).translate(None, _CONTROL)  # everything that is not a control byte

BadLineCallback = Callable[[str, int, str], None]


@dataclass(frozen=True)
class BadLine:
    source: str
    line_no: int
    reason: str


@dataclass
class ReadStats:
    """What the reader saw: counts by outcome and the first bad lines, for people and for metrics."""

    max_examples: int = 10
    files: int = 0
    lines: int = 0
    records: int = 0
    empty: int = 0
    bad: Counter[str] = field(default_factory=Counter)  # kind -> count: too_long, binary, format, gzip
    warnings: Counter[str] = field(default_factory=Counter)  # kind -> count: invalid_utf8
    examples: list[BadLine] = field(default_factory=list)

    @property
    def bad_lines(self) -> int:
        return sum(self.bad.values())

    def add_bad(self, kind: str, source: str, line_no: int, reason: str) -> None:
        self.bad[kind] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(BadLine(source, line_no, reason))

    def summary(self) -> str:
        """A short, readable account, e.g. for the end of a ``train`` or ``score`` run."""
        text = (
            f"read {self.lines:,} lines from {self.files:,} input(s): {self.records:,} records, "
            f"{self.empty:,} empty, {self.bad_lines:,} bad"
        )
        if self.bad:
            text += " (" + ", ".join(f"{n:,} {_KIND_WORDS.get(k, k)}" for k, n in self.bad.most_common()) + ")"
        if self.warnings:
            text += "; warnings: " + ", ".join(f"{n:,} {_KIND_WORDS.get(k, k)}" for k, n in self.warnings.most_common())
        for ex in self.examples:
            text += f"\n  line {ex.line_no} of {ex.source}: {ex.reason}"
        if self.bad_lines > len(self.examples):
            text += f"\n  ... {self.bad_lines - len(self.examples):,} more bad lines not shown"
        return text


_KIND_WORDS = {
    "too_long": "too long",
    "binary": "binary",
    "format": "not matching the format",
    "gzip": "corrupt gzip",
    "invalid_utf8": "with invalid UTF-8 (kept, decoded with U+FFFD)",
}


def expand_paths(paths: Sequence[str]) -> list[str]:
    """Files in order: globs expand sorted; a glob matching nothing or a missing file is an error."""
    out: list[str] = []
    for path in paths:
        if path == STDIN:
            out.append(path)
        elif os.path.exists(path):
            if os.path.isdir(path):
                raise LogWardenError(f"{path}: is a directory; give files or a glob such as {path}/*.log")
            out.append(path)
        elif glob.has_magic(path):
            matches = sorted(p for p in glob.glob(path, recursive=True) if os.path.isfile(p))
            if not matches:
                raise LogWardenError(f"no files match {path!r}")
            out.extend(matches)
        else:
            raise LogWardenError(f"{path}: no such file")
    return out


def read_records(
    paths: Sequence[str],
    fmt: LineFormat,
    *,
    max_line_bytes: int = 65536,
    stats: ReadStats | None = None,
    on_bad_line: BadLineCallback | None = None,
) -> Iterator[LogRecord]:
    """Yield a ``LogRecord`` for every usable line of ``paths`` (files, globs, gzip, ``-`` = stdin)."""
    if max_line_bytes < 1:
        raise LogWardenError("max_line_bytes must be positive")
    stats = stats if stats is not None else ReadStats()
    for path in expand_paths(paths):  # all paths are checked before the first line is read
        stats.files += 1
        source = STDIN_NAME if path == STDIN else path
        stream = _open(path)
        try:
            yield from _read_stream(stream, source, fmt, max_line_bytes, stats, on_bad_line)
        finally:
            if path != STDIN:  # a GzipFile over stdin leaves stdin itself open
                stream.close()


def open_input(path: str) -> BinaryIO:
    """A binary stream of one input (a file, gzip-compressed or not, or ``-`` for standard input)."""
    return _open(path)


def _open(path: str) -> BinaryIO:
    if path == STDIN:
        raw = sys.stdin.buffer
        stream: BinaryIO = raw if hasattr(raw, "peek") else io.BufferedReader(raw)  # type: ignore[arg-type]
    else:
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed by read_records
        except OSError as exc:
            raise LogWardenError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    if stream.peek(2)[:2] == GZIP_MAGIC:  # type: ignore[attr-defined]
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream


def _read_stream(
    stream: BinaryIO,
    source: str,
    fmt: LineFormat,
    max_line_bytes: int,
    stats: ReadStats,
    on_bad_line: BadLineCallback | None,
) -> Iterator[LogRecord]:
    def bad(kind: str, line_no: int, reason: str) -> None:
        stats.add_bad(kind, source, line_no, reason)
        if on_bad_line is not None:
            on_bad_line(source, line_no, reason)

    readline = stream.readline
    limit = max_line_bytes + 2  # room for "\r\n"
    line_no = 0
    while True:
        try:
            raw = readline(limit)
        except (OSError, EOFError, zlib.error) as exc:  # truncated or corrupt gzip: keep what was read
            bad("gzip", line_no + 1, f"cannot read further: {exc}")
            return
        if not raw:
            return
        line_no += 1
        stats.lines += 1
        if len(raw) == limit and not raw.endswith(b"\n"):
            try:
                while True:  # consume the rest of the line in chunks, never holding it whole
                    rest = readline(CHUNK)
                    if not rest or rest.endswith(b"\n"):
                        break
            except (OSError, EOFError, zlib.error) as exc:
                bad("gzip", line_no, f"cannot read further: {exc}")
                return
            bad("too_long", line_no, f"longer than {max_line_bytes} bytes")
            continue
        raw = raw.rstrip(b"\r\n")
        if len(raw) > max_line_bytes:
            bad("too_long", line_no, f"longer than {max_line_bytes} bytes")
            continue
        if not raw.strip():
            stats.empty += 1
            continue
        if b"\0" in raw or len(raw.translate(None, _KEEP)) > MAX_CONTROL_SHARE * len(raw):
            bad("binary", line_no, "binary data (NUL or control bytes), skipped")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="replace")
            if text.count("\ufffd") > MAX_CONTROL_SHARE * len(text):
                bad("binary", line_no, "binary data (mostly invalid UTF-8), skipped")
                continue
            stats.warnings["invalid_utf8"] += 1
        try:
            record = fmt.parse(text, source, line_no)
        except BadLineError as exc:
            bad("format", line_no, str(exc))
            continue
        stats.records += 1
        yield record
