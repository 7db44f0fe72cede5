"""A LogWarden server on a background thread, for tests of the server and of its clients.

with BackgroundServer(load_settings(None, model_path=root, grpc_port=0)) as bg:
    channel = grpc.insecure_channel(bg.target)
    bg.run(bg.server.reload("v2"))  # run a coroutine on the server's loop
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from logwarden.grpc_server.server import LogWardenServer
from logwarden.grpc_server.settings import Settings


class BackgroundServer:
    def __init__(self, settings: Settings, **server_kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="logwarden-test-server", daemon=True)
        self._settings = settings
        self._kwargs = server_kwargs
        self.server: LogWardenServer | None = None

    def run(self, coro: Coroutine, timeout: float | None = 60) -> Any:
        """Run ``coro`` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _make(self) -> LogWardenServer:
        return LogWardenServer(self._settings, **self._kwargs)

    def start(self) -> BackgroundServer:
        self._thread.start()
        self.server = self.run(self._make())
        self.run(self.server.start())
        return self

    @property
    def target(self) -> str:
        assert self.server is not None and self.server.port is not None
        return f"127.0.0.1:{self.server.port}"

    def stop(self, grace: float = 5.0) -> None:
        if self.server is not None:
            self.run(self.server.stop(grace))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
