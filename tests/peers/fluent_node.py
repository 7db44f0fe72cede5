"""The npm package ``@fluent-org/logger`` 1.0.10 (tests/node) as test peers: a third-party Forward client
(``send``, standing for Fluent Bit's / Fluentd's ``forward`` output) and its ``FluentServer`` (standing for a
Fluentd or Fluent Bit ``in_forward`` aggregator as the next hop). ``make test`` runs ``npm ci --prefix tests/node``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
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
    """``FluentServer`` in a node process; ``entries`` collects what it received (tag, time, record)."""

    def __init__(self, port: int = 0, shared_key: str | None = None, server_hostname: str = "node-server") -> None:
        self.port = port
        self.options: dict[str, Any] = {"port": port, "serverHostname": server_hostname}
        if shared_key is not None:
            self.options["sharedKey"] = shared_key
        self.entries: list[dict[str, Any]] = []
        self.process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

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
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._lock:
                self.entries.append(json.loads(line))

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.entries)

    def kill(self) -> None:
        """kill -9: the aggregator dies with whatever it held."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            if self._reader is not None:
                self._reader.join(5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._reader is not None:
            self._reader.join(5)

    def __enter__(self) -> FluentServerPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
