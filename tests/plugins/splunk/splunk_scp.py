"""Search Command Protocol v2 as splunkd speaks it to a ``chunked = true`` command (INTEGRATIONS.md §6.1):
``chunked 1.0,<metadata bytes>,<body bytes>\\n`` + JSON metadata + CSV body (CRLF, ``__mv_<field>`` columns,
multivalue encoded ``$a$;$b$``), a ``getinfo`` exchange first, then one reply per ``execute`` chunk.

Used by the Splunk app's tests and by benchmarks/splunk.py to stand in for splunkd.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER = b"chunked 1.0,%d,%d\n"
_SEARCHES = itertools.count(1)


def frame(metadata: Mapping[str, Any], body: bytes = b"") -> bytes:
    meta = json.dumps(metadata, separators=(",", ":")).encode("utf-8")
    return HEADER % (len(meta), len(body)) + meta + body


def searchinfo(args: Sequence[str], dispatch_dir: str, **overrides: Any) -> dict:
    """``searchinfo`` as splunkd sends it on getinfo (``search`` URL-quoted, times as text)."""
    info = {
        "args": list(args),
        "raw_args": list(args),
        "dispatch_dir": dispatch_dir,
        "sid": f"{int(time.time())}.{next(_SEARCHES)}",  # every search has its own id, as in splunkd
        "app": "search",
        "owner": "ann",
        "username": "ann",
        "session_key": "splunkd-session-key",
        "splunkd_uri": "https://127.0.0.1:1",
        "splunk_version": "9.3.0",
        "search": "search%20index%3Dhdfs%20%7C%20anomalyscore",
        "command": "anomalyscore",
        "maxresultrows": 50000,
        "earliest_time": "0",
        "latest_time": "0",
    }
    info.update(overrides)
    return info


def getinfo(args: Sequence[str], dispatch_dir: str, **overrides: Any) -> bytes:
    return frame({"action": "getinfo", "preview": False, "searchinfo": searchinfo(args, dispatch_dir, **overrides)})


def encode_rows(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """A CSV body as splunkd writes it: every field with its ``__mv_`` twin, lists as multivalue."""
    if not rows:
        return b""
    names: list[str] = []
    for row in rows:
        names += [n for n in row if n not in names]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c for n in names for c in (n, f"__mv_{n}")])
    for row in rows:
        values = []
        for n in names:
            v = row.get(n)
            if isinstance(v, (list, tuple)):
                values += ["\n".join(v), "$" + "$;$".join(x.replace("$", "$$") for x in v) + "$"]
            else:
                values += ["" if v is None else str(v), ""]
        writer.writerow(values)
    return out.getvalue().encode("utf-8")


def execute(rows: Sequence[Mapping[str, Any]], finished: bool) -> bytes:
    return frame({"action": "execute", "finished": finished}, encode_rows(rows))


def decode_mv(encoded: str) -> list[str]:
    import re

    return [m.replace("$$", "$") for m in re.findall(r"\$((?:\$\$|[^$])*)\$(?:;|$)", encoded)]


def decode_rows(body: bytes) -> list[dict]:
    if not body:
        return []
    reader = csv.reader(io.StringIO(body.decode("utf-8"), newline=""))
    header = next(reader)
    rows = []
    for values in reader:
        row: dict[str, Any] = {}
        for n, v in zip(header, values, strict=True):
            if n.startswith("__mv_"):
                if v:
                    row[n[5:]] = decode_mv(v)
            elif n not in row:
                row[n] = v
        rows.append(row)
    return rows


@dataclass
class Reply:
    metadata: dict
    body: bytes
    header_lengths: tuple[int, int]
    rows: list[dict] = field(default_factory=list)

    @property
    def messages(self) -> list[tuple[str, str]]:
        return [tuple(m) for m in (self.metadata.get("inspector") or {}).get("messages", [])]

    @property
    def finished(self) -> bool:
        return bool(self.metadata.get("finished"))


def read_reply(stream: Any) -> Reply | None:
    line = stream.readline()
    if not line:
        return None
    if not line.startswith(b"chunked 1.0,"):
        raise AssertionError(f"not an SCP v2 header: {line[:200]!r}")
    meta_len, body_len = (int(x) for x in line[len(b"chunked 1.0,") :].strip().split(b","))
    meta = stream.read(meta_len)
    body = stream.read(body_len)
    assert len(meta) == meta_len and len(body) == body_len, "reply shorter than its header says"
    return Reply(json.loads(meta), body, (meta_len, body_len), decode_rows(body))


class CommandProcess:
    """A command script run the way splunkd runs it (its own interpreter, no arguments, frames on stdin)."""

    def __init__(self, python: str, script: Path, env: Mapping[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [python, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=str(script.parent),
            env=dict(env) if env is not None else None,
        )

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def reply(self) -> Reply | None:
        return read_reply(self.proc.stdout)

    def close(self, timeout: float = 60) -> tuple[int, bytes]:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        rest = self.proc.stdout.read() if self.proc.stdout else b""
        self.proc.wait(timeout)
        stderr = self.proc.stderr.read() if self.proc.stderr else b""
        assert not rest, f"unexpected output after the last reply: {rest[:300]!r}"
        return self.proc.returncode, stderr


def run_search(
    python: str,
    script: Path,
    args: Sequence[str],
    chunks: Iterable[Sequence[Mapping[str, Any]]],
    dispatch_dir: str,
    env: Mapping[str, str] | None = None,
    **info: Any,
) -> tuple[Reply, list[Reply], int]:
    """getinfo, then one execute per chunk (the last one ``finished: true``); the getinfo reply, one reply per
    execute, and the exit code."""
    chunks = list(chunks)
    command = CommandProcess(python, script, env)
    command.send(getinfo(args, dispatch_dir, **info))
    first = command.reply()
    assert first is not None, command.close()
    replies = []
    if not first.metadata.get("finished"):
        for n, rows in enumerate(chunks):
            command.send(execute(rows, finished=n == len(chunks) - 1))
            reply = command.reply()
            assert reply is not None, f"no reply to execute chunk {n}"
            replies.append(reply)
    code, _ = command.close()
    return first, replies, code


def interpreters() -> list[str]:
    """Splunk's Pythons (9.x ships 3.9, 10.x 3.13) where this machine has them, else the project's own."""
    found = [p for p in ("/root/.pyenv/versions/3.9.18/bin/python", "/root/.pyenv/versions/3.13.0/bin/python")
             if Path(p).exists()]  # fmt: skip
    return found or [sys.executable]
