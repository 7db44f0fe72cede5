"""Fixtures of the Elasticsearch integration tests: the Elasticsearch stand-in (tests/peers), a real scoring
server on the session's tiny model, and the ES proxy on a background loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from peers.elasticsearch import ElasticsearchPeer

from logwarden.core.synthetic import generate
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer
from logwarden.integrations.elasticsearch.proxy import EsProxy
from logwarden.integrations.elasticsearch.settings import ProxySettings

LINES = generate(n_sessions=40, anomaly_rate=0.0, seed=11).lines


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


@pytest.fixture(scope="module")
def scorer(model_root):
    """A real LogWarden scoring server (gRPC) on the session's model."""
    with BackgroundServer(load_settings(None, model_path=model_root, grpc_port=0, batch_wait_ms=1)) as bg:
        yield bg


@pytest.fixture()
def es():
    with ElasticsearchPeer() as peer:
        yield peer


@pytest.fixture()
def proxy(es, scorer):
    with BackgroundProxy(upstream=es.url, scorer=scorer.target) as bp:
        yield bp
