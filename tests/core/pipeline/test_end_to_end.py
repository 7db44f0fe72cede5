"""End to end: train on generated normal logs, then find injected anomalies with both backends."""

from __future__ import annotations

import dataclasses
import json

from support import sessions_by_block

from logwarden.core.cli import main
from logwarden.core.detect.combinations import RARE_COMBINATION
from logwarden.core.detect.detector import NEW_TEMPLATE, Detector
from logwarden.core.detect.reasons import ReasonCode
from logwarden.core.parsing.formats import get_format
from logwarden.core.parsing.reader import read_records
from logwarden.core.pipeline.fit import normal_windows, split_indices


def _score(corpus_dir, model_root, tmp_path, backend: str) -> list[dict]:
    out = tmp_path / f"scores-{backend}.jsonl"
    code = main(
        ["score", str(corpus_dir / "test.log"), "--model", str(model_root), "--backend", backend, "-o", str(out)]
    )
    assert code == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def _kinds(corpus_dir) -> dict[str, str]:
    return dict(line.split(",") for line in (corpus_dir / "kinds.csv").read_text().split())


def test_injected_anomalies_found_and_normal_sessions_pass(corpus_dir, model_root, tmp_path):
    results = _score(corpus_dir, model_root, tmp_path, "onnx")
    sessions = {r["session"]: r for r in results if r["type"] == "session"}
    kinds = _kinds(corpus_dir)
    assert len(sessions) == 240 and len(kinds) > 30
    missed = {b: k for b, k in kinds.items() if not sessions[b]["anomalous"]}
    assert missed == {}
    false_alarms = [s for b, s in sessions.items() if b not in kinds and s["anomalous"]]
    assert false_alarms == []
    assert {kinds[b] for b in kinds} == {"new_template", "out_of_order", "missing_step"}
    new = [r for r in results if r["type"] == "event" and r.get("reason_code") == ReasonCode.NEW_TEMPLATE]
    assert new and all(kinds[r["session"]] == "new_template" for r in new)
    assert all(r["reason"].startswith(NEW_TEMPLATE) and "closest known template" in r["reason"] for r in new)
    # a block never reported to the name node has a set of templates no normal block has
    missing = [sessions[b] for b, k in kinds.items() if k == "missing_step"]
    assert missing and all(
        s["combination"].startswith(RARE_COMBINATION) and "without" in s["combination"] for s in missing
    )
    assert not any("combination" in s for b, s in sessions.items() if b not in kinds)


def test_every_anomalous_verdict_carries_its_explanation(corpus_dir, model_root, tmp_path):
    results = _score(corpus_dir, model_root, tmp_path, "onnx")
    flagged = [r for r in results if r["type"] == "event" and r["anomalous"]]
    assert flagged
    for r in flagged:
        assert r["reason"] and r["score"] > 0.5
        assert len(r["expected"]) == 3 and all(0 <= e["probability"] <= 1 for e in r["expected"])
        assert r["template"]
    new = [r for r in flagged if r["reason_code"] == ReasonCode.NEW_TEMPLATE]
    assert new and all("<*>" in r["template"] and r["template_id"] is None for r in new)
    assert all(r["novelty"]["novelty"] > 0.5 and r["novelty"]["closest_template"] for r in new)
    normal = [r for r in results if r["type"] == "event" and not r["anomalous"]]
    assert normal and all(r["score"] <= 0.5 and "reason" not in r for r in normal)


def test_onnx_and_torch_give_the_same_verdicts(corpus_dir, model_root, tmp_path):
    onnx = _score(corpus_dir, model_root, tmp_path, "onnx")
    torch = _score(corpus_dir, model_root, tmp_path, "torch")
    assert len(onnx) == len(torch)
    for a, b in zip(onnx, torch, strict=True):
        assert (a["type"], a["session"], a["anomalous"]) == (b["type"], b["session"], b["anomalous"])
        if a["type"] == "event":
            assert a["rank"] == b["rank"] and abs(a["score"] - b["score"]) < 1e-4


def test_evaluate_reports_metrics_and_writes_html(corpus_dir, model_root, tmp_path, capsys):
    report = tmp_path / "report"
    code = main(
        [
            "evaluate",
            str(corpus_dir / "test.log"),
            "--model",
            str(model_root),
            "--labels",
            str(corpus_dir / "test_labels.csv"),
            "--report",
            str(report),
        ]
    )
    assert code == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["f1"] == 1.0 and metrics["roc_auc"] == 1.0
    html = (report / "report.html").read_text()
    assert "ROC" in html and "data:image/png;base64" in html
    assert json.loads((report / "report.json").read_text())


def test_reported_validation_fpr_is_what_the_saved_model_does(corpus_dir, model_root):
    """The held-out normal sessions, rebuilt from the training log and scored through the saved artifact
    (onnxruntime), are flagged at exactly the rate training reported."""
    detector = Detector.load(model_root)
    cfg = detector.config
    events = [detector.parse(r) for r in read_records([str(corpus_dir / "train.log")], get_format(cfg.line_format))]
    normal, lines, _, _ = normal_windows(events, detector.rule, None, detector.novelty.level_field)
    _, val = split_indices(len(normal), cfg.val_fraction, cfg.train.seed, cfg.val_split == "chronological")
    assert cfg.val_split == "random" and len(val) == cfg.fingerprint.val_sessions
    verdicts = detector.score_keys([normal[i] for i in val], lines=[lines[i] for i in val])
    assert sum(v.anomalous for v in verdicts) / len(verdicts) == cfg.calibration.validation_fpr


def test_a_session_cut_short_is_flagged_as_ended_early_whatever_k(model_root):
    """The end is judged by probability (could the session end here?), not by K: no K passes a cut."""
    detector = Detector.load(model_root)
    fmt = get_format(detector.line_format)
    whole = [
        [detector.parse(fmt.parse(line)).key for line in lines]
        for lines in sessions_by_block(40, seed=5, anomaly_rate=0.0).values()
    ]
    assert not any(v.anomalous for v in detector.score_keys(whole))
    cut = [keys[:2] for keys in whole]
    verdicts = detector.score_keys(cut, k=len(detector.vocab))  # every next key accepted
    assert all(v.anomalous and v.end.anomalous and v.reason_code == ReasonCode.ENDED_EARLY for v in verdicts)
    assert all(v.end.score > 0.5 and "p(end)" in v.reason for v in verdicts)
    # an open session (stream mode) has no end yet: the same events pass
    assert not any(v.anomalous for v in detector.score_keys(cut, complete=False))


def test_models_saved_before_end_thresholds_judge_the_end_by_k(model_root):
    detector = Detector.load(model_root)
    fmt = get_format(detector.line_format)
    detector.calibration = dataclasses.replace(detector.calibration, end_surprisal=None)
    detector.combinations = None  # nor the combination check, which came later still
    cut = [
        [detector.parse(fmt.parse(line)).key for line in lines][:2]
        for lines in sessions_by_block(10, seed=5, anomaly_rate=0.0).values()
    ]
    assert not any(v.anomalous for v in detector.score_keys(cut, k=len(detector.vocab)))
    flagged = [v for v in detector.score_keys(cut, k=1) if v.end.anomalous]
    assert flagged and all(v.end.reason_code == ReasonCode.UNEXPECTED_END and "rank" in v.end.reason for v in flagged)
