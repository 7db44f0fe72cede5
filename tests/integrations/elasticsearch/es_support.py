"""Helpers of the Elasticsearch integration tests (imported as ``es_support``): the ES proxy on a background
loop, a ``logwarden`` command as its own process, sample lines."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from logwarden.core.synthetic import generate
from logwarden.integrations.elasticsearch.proxy import EsProxy
from logwarden.integrations.elasticsearch.settings import ProxySettings

LINES = generate(n_sessions=40, anomaly_rate=0.0, seed=11).lines
REPO = Path(__file__).resolve().parents[3]


class BackgroundProxy:
    """``logwarden es-proxy`` on a thread of its own (its own event loop), on a free port."""

    def __init__(self, **settings: Any) -> None:
        settings.setdefault("port", 0)
        settings.setdefault("metrics_port", 0)
        self.settings = ProxySettings(**settings)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="es-proxy-test", daemon=True)
        self.proxy: EsProxy | None = None

    def run(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _make(self) -> EsProxy:
        return EsProxy(self.settings)

    def start(self) -> BackgroundProxy:
        self._thread.start()
        self.proxy = self.run(self._make())
        self.run(self.proxy.start())
        return self

    @property
    def url(self) -> str:
        scheme = "https" if self.settings.tls_cert else "http"
        return f"{scheme}://127.0.0.1:{self.proxy.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.metrics_port}/metrics"

    def stop(self) -> None:
        if self.proxy is not None:
            self.run(self.proxy.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> BackgroundProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LogwardenProcess:
    """A ``logwarden`` command as its own process (``python -m logwarden.core.cli ...``), started when its JSON
    log says ``ready_event``; ``kill()`` is SIGKILL, ``terminate()`` SIGTERM and wait."""

    def __init__(self, args: list[str], ready_event: str) -> None:
        self.args, self.ready_event = args, ready_event
        self.proc: subprocess.Popen | None = None
        self.logs: list[dict] = []

    def start(self, timeout: float = 120) -> LogwardenProcess:
        self.logs = []
        ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logwarden.core.cli", *self.args],
            cwd=REPO,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )

        def read(proc=self.proc) -> None:
            for line in proc.stderr:
                if line.startswith("{"):
                    self.logs.append(json.loads(line))
                    if self.logs[-1].get("event") == self.ready_event:
                        ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.is_set():
            assert self.proc.poll() is None, f"{self.args[0]} exited with {self.proc.returncode}"
            assert time.monotonic() < deadline, f"{self.args[0]} did not start"
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)
