"""``logwarden labels export`` and ``logwarden retrain`` end to end on the generated corpus."""

from __future__ import annotations

import json
import re
import shutil

from logwarden.core.artifact import store as artifact
from logwarden.core.cli import main
from logwarden.core.labels import Label, SqliteLabelStore
from logwarden.core.labels.export import read_labels
from logwarden.core.labels.retrain import LabelUse, split_labels


def _label(session: str, verdict: str = "normal", **kw) -> Label:
    base = {"source": "hdfs-node-1", "analyst": "alice", "predicted": "anomaly"}
    return Label(target="session", verdict=verdict, session_key=session, **{**base, **kw})


def test_export_to_file_with_filters(tmp_path, capsys):
    db = tmp_path / "labels.db"
    with SqliteLabelStore(db) as store:
        store.add_many(
            [_label("a", created_at="2026-01-01T00:00:00Z"), _label("b", source="x"), _label("c", comment="=1+1")]
        )
    out = tmp_path / "labels.csv"
    assert main(["labels", "export", "--db", str(db), "--format", "csv", "--output", str(out)]) == 0
    with open(out, newline="", encoding="utf-8") as handle:
        assert [lb.comment for lb in read_labels(handle, "csv")] == ["", "", "=1+1"]
    assert main(["labels", "export", "--db", str(db), "--source", "hdfs-node-1", "--since", "2026-06-01"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["session_key"] for line in captured.out.splitlines()] == ["c"]
    assert "exported 1 labels" in captured.err


def test_export_errors_are_clear(tmp_path, capsys):
    assert main(["labels", "export", "--db", str(tmp_path / "missing.db")]) == 2
    assert "label database not found" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()  # an export never creates a store
    db = tmp_path / "labels.db"
    SqliteLabelStore(db).close()
    assert main(["labels", "export", "--db", str(db), "--since", "last week"]) == 2
    assert "'created_at'" in capsys.readouterr().err


def test_retrain_folds_a_false_positive_into_a_new_version(corpus_dir, model_root, tmp_path, capsys):
    from logwarden.core.detect.detector import Detector
    from logwarden.core.parsing.formats import get_format
    from logwarden.core.parsing.reader import read_records
    from logwarden.core.parsing.sessions import build_sessions

    root = tmp_path / "models"
    shutil.copytree(model_root, root)  # the shared fixture model stays untouched
    old = Detector.load(root, backend="torch")
    kinds = dict(line.split(",") for line in (corpus_dir / "kinds.csv").read_text().split())
    records = read_records([str(corpus_dir / "test.log")], get_format(old.line_format))
    sessions = {s.key: s for s in build_sessions([old.parse(r) for r in records], old.rule)}
    block = next(b for b, kind in kinds.items() if kind == "missing_step")
    keys = [e.key for e in sessions[block].events]
    assert old.score_keys([keys])[0].anomalous  # the alert the analyst disagrees with

    db = tmp_path / "labels.db"
    with SqliteLabelStore(db) as store:
        store.add(_label(block, keys=keys, model_version=old.version, comment="known maintenance pattern"))
        store.add(_label("blk_not_in_the_data", keys=["1", "999999"]))  # key unknown to the parser
        attack = re.search(r"blk_-?\d+", (corpus_dir / "train.log").read_text()).group(0)
        store.add(_label(attack, verdict="anomaly", predicted="normal"))  # hid in the "normal" logs
    assert (
        main(
            [
                "retrain",
                "--model",
                str(root),
                "--db",
                str(db),
                "--data",
                str(corpus_dir / "train.log"),
                "--epochs",
                "4",
                "--no-onnx",
                "--quiet",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    assert artifact.list_versions(root) == sorted([old.version, summary["version"]])
    assert summary["version"] != old.version and summary["parent_version"] == old.version
    config = artifact.read_config(root / summary["version"]).config
    assert config.labels == {
        "count": 3,
        "max_id": 3,
        "false_positive_sessions": 1,
        "skipped_unknown_keys": 1,
        "anomalous_sessions_dropped": 1,
        "fp_weight": 5,
    }
    fingerprint = config.fingerprint
    assert fingerprint.train_sessions + fingerprint.val_sessions == 300 - 1 + 5  # minus attack, plus FP × 5
    assert config.parent_version == old.version
    assert config.line_format == old.line_format and config.sessions == old.config.sessions
    assert config.model == old.config.model and config.train.epochs == 4
    new = Detector.load(root, backend="torch")  # the newest version
    assert new.version == summary["version"]
    assert not new.score_keys([keys])[0].anomalous


def test_split_labels_uses_the_latest_label_per_session():
    labels = [
        _label("s1", keys=["1", "2"]),
        _label("s2", verdict="anomaly"),
        _label("s1", verdict="anomaly"),
        _label("s3", keys=["1", "3"], id=9),
        _label("s4"),
    ]  # s4: no key sequence, nothing to learn
    use = LabelUse()
    sequences, drop = split_labels(labels, {"1", "2", "3"}, use)
    assert sequences == [("1", "3")] and drop == {"s1", "s2"}
    assert (use.count, use.max_id, use.false_positive_sessions, use.skipped_unknown_keys) == (5, 9, 1, 0)


def test_retrain_refuses_bad_input_before_training(corpus_dir, model_root, tmp_path, capsys):
    db = tmp_path / "labels.db"
    base = ["retrain", "--model", str(model_root), "--data", str(corpus_dir / "train.log")]
    assert main([*base, "--db", str(db)]) == 2
    assert "label database not found" in capsys.readouterr().err
    SqliteLabelStore(db).close()
    assert main([*base, "--db", str(db), "--format", "bgl"]) == 2
    assert "was trained on format" in capsys.readouterr().err
    assert main(["retrain", "--model", str(model_root), "--db", str(db), "--data", str(tmp_path / "nope.log")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main([*base, "--db", str(db), "--fp-weight", "0"]) == 2
    assert "fp_weight" in capsys.readouterr().err
    assert len(artifact.list_versions(model_root)) == 1  # nothing was written
