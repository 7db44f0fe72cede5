"""Fixtures of the Fluent Bit receiver tests: one live scoring server per module (the session's tiny model)."""

from __future__ import annotations

import pytest

from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer


@pytest.fixture(scope="module")
def scorer(model_root):
    with BackgroundServer(load_settings(None, model_path=model_root, grpc_port=0, http_port=None)) as bg:
        yield bg
