"""The reader: files, globs, gzip, stdin, and bad lines counted without stopping the stream."""

import gzip
import io
import sys
from pathlib import Path

import pytest

from logwarden.core.errors import LogWardenError
from logwarden.core.parsing.formats import get_format
from logwarden.core.parsing.reader import ReadStats, read_records

PLAIN = get_format("plain")


def contents(paths: list[str], **kwargs: object) -> list[str]:
    return [r.content for r in read_records(paths, PLAIN, **kwargs)]  # type: ignore[arg-type]


def test_reads_files_in_order_with_crlf_stripped(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(b"one\r\ntwo\r\n")
    (tmp_path / "b.log").write_bytes(b"three")  # no final newline
    records = list(read_records([str(tmp_path / "a.log"), str(tmp_path / "b.log")], PLAIN))
    assert [r.content for r in records] == ["one", "two", "three"]
    assert [(Path(r.source).name, r.line_no) for r in records] == [("a.log", 1), ("a.log", 2), ("b.log", 1)]


def test_glob_expands_sorted_and_empty_glob_is_an_error(tmp_path: Path) -> None:
    for name in ("2.log", "1.log", "10.log"):
        (tmp_path / name).write_text(f"file {name}\n")
    assert contents([str(tmp_path / "*.log")]) == ["file 1.log", "file 10.log", "file 2.log"]
    with pytest.raises(LogWardenError, match=r"no files match .*\*\.txt"):
        contents([str(tmp_path / "*.txt")])


def test_missing_file_and_directory_are_errors(tmp_path: Path) -> None:
    with pytest.raises(LogWardenError, match=r"nope\.log: no such file"):
        contents([str(tmp_path / "nope.log")])
    with pytest.raises(LogWardenError, match="is a directory"):
        contents([str(tmp_path)])


def test_gzip_is_detected_by_magic_bytes(tmp_path: Path) -> None:
    path = tmp_path / "rotated.1"  # no .gz extension
    path.write_bytes(gzip.compress(b"zipped one\nzipped two\n"))
    assert contents([str(path)]) == ["zipped one", "zipped two"]


def test_truncated_gzip_keeps_what_was_read_and_counts_it(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(b"line %d\n" % i for i in range(5000)))
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    stats = ReadStats()
    got = contents([str(path)], stats=stats)
    assert got and got[0] == "line 0"
    assert stats.bad["gzip"] == 1


def test_stdin_plain_and_gzip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"from stdin\r\nsecond\n")))
    records = list(read_records(["-"], PLAIN))
    assert [(r.content, r.source) for r in records] == [("from stdin", "<stdin>"), ("second", "<stdin>")]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(gzip.compress(b"gz stdin\n"))))
    assert contents(["-"]) == ["gz stdin"]


def test_invalid_utf8_is_kept_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "latin1.log"
    path.write_bytes("café au lait\n".encode("latin-1") + b"fine\n")
    stats = ReadStats()
    assert contents([str(path)], stats=stats) == ["caf\ufffd au lait", "fine"]
    assert stats.warnings["invalid_utf8"] == 1 and stats.bad_lines == 0


def test_binary_garbage_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "mixed.log"
    path.write_bytes(b"before\n\x00\x01\x02\x03 core dump\n" + bytes(range(128, 200)) + b"\nafter\n")
    stats = ReadStats()
    bad: list[tuple[str, int, str]] = []
    got = contents([str(path)], stats=stats, on_bad_line=lambda s, n, r: bad.append((s, n, r)))
    assert got == ["before", "after"]
    assert stats.bad["binary"] == 2
    assert [n for _, n, _ in bad] == [2, 3]


def test_huge_line_is_skipped_without_breaking_the_next_lines(tmp_path: Path) -> None:
    path = tmp_path / "huge.log"
    with path.open("wb") as handle:
        handle.write(b"first\n")
        handle.write(b"x" * (10 * 1024 * 1024) + b"\n")
        handle.write(b"third\nfourth\n")
    stats = ReadStats()
    bad: list[tuple[str, int, str]] = []
    got = contents([str(path)], stats=stats, on_bad_line=lambda s, n, r: bad.append((s, n, r)))
    assert got == ["first", "third", "fourth"]
    assert bad == [(str(path), 2, "longer than 65536 bytes")]
    assert stats.bad["too_long"] == 1 and stats.lines == 4
    assert "line 2 of" in stats.summary() and "longer than 65536 bytes" in stats.summary()


def test_line_of_exactly_the_limit_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "edge.log"
    path.write_bytes(b"a" * 100 + b"\r\n" + b"b" * 101 + b"\n")
    stats = ReadStats()
    assert contents([str(path)], max_line_bytes=100, stats=stats) == ["a" * 100]
    assert stats.bad["too_long"] == 1


def test_empty_lines_and_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    blanks = tmp_path / "blanks.log"
    blanks.write_bytes(b"\n   \r\n\t\nreal\n")
    stats = ReadStats()
    assert contents([str(empty), str(blanks)], stats=stats) == ["real"]
    assert (stats.files, stats.empty, stats.records, stats.bad_lines) == (2, 3, 1, 0)


def test_format_errors_are_counted_with_examples(tmp_path: Path) -> None:
    path = tmp_path / "h.log"
    path.write_text("081109 203615 148 INFO dfs.X: ok line\nnot an hdfs line\n")
    stats = ReadStats(max_examples=1)
    records = list(read_records([str(path)], get_format("hdfs"), stats=stats))
    assert [r.content for r in records] == ["ok line"]
    assert stats.bad["format"] == 1
    assert stats.examples[0].line_no == 2 and "does not match format 'hdfs'" in stats.examples[0].reason
    assert "1 not matching the format" in stats.summary()
