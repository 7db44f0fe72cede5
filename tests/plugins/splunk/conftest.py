"""Fixtures of the Splunk app's tests: the app as built for installation, a real LogWarden server on loopback
(the test model, HTTP gateway and label store on, a bearer token), and a splunkd stand-in whose credential
store holds the app's settings for that server."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from splunk_app_support import REPO, SESSION_KEY, TOKEN, store_settings
from splunkd_peer import Splunkd

from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer


@pytest.fixture(scope="session")
def splunk_app(tmp_path_factory) -> Path:
    """``plugins/splunk/build.py`` output (splunklib copied from this interpreter's pinned install, so no
    registry is needed; ``make splunk-app`` builds the same with pip)."""
    sys.path.insert(0, str(REPO / "plugins" / "splunk"))
    try:
        import build
    finally:
        sys.path.pop(0)
    return build.build(tmp_path_factory.mktemp("splunk-build"), splunklib="installed", pack=False)


@pytest.fixture(scope="session")
def scorer(model_root, tmp_path_factory):
    """A real LogWarden server with its HTTP gateway and a SQLite label store."""
    d = tmp_path_factory.mktemp("splunk-scorer")
    (d / "tokens").write_text(TOKEN + "\n")
    settings = load_settings(
        None,
        model_path=model_root,
        grpc_port=0,
        http_port=0,
        batch_wait_ms=2,
        label_db=d / "labels.sqlite",
        auth_tokens_file=d / "tokens",
    )
    with BackgroundServer(settings) as bg:
        bg.url = f"http://127.0.0.1:{bg.server.companions[0].port}"
        bg.label_db = d / "labels.sqlite"
        yield bg


@pytest.fixture
def splunkd(scorer):
    with Splunkd(SESSION_KEY) as peer:
        store_settings(peer, scorer.url)
        yield peer


@pytest.fixture
def dispatch_dir(tmp_path) -> str:
    d = tmp_path / "dispatch"
    d.mkdir()
    return str(d)


@pytest.fixture(scope="session")
def command_env() -> dict[str, str]:
    """The environment splunkd gives a command: no project packages on the path (the app brings its own)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
