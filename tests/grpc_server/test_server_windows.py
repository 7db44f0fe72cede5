"""Models whose sessions are count or time windows (BGL, Thunderbird style): in sequence mode the server
cuts each source's events into windows exactly as training did, and its verdicts equal the engine's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import grpc
import pytest
from support import sessions_by_block

from logwarden.core.artifact import store as artifact
from logwarden.core.detect.detector import Detector
from logwarden.core.parsing.formats import get_format
from logwarden.core.parsing.sessions import Event, build_sessions
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer
from logwarden.protos.logwarden.v1 import scoring_pb2 as pb
from logwarden.protos.logwarden.v1 import scoring_pb2_grpc as pbg


def _windowed_copy(model_root: Path, tmp_path: Path, rule: dict) -> Path:
    """The test model with its session rule replaced (the model itself does not care how keys were grouped)."""
    version = artifact.resolve(model_root)
    copy = tmp_path / "windowed" / version.name
    shutil.copytree(version, copy)
    config = json.loads((copy / "config.json").read_text())
    config["sessions"] = {**config["sessions"], **rule}
    (copy / "config.json").write_text(json.dumps(config))
    return copy.parent


def _lines(n: int) -> list[str]:
    """Generated lines of several interleaved sessions, in log order (one host's stream)."""
    lines = [line for block in sessions_by_block(8, seed=4).values() for line in block]
    return sorted(lines)[:n]  # the HDFS header (date, time) sorts lines by time


def _engine(root: Path, lines: list[str], source: str):
    detector = Detector.load(root)
    fmt = get_format(detector.line_format)
    events = []
    for i, line in enumerate(lines):
        record = fmt.parse(line, source)
        record.line_no = i
        events.append(Event(record, detector.parse(record).key))
    windows = build_sessions(events, detector.rule)
    verdicts = detector.score_keys(
        [[e.key for e in w.events] for w in windows],
        lines=[[detector.line(e.record) for e in w.events] for w in windows],
    )
    first: dict[int, object] = {}
    for window, verdict in zip(windows, verdicts, strict=True):
        for event, v in zip(window.events, verdict.events, strict=True):
            first.setdefault(event.record.line_no, v)
    return windows, verdicts, first


def _score(root: Path, lines: list[str], source: str, extra: list[pb.Event] = ()) -> pb.ScoreResponse:
    settings = load_settings(None, model_path=root, grpc_port=0)
    events = [pb.Event(id=str(i), message=line, source=source) for i, line in enumerate(lines)] + list(extra)
    with BackgroundServer(settings) as bg, grpc.insecure_channel(bg.target) as channel:
        return pbg.ScoringServiceStub(channel).Score(pb.ScoreRequest(events=events, mode=pb.SCORING_MODE_SEQUENCE))


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "count", "window_size": 6, "step_size": 3},  # overlapping windows
        {"kind": "time", "window_seconds": 2.0, "step_seconds": 2.0},
    ],
    ids=["count", "time"],
)
def test_sequence_mode_cuts_windows_as_training_did(model_root, tmp_path, rule):
    root = _windowed_copy(model_root, tmp_path, rule)
    lines = _lines(40)
    windows, verdicts, first = _engine(root, lines, "host-1")
    assert len(windows) > 3
    no_time = pb.Event(id="no-time", message="a line with no header at all", source="host-1")
    response = _score(root, lines, "host-1", [no_time] if rule["kind"] == "time" else [])
    assert [s.session_key for s in response.sessions] == [w.key for w in windows]
    for session, verdict in zip(response.sessions, verdicts, strict=True):
        assert session.score == pytest.approx(verdict.score, abs=1e-5)
        assert (session.verdict == pb.VERDICT_ANOMALOUS) == verdict.anomalous
    scored = {r.id: r for r in response.results if r.status == pb.EVENT_STATUS_SCORED}
    assert len(scored) == len(lines)
    for i, v in first.items():
        assert scored[str(i)].rank == v.rank and scored[str(i)].score == pytest.approx(v.score, abs=1e-5)
    invalid = [r for r in response.results if r.status == pb.EVENT_STATUS_INVALID]
    if rule["kind"] == "time":  # a time window needs the event's time: named, and the rest is scored
        assert [(r.id, r.error_field) for r in invalid] == [("no-time", "events[40].timestamp")]
    else:
        assert invalid == []
