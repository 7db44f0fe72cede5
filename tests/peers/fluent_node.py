"""The npm package ``@fluent-org/logger`` 1.0.10 (tests/node) as test peers: a third-party Forward client
(``send``, standing for Fluent Bit's / Fluentd's ``forward`` output) and its ``FluentServer`` (standing for a
Fluentd or Fluent Bit ``in_forward`` aggregator as the next hop). ``make test`` runs ``npm ci --prefix tests/node``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

NODE_DIR = Path(__file__).resolve().parent.parent / "node"


def _check_installed() -> None:
    if not (NODE_DIR / "node_modules" / "@fluent-org" / "logger").is_dir():
        raise RuntimeError(f"@fluent-org/logger is not installed: run `npm ci --prefix {NODE_DIR}` (make test does)")


def send(port: int, tag: str, events: list[dict[str, Any]], *, timeout_s: float = 60, **options: Any) -> dict:
    """Send ``events`` (``{"record": {...}, "time": None | int | [sec, nsec]}``) with FluentClient; options:
    ``mode`` (Message, Forward, PackedForward, CompressedPackedForward), ``ack``, ``sharedKey``,
    ``clientHostname``, ``username``, ``password``. Returns ``{"sent", "acked", "errors"}``."""
    _check_installed()
    spec = {"port": port, "tag": tag, "events": events, **options}
    done = subprocess.run(
        ["node", str(NODE_DIR / "fluent_client.js"), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=NODE_DIR,
    )
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"fluent_client.js printed nothing (rc {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1])


class FluentServerPeer:
    """``FluentServer`` in a node process; ``received()`` is what it accepted (tag, time, record), in order.

    The server appends each chunk's entries to a file before it acks the chunk (``fluent_server.js``), as an
    aggregator writes a chunk to its buffer before the ack: what it acknowledged survives a kill -9."""

    def __init__(self, port: int = 0, shared_key: str | None = None, server_hostname: str = "node-server") -> None:
        self.port = port
        fd, out = tempfile.mkstemp(prefix="fluent-server-", suffix=".jsonl")
        os.close(fd)
        self.out = Path(out)
        self.options: dict[str, Any] = {"port": port, "serverHostname": server_hostname, "out": out}
        if shared_key is not None:
            self.options["sharedKey"] = shared_key
        self.process: subprocess.Popen | None = None
        self._entries: list[dict[str, Any]] = []
        self._read_bytes = 0  # of ``out``, parsed into ``_entries``
        self._closed = False

    def start(self) -> FluentServerPeer:
        _check_installed()
        self.process = subprocess.Popen(
            ["node", str(NODE_DIR / "fluent_server.js"), json.dumps(self.options)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=NODE_DIR,
        )
        first = self.process.stdout.readline()
        if not first:
            raise RuntimeError("fluent_server.js did not start")
        self.port = json.loads(first)["port"]
        self.options["port"] = self.port  # a restart listens on the same port
        return self

    def received(self) -> list[dict[str, Any]]:
        """Every entry so far (only what was appended since the last call is read and parsed); after ``close``,
        every entry it received."""
        if self._closed:
            return list(self._entries)
        with self.out.open("rb") as f:
            f.seek(self._read_bytes)
            data = f.read()
        whole = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._entries.extend(json.loads(line) for line in data[:whole].splitlines())
        self._read_bytes += whole
        return list(self._entries)

    def clear(self) -> None:
        self.out.write_bytes(b"")
        self._entries, self._read_bytes = [], 0

    def kill(self) -> None:
        """kill -9: the aggregator dies with whatever it held."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process is not None:
            self.process.stdout.close()

    def close(self) -> None:
        """Stop, and remove the file of what it received (kept in memory for ``received()``)."""
        self.stop()
        self.received()
        self._closed = True
        self.out.unlink(missing_ok=True)

    def __enter__(self) -> FluentServerPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
