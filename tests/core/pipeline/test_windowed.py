"""Windowed logs without session ids (generated BGL-like syslog with drifting benign templates and faults):
honest calibration, templates the model does not know judged by their text, the chronological split, threads,
and the warnings for degenerate runs. Tiny models, few epochs: behaviour, not accuracy figures (those are
``benchmarks/windowed.py``'s)."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from logwarden.core.cli import main
from logwarden.core.detect.detector import Detector
from logwarden.core.detect.reasons import ReasonCode
from logwarden.core.parsing.formats import get_format
from logwarden.core.parsing.reader import read_records
from logwarden.core.pipeline.fit import normal_windows, split_indices
from logwarden.core.synthetic_syslog import generate

TINY = ["--layers", "1", "--heads", "2", "--embd", "32", "--max-len", "64", "--quiet", "--threads", "1"]
LINE = "- {t} 2005.06.04 R00-M0-N1-C:J03-U11 2005-06-04-12.00.00.000000 R00-M0-N1-C:J03-U11 RAS {c} {lvl} {text}"


def cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def syslog(tmp_path_factory) -> dict:
    """A generated BGL-like log split in time, and a tiny model trained on its first 80 % (60 s windows)."""
    root = tmp_path_factory.mktemp("syslog")
    corpus = generate("bgl", hours=16, nodes=8, faults_per_hour=3, seed=11)
    (root / "all.log").write_text("\n".join(corpus.lines) + "\n")
    code, out, _ = cli(
        [
            "split",
            str(root / "all.log"),
            "--format",
            "bgl",
            "--train-out",
            str(root / "train.log"),
            "--test-out",
            str(root / "test.log"),
        ]
    )
    assert code == 0
    cut = json.loads(out)
    code, out, err = cli(
        ["train", str(root / "train.log"), "--format", "bgl", "--out", str(root / "model"), "--epochs", "3", *TINY]
    )
    assert code == 0, err
    return {"root": root, "cut": cut, "summary": json.loads(out), "stderr": err}


def line(text: str, level: str = "INFO", component: str = "KERNEL", t: int = 1117900000) -> str:
    return LINE.format(t=t, c=component, lvl=level, text=text)


def test_reported_validation_fpr_is_what_the_saved_model_does(syslog):
    """Rebuild the validation windows from the training log and score them through the saved artifact
    (onnxruntime): the share flagged is exactly the false-positive rate training reported."""
    detector = Detector.load(syslog["root"] / "model")
    cfg = detector.config
    records = read_records([str(syslog["root"] / "train.log")], get_format(cfg.line_format))
    events = [detector.parse(r) for r in records]
    normal, lines, _, _ = normal_windows(events, detector.rule, None, detector.novelty.level_field)
    _, val = split_indices(len(normal), cfg.val_fraction, cfg.train.seed, cfg.val_split == "chronological")
    assert cfg.val_split == "chronological" and len(val) == cfg.fingerprint.val_sessions
    verdicts = detector.score_keys([normal[i] for i in val], lines=[lines[i] for i in val])
    measured = float(np.mean([v.anomalous for v in verdicts]))
    assert measured == cfg.calibration.validation_fpr == syslog["summary"]["validation_fpr"]
    # the parts add up: the summary shows every check's share and the vocabulary beside K
    summary = syslog["summary"]
    assert summary["vocabulary"] == len(detector.vocab.keys) < summary["templates"]
    assert summary["k_effective"] <= summary["k_candidates"] == summary["vocabulary"] + 1
    assert summary["novelty_threshold"] >= 0.5 and summary["end_surprisal"] is None  # windows have no end


def test_a_benign_variant_scores_low_and_names_its_closest_template_a_fatal_one_scores_high(syslog):
    detector = Detector.load(syslog["root"] / "model")
    fmt = get_format(detector.line_format)
    records = [
        fmt.parse(line("instruction cache parity error corrected")),
        fmt.parse(line("instruction cache parity error detected and corrected")),
        fmt.parse(line("kernel panic - not syncing: fatal machine check", level="FATAL")),
    ]
    keys = [detector.parse(r).key for r in records]
    assert keys[0] is not None and keys[1] is None and keys[2] is None
    (verdict,) = detector.score_keys([keys], lines=[[detector.line(r) for r in records]])
    benign, fatal = verdict.events[1], verdict.events[2]
    assert not benign.anomalous and benign.score < 0.5
    assert benign.novelty["closest_template"] == "instruction cache parity error corrected"
    assert benign.novelty["added_words"] == ["and", "detected"]
    assert fatal.anomalous and fatal.score > 0.75 and fatal.reason_code == ReasonCode.NEW_TEMPLATE
    assert "level FATAL" in fatal.reason and "closest known template" in fatal.reason
    assert verdict.anomalous and verdict.reason_code == ReasonCode.NEW_TEMPLATE
    # 'always' (every unknown template an anomaly) remains a setting: a threshold of None
    detector.calibration.novelty_threshold = None
    (always,) = detector.score_keys([keys], lines=[[detector.line(r) for r in records]])
    assert always.events[1].anomalous and always.events[1].score == 1.0


def test_a_burst_of_a_known_message_is_an_unusual_count(syslog):
    detector = Detector.load(syslog["root"] / "model")
    fmt = get_format(detector.line_format)
    burst = [fmt.parse(line("Node card is not fully functional", "WARNING", "DISCOVERY")) for _ in range(40)]
    keys = [detector.parse(r).key for r in burst]
    assert None not in keys
    (verdict,) = detector.score_keys([keys], lines=[[detector.line(r) for r in burst]])
    assert verdict.anomalous and verdict.reason_code == ReasonCode.UNUSUAL_COUNT
    flagged = [e for e in verdict.events if e.reason_code == ReasonCode.UNUSUAL_COUNT]
    assert len(flagged) == 1 and "'Node card is not fully functional' 40 times" in flagged[0].reason


def test_windows_reasons_name_the_line_and_template_and_scores_are_continuous(syslog):
    out = syslog["root"] / "scores.jsonl"
    code, _, _ = cli(
        [
            "score",
            str(syslog["root"] / "test.log"),
            "--model",
            str(syslog["root"] / "model"),
            "-o",
            str(out),
            "--events",
            "anomalous",
            "--threads",
            "1",
        ]
    )
    assert code == 0
    results = [json.loads(x) for x in out.read_text().splitlines()]
    sessions = [r for r in results if r["type"] == "session"]
    flagged = [s for s in sessions if s["anomalous"] and s.get("first_anomalous_line")]
    assert flagged
    for s in flagged:
        assert s["reason"].startswith(f"line {s['first_anomalous_line']} '{s['anomalous_template']}': ")
    assert len({round(s["score"], 3) for s in sessions}) > 20  # not just 0.5 and 1.0


def test_evaluate_from_the_cut_matches_the_test_part(syslog):
    root, cut = syslog["root"], syslog["cut"]
    code, whole, err = cli(
        [
            "evaluate",
            str(root / "all.log"),
            "--model",
            str(root / "model"),
            "--from",
            cut["cut_iso"],
            "--report",
            str(root / "r1"),
        ]
    )
    assert code == 0, err
    code, part, _ = cli(
        ["evaluate", str(root / "test.log"), "--model", str(root / "model"), "--report", str(root / "r2")]
    )
    assert code == 0
    first, second = json.loads(whole.splitlines()[-1]), json.loads(part.splitlines()[-1])
    assert first == second and first["n_anomalous"] > 0
    assert "false positives, by the template" in part or "no false positives" in part


def test_split_keeps_every_line_in_order(syslog, tmp_path):
    root, cut = syslog["root"], syslog["cut"]
    original = (root / "all.log").read_text().splitlines()
    train, test = (root / "train.log").read_text().splitlines(), (root / "test.log").read_text().splitlines()
    assert train + test == original and cut["train"] == len(train) and cut["test"] == len(test)
    assert len(train) == round(0.8 * len(original)) or abs(len(train) - 0.8 * len(original)) < 10
    assert all(int(x.split()[1]) < cut["cut"] <= int(y.split()[1]) for x, y in [(train[-1], test[0])])
    code, out, _ = cli(
        [
            "split",
            str(root / "all.log"),
            "--format",
            "bgl",
            "--at",
            "1117880000",
            "--train-out",
            str(tmp_path / "a"),
            "--test-out",
            str(tmp_path / "b"),
        ]
    )
    assert code == 0 and json.loads(out)["cut"] == 1117880000.0
    code, _, err = cli(
        ["split", "-", "--format", "bgl", "--train-out", str(tmp_path / "a"), "--test-out", str(tmp_path / "b")]
    )
    assert code == 2 and "--at" in err
    code, _, err = cli(
        ["train", str(root / "train.log"), "--format", "bgl", "--out", str(tmp_path / "m"), "--until", "yesterday"]
    )
    assert code == 2 and "cannot read the time 'yesterday'" in err


def test_threads_reach_torch_and_onnxruntime(syslog):
    import torch

    before = torch.get_num_threads()
    try:
        detector = Detector.load(syslog["root"] / "model", threads=1)
        assert detector.backend.session.get_session_options().intra_op_num_threads == 1
        Detector.load(syslog["root"] / "model", backend="torch", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_k_stays_below_the_vocabulary_when_the_order_tells_faults_apart(tmp_path):
    """Only ordered episodes, no random chatter, faults that are known templates in a wrong order: K is
    chosen below the vocabulary (the next-template check is on) and catches faults by their order."""
    corpus = generate("bgl", hours=96, nodes=8, faults_per_hour=1, kinds=("sequence",), chatter=False, seed=5)
    cut = round(len(corpus.lines) * 0.8)
    (tmp_path / "train.log").write_text("\n".join(corpus.lines[:cut]) + "\n")
    (tmp_path / "test.log").write_text("\n".join(corpus.lines[cut:]) + "\n")
    code, out, err = cli(
        [
            "train",
            str(tmp_path / "train.log"),
            "--format",
            "bgl",
            "--out",
            str(tmp_path / "m"),
            "--count-window",
            "10",
            "--window-by",
            "Node",
            "--epochs",
            "8",
            "--target-fpr",
            "0.02",
            *TINY,
        ]
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["k"] < summary["vocabulary"] and "k_covers_vocabulary" not in summary["notes"]
    code, out, _ = cli(
        ["evaluate", str(tmp_path / "test.log"), "--model", str(tmp_path / "m"), "--report", str(tmp_path / "r")]
    )
    metrics = json.loads(out.splitlines()[-1])
    assert metrics["tp"] >= metrics["n_anomalous"] / 3 and metrics["roc_auc"] > 0.8
    assert "unexpected_template" in out


def test_degenerate_runs_are_warned_about(syslog, tmp_path):
    lines = (syslog["root"] / "train.log").read_text().splitlines()[:120]
    (tmp_path / "tiny.log").write_text("\n".join(lines) + "\n")
    code, out, err = cli(
        [
            "train",
            str(tmp_path / "tiny.log"),
            "--format",
            "bgl",
            "--out",
            str(tmp_path / "m"),
            "--count-window",
            "5",
            "--epochs",
            "1",
            *TINY,
        ]
    )
    assert code == 0, err
    notes = json.loads(out)["notes"]
    assert {"tiny_training_set", "coarse_validation", "k_covers_vocabulary"} <= set(notes)
    assert "warning: only" in err and "warning: K =" in err
    normal_only = [x for x in lines if x.startswith("- ")]
    (tmp_path / "normal.log").write_text("\n".join(normal_only) + "\n")
    code, out, err = cli(
        ["evaluate", str(tmp_path / "normal.log"), "--model", str(tmp_path / "m"), "--report", str(tmp_path / "r")]
    )
    assert code == 0 and "every labelled session is normal" in err and "n/a (one class)" in out
    faults = [x for x in (syslog["root"] / "test.log").read_text().splitlines() if not x.startswith("- ")]
    (tmp_path / "faults.log").write_text("\n".join(faults) + "\n")
    code, out, err = cli(
        ["evaluate", str(tmp_path / "faults.log"), "--model", str(tmp_path / "m"), "--report", str(tmp_path / "r2")]
    )
    assert code == 0 and "every labelled session is anomalous" in err
    assert "false-positive rate  n/a (no normal rows)" in out
    assert "n/a (no normal rows)" in (tmp_path / "r2" / "report.html").read_text()
