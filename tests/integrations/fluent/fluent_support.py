"""Helpers of the receiver tests: a receiver on a background loop, a next hop that keeps what it is sent
(or fails on demand), and a blocking Forward socket for hand-built frames."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine
from typing import Any

import msgpack

from logwarden.integrations.fluent.receiver import FluentReceiver
from logwarden.integrations.fluent.settings import FluentReceiverSettings
from logwarden.integrations.outputs.base import Chunk, NextHopError, Unsupported


class MemoryNextHop:
    """Keeps every chunk it accepts; ``fail`` makes it refuse (as a next hop that is down), ``gate`` holds
    ``send`` until set (a slow next hop)."""

    name = "memory"

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.signals: list[tuple[str, bytes, dict]] = []
        self.fail = False
        self.carry_signals = True
        self.gate: asyncio.Event | None = None
        self.entered = threading.Event()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, chunk: Chunk) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise NextHopError("memory next hop is down")
        self.chunks.append(chunk)

    async def send_signal(self, tag: str, payload: bytes, options: dict) -> None:
        if not self.carry_signals:
            raise Unsupported("memory next hop carries logs only")
        self.signals.append((tag, payload, options))

    @property
    def records(self) -> list:
        return [r for c in self.chunks for r in c.records]


class BackgroundReceiver:
    """A ``FluentReceiver`` running on its own event loop thread."""

    def __init__(self, scorer_target: str | None = None, next_hop=None, **overrides: Any) -> None:
        settings = {"port": 0, "http_port": 0, "host": "127.0.0.1", "shutdown_grace_s": 5.0, "score_budget_s": 5.0}
        if scorer_target is None:
            settings["passthrough"] = True
        else:
            settings["scorer"] = scorer_target
        settings.update(overrides)
        self.settings = FluentReceiverSettings(**settings)
        self.next_hop = next_hop if next_hop is not None else MemoryNextHop()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.receiver: FluentReceiver | None = None

    def run(self, coro: Coroutine, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> BackgroundReceiver:
        self.thread.start()

        async def make() -> FluentReceiver:
            return FluentReceiver(self.settings, next_hop=self.next_hop)

        self.receiver = self.run(make())
        self.run(self.receiver.start())
        return self

    @property
    def port(self) -> int:
        return self.receiver.port

    def stop(self, grace: float = 5.0) -> None:
        if self.receiver is not None:
            self.run(self.receiver.stop(grace))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def metric(self, name: str, **labels: str) -> float:
        return self.receiver.metrics.registry.get_sample_value(name, labels) or 0.0

    def __enter__(self) -> BackgroundReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ForwardSocket:
    """A blocking Forward connection for hand-built frames."""

    def __init__(self, port: int, timeout: float = 20.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.unpacker = msgpack.Unpacker(raw=True)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self) -> Any:
        """The next message (raw: strings as bytes); ConnectionError when the receiver closed the connection."""
        while True:
            for value in self.unpacker:
                return value
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.unpacker.feed(data)

    def ack(self) -> Any:
        answer = self.read()
        return {k.decode(): v for k, v in answer.items()}["ack"]

    def closed(self, timeout: float = 20.0) -> bool:
        """True when the receiver closes the connection (without sending anything more) within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> ForwardSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def until(condition, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.01)
