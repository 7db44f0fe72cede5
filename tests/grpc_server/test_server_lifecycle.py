"""Hot reload mid-traffic loses nothing; SIGHUP reloads; SIGTERM drains accepted calls and exits 0."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from logwarden.core.artifact import store as artifact
from logwarden.core.synthetic import generate
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer
from logwarden.protos.logwarden.v1 import model_pb2, model_pb2_grpc
from logwarden.protos.logwarden.v1 import scoring_pb2 as pb
from logwarden.protos.logwarden.v1 import scoring_pb2_grpc as pbg

LINES = generate(n_sessions=8, anomaly_rate=0.0, seed=6).lines
REPO = Path(__file__).resolve().parents[1]


def _copy_root(model_root: Path, dest: Path) -> tuple[Path, str]:
    root = dest / "models"
    shutil.copytree(model_root, root)
    return root, artifact.list_versions(root)[-1]


def _add_version(root: Path, name: str = "v99999999-000000-reload") -> str:
    """A second version: the newest one, copied under a name that sorts last."""
    source = root / artifact.list_versions(root)[-1]
    shutil.copytree(source, root / f".{name}.tmp")
    config = json.loads((root / f".{name}.tmp" / artifact.CONFIG).read_text())
    config["version"] = name
    (root / f".{name}.tmp" / artifact.CONFIG).write_text(json.dumps(config))
    os.replace(root / f".{name}.tmp", root / name)
    return name


def _request(i: int, mode=pb.SCORING_MODE_STREAM) -> pb.ScoreRequest:
    chunk = LINES[(i * 7) % len(LINES) :][:7] or LINES[:7]
    return pb.ScoreRequest(
        events=[pb.Event(id=str(j), message=line, source=f"src{i % 3}") for j, line in enumerate(chunk)], mode=mode
    )


def test_reload_mid_traffic_loses_nothing(model_root, tmp_path):
    root, old = _copy_root(model_root, tmp_path)
    with BackgroundServer(load_settings(None, model_path=root, grpc_port=0, batch_wait_ms=1)) as bg:
        new = _add_version(root)
        reloaded = threading.Event()

        def client(n: int) -> set[str]:
            seen: set[str] = set()
            after = 0
            with grpc.insecure_channel(bg.target) as ch:
                stub = pbg.ScoringServiceStub(ch)
                i = 0
                while after < 3:
                    mode = pb.SCORING_MODE_SEQUENCE if (i + n) % 2 else pb.SCORING_MODE_STREAM
                    request = _request(i + n, mode)
                    response = stub.Score(request)
                    assert [r.id for r in response.results] == [e.id for e in request.events]
                    assert all(r.status == pb.EVENT_STATUS_SCORED for r in response.results)
                    seen.add(response.model_version)
                    after += reloaded.is_set()
                    i += 1
            return seen

        with ThreadPoolExecutor(6) as pool, grpc.insecure_channel(bg.target) as ch:
            futures = [pool.submit(client, n) for n in range(6)]
            stub = model_pb2_grpc.ModelServiceStub(ch)
            reply = stub.ReloadModel(model_pb2.ReloadModelRequest(version=new))
            reloaded.set()
            seen = set().union(*(f.result(timeout=120) for f in futures))
        assert (reply.previous_version, reply.model.version, reply.changed) == (old, new, True)
        assert new in seen and seen <= {old, new}
        with grpc.insecure_channel(bg.target) as ch:
            again = model_pb2_grpc.ModelServiceStub(ch).ReloadModel(model_pb2.ReloadModelRequest())
            assert (again.model.version, again.changed) == (new, False)  # already the newest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _queued(metrics_port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    return float(re.search(r"^logwarden_queue_events (\S+)$", text, re.MULTILINE).group(1))


def _until(condition, what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.02)


def test_sighup_reloads_and_sigterm_drains(model_root, tmp_path):
    root, old = _copy_root(model_root, tmp_path)
    metrics_port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "logwarden.core.cli",
            "serve",
            "--model",
            str(root),
            "--port",
            "0",
            "--metrics-port",
            str(metrics_port),
            "--batch-wait-ms",
            "1000",
            "--shutdown-grace",
            "30",
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    logs: list[dict] = []
    ready = threading.Event()

    def read_logs() -> None:
        for line in proc.stderr:
            if line.startswith("{"):
                logs.append(json.loads(line))
                ready.set() if logs[-1].get("event") == "serving" else None

    threading.Thread(target=read_logs, daemon=True).start()
    try:
        _until(lambda: ready.is_set() or proc.poll() is not None, "the server to start", 120)
        assert proc.poll() is None, "server exited early"
        port = next(e["port"] for e in logs if e.get("event") == "serving")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            models = model_pb2_grpc.ModelServiceStub(ch)
            assert models.GetModelInfo(model_pb2.GetModelInfoRequest()).version == old
            new = _add_version(root)
            proc.send_signal(signal.SIGHUP)
            _until(lambda: models.GetModelInfo(model_pb2.GetModelInfoRequest()).version == new, "the SIGHUP reload")

            stub = pbg.ScoringServiceStub(ch)
            requests = [_request(i, pb.SCORING_MODE_SEQUENCE) for i in range(8)]
            calls = [stub.Score.future(r, timeout=60) for r in requests]
            total = sum(len(r.events) for r in requests)
            _until(lambda: _queued(metrics_port) == total, "every call to be queued")
            proc.send_signal(signal.SIGTERM)  # the calls are accepted and waiting for the batch
            for request, call in zip(requests, calls, strict=True):
                response = call.result()
                assert len(response.results) == len(request.events) and response.model_version == new
                assert all(r.status == pb.EVENT_STATUS_SCORED for r in response.results)
        assert proc.wait(timeout=60) == 0
        events = [e.get("event") for e in logs]
        assert "model reloaded" in events and events[-1] == "stopped"
        assert events.index("model reloaded") < events.index("draining") < events.index("metrics endpoint stopped")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
