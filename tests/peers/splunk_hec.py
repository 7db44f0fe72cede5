"""A Splunk HTTP Event Collector stand-in, answering as Splunk documents (INTEGRATIONS.md §6.7; Splunk Enterprise
docs "Format events for HTTP Event Collector" and "Troubleshoot HTTP Event Collector": status codes and their
JSON ``{"text", "code"}``). Splunk itself is not installable here.

* ``POST /services/collector/event`` (and ``/services/collector``, ``/services/collector/event/1.0``) with
  ``Authorization: Splunk <token>``: no header → 401 code 2 "Token is required"; unknown token → 403 code 4
  "Invalid token".
* Body: concatenated JSON event objects. Events are read in order and indexed until the first bad one:
  not JSON → 400 code 6 "Invalid data format"; no ``event`` → 400 code 12 "Event field is required"; an empty
  ``event`` → 400 code 13 "Event field cannot be blank"; each with ``invalid-event-number`` (0-based); the events
  before it stay indexed. An empty body → 400 code 5 "No data".
* ``busy(n)``: the next n requests get 503 code 9 "Server is busy"; ``down()``/``up()`` stops/restarts the listener.
* ``GET /services/collector/health`` → 200 code 17 "HEC is healthy".
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from aiohttp import web

ROUTES = ("/services/collector/event", "/services/collector", "/services/collector/event/1.0")


def _answer(status: int, text: str, code: int, **extra: Any) -> web.Response:
    return web.json_response({"text": text, "code": code, **extra}, status=status)


class SplunkHecPeer:
    def __init__(self, token: str = "hec-t0ken", port: int = 0) -> None:
        self.token, self.port = token, port
        self.events: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []  # headers and event count of each request
        self._busy = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def busy(self, requests: int) -> None:
        self._busy = requests

    async def _collect(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append({"headers": dict(request.headers), "bytes": len(body)})
        auth = request.headers.get("Authorization", "")
        if not auth:
            return _answer(401, "Token is required", 2)
        scheme, _, token = auth.partition(" ")
        if scheme != "Splunk" or token != self.token:
            return _answer(403, "Invalid token", 4)
        if self._busy > 0:
            self._busy -= 1
            return _answer(503, "Server is busy", 9)
        text = body.decode("utf-8", "replace").strip()
        if not text:
            return _answer(400, "No data", 5)
        decoder, position, number = json.JSONDecoder(), 0, 0
        while position < len(text):
            try:
                event, end = decoder.raw_decode(text, position)
            except ValueError:
                return _answer(400, "Invalid data format", 6, **{"invalid-event-number": number})
            if not isinstance(event, dict) or "event" not in event:
                return _answer(400, "Event field is required", 12, **{"invalid-event-number": number})
            if event["event"] in ("", None, {}):
                return _answer(400, "Event field cannot be blank", 13, **{"invalid-event-number": number})
            with self._lock:
                self.events.append(event)
            number += 1
            position = end
            while position < len(text) and text[position].isspace():
                position += 1
        return _answer(200, "Success", 0)

    async def _health(self, _request: web.Request) -> web.Response:
        return _answer(200, "HEC is healthy", 17)

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 << 20)
        for route in ROUTES:
            app.router.add_post(route, self._collect)
        app.router.add_get("/services/collector/health", self._health)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def _run(self, coro) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def start(self) -> SplunkHecPeer:
        self.thread.start()
        self._run(self._start())
        return self

    def down(self) -> None:
        self._run(self.runner.cleanup())

    def up(self) -> None:
        self._run(self._start())

    def stop(self) -> None:
        if self.runner is not None:
            self._run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def __enter__(self) -> SplunkHecPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
