"""Fixtures of the Elasticsearch integration tests: the Elasticsearch stand-in (tests/peers), a real scoring
server on the session's tiny model (in process, or its own process), and the ES proxy on a background loop."""

from __future__ import annotations

import pytest
from es_support import BackgroundProxy, LogwardenProcess, free_port
from peers.elasticsearch import ElasticsearchPeer

from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer


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


@pytest.fixture()
def scorer_process(model_root):
    """A scoring server in its own process on a fixed port (so it can be killed and started again there)."""
    port = free_port()
    process = LogwardenProcess(
        ["serve", "--model", str(model_root), "--host", "127.0.0.1", "--port", str(port), "--batch-wait-ms", "1"],
        "serving",
    )
    process.target = f"127.0.0.1:{port}"
    yield process
    process.kill()
