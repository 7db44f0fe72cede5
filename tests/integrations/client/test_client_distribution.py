"""The client library as its own distribution (``integrations/client/pyproject.toml``): standard library
only, built into a wheel, installed into a Python 3.9 virtualenv (the oldest Python a host such as Splunk
still ships) and run there against a live server — scoring, and failing open when the server is gone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from support import sessions_by_block

from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer

ROOT = Path(__file__).resolve().parents[3]
CLIENT = ROOT / "integrations" / "client"
PYTHON39 = next(  # a real interpreter, not a version manager's shim
    (
        p
        for p in [
            *sorted(Path.home().glob(".pyenv/versions/3.9*/bin/python3.9")),
            Path("/usr/bin/python3.9"),
            Path("/usr/local/bin/python3.9"),
        ]
        if p.exists()
    ),
    None,
)
SCRIPT = """
import json, sys
from logwarden.integrations.client import HttpClient, RetryPolicy
client = HttpClient(sys.argv[1], timeout_s=5, budget_s=10, retry=RetryPolicy(max_attempts=2, initial_backoff_s=0.01))
lines = json.loads(sys.argv[2])
results = client.score([{"id": str(i), "message": m, "source": "py39"} for i, m in enumerate(lines)])
rows = [[r.id, r.status, r.verdict, r.reason] for r in results]
print(json.dumps({"version": sys.version_info[:2], "results": rows}))
"""


def test_the_base_distribution_needs_only_the_standard_library():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert project["dependencies"] == []  # `pip install logwarden` is the HTTP client alone
    assert not any(dep.startswith("torch") for dep in extras["client"])
    assert any(dep.startswith("torch") for dep in extras["engine"])
    client = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert client["dependencies"] == [] and client["requires-python"] == ">=3.9"
    assert client["version"] == project["version"]


@pytest.fixture(scope="module")
def venv39(tmp_path_factory) -> Path:
    if PYTHON39 is None:
        pytest.skip("no Python 3.9 on this machine")
    work = tmp_path_factory.mktemp("client-dist")
    shutil.copytree(CLIENT, work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-build-isolation", "--no-deps", "-w", str(work / "dist"), str(work / "src")],
        check=True,
        capture_output=True,
    )
    (wheel,) = (work / "dist").glob("logwarden_client-*.whl")
    subprocess.run([PYTHON39, "-m", "venv", str(work / "venv")], check=True, capture_output=True)
    python = work / "venv" / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    return python


def _run(python: Path, url: str, lines: list[str]) -> dict:
    out = subprocess.run(
        [str(python), "-c", SCRIPT, url, json.dumps(lines)], check=True, capture_output=True, text=True, timeout=120
    )
    return json.loads(out.stdout)


def test_the_client_wheel_scores_and_fails_open_under_python_39(venv39, model_root):
    lines = next(iter(sessions_by_block(5, seed=7, anomaly_rate=0.0).values()))
    settings = load_settings(None, model_path=model_root, grpc_port=0, http_port=0)
    with BackgroundServer(settings) as bg:
        url = f"http://127.0.0.1:{bg.server.companions[0].port}"
        scored = _run(venv39, url, lines)
    assert scored["version"] == [3, 9]
    assert [r[0] for r in scored["results"]] == [str(i) for i in range(len(lines))]
    assert {r[1] for r in scored["results"]} == {"scored"} and {r[2] for r in scored["results"]} <= {
        "normal",
        "anomalous",
    }
    down = _run(venv39, url, lines[:3])  # the server is gone: every event back, unscored, with the reason
    assert [r[1] for r in down["results"]] == ["unscored"] * 3
    assert all(r[3].startswith("scorer unavailable") for r in down["results"])
