"""Labels over gRPC against a live server with a SQLite label store: durable across restarts, per-source
recalibration of K at once (and only for that source), per-label refusals, thresholds follow reloads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import grpc
import pytest
from support import sessions_by_block

from logwarden.core.detect.detector import Detector
from logwarden.core.detect.reasons import K_INDEPENDENT
from logwarden.core.labels import KBounds, Policy, SqliteLabelStore
from logwarden.core.parsing.formats import get_format
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer
from logwarden.protos.logwarden.v1 import labels_pb2, labels_pb2_grpc, model_pb2, model_pb2_grpc
from logwarden.protos.logwarden.v1 import scoring_pb2 as pb
from logwarden.protos.logwarden.v1 import scoring_pb2_grpc as pbg

FP_PER_STEP = Policy().fp_per_step  # the server runs the default policy


def _sessions(seed: int) -> dict[str, list[str]]:
    return sessions_by_block(60, seed=seed)


@pytest.fixture(scope="module")
def k_model(model_root, tmp_path_factory) -> Path:
    """The test model without the combination check (as ``train --no-combinations`` makes it): its
    sequence anomalies are judged by K alone, which is what labels recalibrate."""
    root = tmp_path_factory.mktemp("k-model") / "hdfs-demo"
    shutil.copytree(model_root, root)
    for config in root.glob("v*/config.json"):
        cfg = json.loads(config.read_text())
        config.write_text(json.dumps({**cfg, "combinations": None, "check_combinations": False}))
    return root


@pytest.fixture(scope="module")
def target(k_model):
    """A session the model flags only for sequence reasons (no new template), all of them at ranks a
    raised K covers: (block, lines, keys, reason, the K that passes it), the smallest such K."""
    detector = Detector.load(k_model)
    fmt = get_format(detector.line_format)
    base = detector.calibration.k
    max_k = KBounds.around(base, len(detector.vocab)).max_k
    found = []
    for seed in (2, 11, 23):
        sessions = _sessions(seed)
        keys = [[detector.parse(fmt.parse(line)).key for line in lines] for lines in sessions.values()]
        for (block, lines), seq, verdict in zip(sessions.items(), keys, detector.score_keys(keys), strict=True):
            flagged = [e for e in (*verdict.events, *([verdict.end] if verdict.end else ())) if e.anomalous]
            if not flagged or None in seq or any(e.reason_code in K_INDEPENDENT for e in flagged):
                continue
            need = max(e.rank for e in flagged)
            if need <= max_k and not detector.score_keys([seq], k=need)[0].anomalous:
                found.append((need, block, lines, seq, verdict.reason))
    assert found, "no generated session is flagged only at ranks within the K bounds"
    need, block, lines, seq, reason = min(found, key=lambda f: (f[0], f[1]))
    assert need > base
    return {"block": block, "lines": lines, "keys": seq, "reason": reason, "k": need, "base_k": base}


def _settings(model_root: Path, db: Path):
    return load_settings(None, model_path=model_root, grpc_port=0, batch_wait_ms=2, label_db=db)


def _score(target_, bg: BackgroundServer, sources=("hostA", "hostB")) -> dict[str, bool]:
    """Sequence-mode verdict of the target session as seen from each source."""
    events = [
        pb.Event(id=f"{s}#{i}", message=line, source=s) for s in sources for i, line in enumerate(target_["lines"])
    ]
    with grpc.insecure_channel(bg.target) as channel:
        response = pbg.ScoringServiceStub(channel).Score(pb.ScoreRequest(events=events, mode=pb.SCORING_MODE_SEQUENCE))
    assert all(r.status == pb.EVENT_STATUS_SCORED for r in response.results)
    assert {s.session_key for s in response.sessions} == {target_["block"]}
    return {s.source: s.verdict == pb.VERDICT_ANOMALOUS for s in response.sessions}


def _submit(bg: BackgroundServer, labels: list[labels_pb2.Label]) -> list[labels_pb2.LabelResult]:
    with grpc.insecure_channel(bg.target) as channel:
        stub = labels_pb2_grpc.LabelServiceStub(channel)
        return list(stub.SubmitLabels(labels_pb2.SubmitLabelsRequest(labels=labels)).results)


def _false_positives(target_, n: int, source: str = "hostA") -> list[labels_pb2.Label]:
    """``n`` analysts' "normal" verdicts on flagged sessions of ``source`` (the target among them)."""
    sessions = [target_["block"], *(f"blk_fp{i}" for i in range(n - 1))]
    return [
        labels_pb2.Label(
            id=f"fp{i}",
            target=labels_pb2.LABEL_TARGET_SESSION,
            value=labels_pb2.LABEL_VALUE_NORMAL,
            predicted=labels_pb2.LABEL_VALUE_ANOMALY,
            reason=target_["reason"],
            source=source,
            session_key=session,
            keys=target_["keys"],
            analyst="ann",
            comment="nightly batch job",
        )
        for i, session in enumerate(sessions)
    ]


def test_labels_recalibrate_their_source_at_once_and_survive_a_restart(k_model, target, tmp_path):
    db = tmp_path / "labels.sqlite"
    n = (target["k"] - target["base_k"]) * FP_PER_STEP
    with BackgroundServer(_settings(k_model, db)) as bg:
        version = bg.server.holder.current.version
        assert _score(target, bg) == {"hostA": True, "hostB": True}
        results = _submit(bg, _false_positives(target, n))
        assert all(r.accepted for r in results), [r.error for r in results]
        assert len({r.label_id for r in results}) == n
        # the very next call: hostA's K moved, hostB keeps the calibrated K
        assert _score(target, bg) == {"hostA": False, "hostB": True}
        sink = bg.server.label_sink
        assert sink.k_for_source("hostA") == target["k"] and sink.k_for_source("hostB") is None

    with BackgroundServer(_settings(k_model, db)) as bg:  # a new process' view: rebuilt from the file
        assert bg.server.label_sink.store.count("hostA") == n
        assert bg.server.label_sink.k_for_source("hostA") == target["k"]
        assert _score(target, bg) == {"hostA": False, "hostB": True}

    with SqliteLabelStore(db, create=False) as store:
        stored = store.query(source="hostA", limit=100, newest_first=False)
    assert [s.id for s in stored] == [int(r.label_id) for r in results]
    first = stored[0]
    assert (first.target, first.verdict, first.predicted, first.session_key) == (
        "session",
        "normal",
        "anomaly",
        target["block"],
    )
    assert first.keys == tuple(target["keys"]) and first.reason == target["reason"]
    assert first.analyst == "ann" and first.comment == "nightly batch job" and first.created_at
    assert first.model_version == version  # absent on the wire: the served version


def test_invalid_labels_are_refused_by_field_and_valid_ones_stored(model_root, tmp_path):
    db = tmp_path / "labels.sqlite"
    good = {
        "target": labels_pb2.LABEL_TARGET_SESSION,
        "value": labels_pb2.LABEL_VALUE_NORMAL,
        "source": "hostA",
        "session_key": "blk_1",
        "analyst": "ann",
    }
    labels = [
        labels_pb2.Label(id="ok-session", **good, keys=["1", "2", "3"], predicted=labels_pb2.LABEL_VALUE_ANOMALY),
        labels_pb2.Label(id="bad-keys", **good, keys=["1", "two words"]),
        labels_pb2.Label(id="no-analyst", **{**good, "analyst": ""}),
        labels_pb2.Label(id="no-source", **{**good, "source": ""}),
        labels_pb2.Label(id="bad-reason", **good, reason="line one\nline two"),
        labels_pb2.Label(id="bad-predicted", **good, predicted=7),
        labels_pb2.Label(id="bad-value", **{**good, "value": labels_pb2.LABEL_VALUE_UNSPECIFIED}),
        labels_pb2.Label(
            id="ok-event",
            target=labels_pb2.LABEL_TARGET_EVENT,
            value=labels_pb2.LABEL_VALUE_ANOMALY,
            predicted=labels_pb2.LABEL_VALUE_NORMAL,
            source="hostB",
            template_id="7",
            event_id="e9",
            analyst="bob",
        ),
    ]
    with BackgroundServer(_settings(model_root, db)) as bg:
        results = _submit(bg, labels)
        assert [r.id for r in results] == [label.id for label in labels]
        refused = {r.id: r.error_field for r in results if not r.accepted}
        assert refused == {
            "bad-keys": "labels[1].keys",
            "no-analyst": "labels[2].analyst",
            "no-source": "labels[3].source",
            "bad-reason": "labels[4].reason",
            "bad-predicted": "labels[5].predicted",
            "bad-value": "labels[6].value",
        }
        assert all(r.error.startswith(r.error_field) for r in results if not r.accepted)
        accepted = [r for r in results if r.accepted]
        assert [r.id for r in accepted] == ["ok-session", "ok-event"] and all(r.label_id for r in accepted)
        # a whole-request problem (here: no labels at all) is the call's status
        with grpc.insecure_channel(bg.target) as channel, pytest.raises(grpc.RpcError) as err:
            labels_pb2_grpc.LabelServiceStub(channel).SubmitLabels(labels_pb2.SubmitLabelsRequest())
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    with SqliteLabelStore(db, create=False) as store:
        stored = store.query(limit=100, newest_first=False)
    assert [str(s.id) for s in stored] == [r.label_id for r in accepted]
    assert stored[0].keys == ("1", "2", "3") and stored[0].predicted == "anomaly"
    assert (stored[1].target, stored[1].template_id, stored[1].event_id, stored[1].missed) == ("event", "7", "e9", True)


def _add_version(root: Path, name: str) -> str:
    source = sorted(p for p in root.iterdir() if p.is_dir())[-1]
    shutil.copytree(source, root / name)
    config = json.loads((root / name / "config.json").read_text())
    config["version"] = name
    (root / name / "config.json").write_text(json.dumps(config))
    return name


def test_a_reload_recalibrates_for_the_new_version(k_model, target, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(k_model, root)
    n = (target["k"] - target["base_k"]) * FP_PER_STEP
    with BackgroundServer(_settings(root, tmp_path / "labels.sqlite")) as bg:
        assert all(r.accepted for r in _submit(bg, _false_positives(target, n)))
        assert _score(target, bg, ("hostA",)) == {"hostA": False}
        new = _add_version(root, "v99999999-000000-labels")
        with grpc.insecure_channel(bg.target) as channel:
            reply = model_pb2_grpc.ModelServiceStub(channel).ReloadModel(model_pb2.ReloadModelRequest(version=new))
        assert reply.changed and reply.model.version == new
        # labels on the old version no longer move K: the new model starts from its calibrated K
        sink = bg.server.label_sink
        assert sink.thresholds.model_version == new and sink.k_for_source("hostA") is None
        assert _score(target, bg, ("hostA",)) == {"hostA": True}
        assert all(r.accepted for r in _submit(bg, _false_positives(target, n)))  # on the new version
        assert sink.k_for_source("hostA") == target["k"]
        assert _score(target, bg, ("hostA",)) == {"hostA": False}
