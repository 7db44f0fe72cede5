"""Bad input gets a clear error naming the problem, and ``score`` keeps going past bad lines."""

from __future__ import annotations

import json
import shutil

import pytest

from logwarden.core.artifact import store as artifact
from logwarden.core.cli import main
from logwarden.core.detect.detector import Detector
from logwarden.core.errors import LogWardenError


def run(args, capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def version_dir(model_root):
    return artifact.resolve(model_root)


def test_empty_input_is_an_error(model_root, tmp_path, capsys):
    empty = tmp_path / "empty.log"
    empty.write_text("")
    code, _, err = run(["score", str(empty), "--model", str(model_root)], capsys)
    assert code == 2 and "no input" in err


def test_score_keeps_going_past_bad_lines(corpus_dir, model_root, tmp_path, capsys):
    good = (corpus_dir / "test.log").read_bytes().splitlines()[:200]
    mixed = tmp_path / "mixed.log"
    mixed.write_bytes(
        b"\n".join(
            [
                *good[:50],
                b"\x00\x01\x02\x03\xff\xfe binary garbage \x00\x00",
                *good[50:100],
                b"081109 203615 148 INFO dfs.DataNode: caf\xe9 blk_1 invalid utf-8",
                b"A" * (10 * 1024 * 1024),
                *good[100:],
                b"this line does not match the hdfs format",
            ]
        )
        + b"\n"
    )
    out = tmp_path / "out.jsonl"
    code, _, err = run(["score", str(mixed), "--model", str(model_root), "-o", str(out)], capsys)
    assert code == 0
    events = [json.loads(line) for line in out.read_text().splitlines() if '"type": "event"' in line]
    assert len(events) == 201  # every good line plus the invalid-UTF-8 one, kept with replacement
    assert any("caf\ufffd" in str(e.get("template", "")) or e["line"] == 102 for e in events)
    assert "3 bad" in err and "too long" in err and "binary" in err and "not matching the format" in err
    assert "invalid UTF-8" in err or "invalid_utf8" in err or "invalid utf-8" in err.lower()


def test_unknown_format_string(model_root, corpus_dir, tmp_path, capsys):
    code, _, err = run(["train", str(corpus_dir / "train.log"), "--format", "nonsense", "--out", str(tmp_path)], capsys)
    assert code == 2 and "unknown format 'nonsense'" in err
    code, _, err = run(
        ["train", str(corpus_dir / "train.log"), "--format", "<Date> <Time>", "--out", str(tmp_path)], capsys
    )
    assert code == 2 and "<Content>" in err


def test_missing_model_directory(corpus_dir, tmp_path, capsys):
    code, _, err = run(["score", str(corpus_dir / "test.log"), "--model", str(tmp_path / "nope")], capsys)
    assert code == 2 and "model directory not found" in err
    (tmp_path / "empty-root").mkdir()
    code, _, err = run(["score", str(corpus_dir / "test.log"), "--model", str(tmp_path / "empty-root")], capsys)
    assert code == 2 and "holds no model" in err


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "model.safetensors").unlink(), "model.safetensors is missing"),
        (lambda d: (d / "config.json").write_text("{not json"), "config.json is not valid JSON"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 64), "cannot read model.safetensors"),
        (lambda d: (d / "parser.json").write_text('{"version": 1}'), "parser state"),
        (lambda d: (d / "model.onnx").write_bytes(b"garbage"), "cannot load ONNX model"),
    ],
)
def test_corrupt_model_directory(model_root, tmp_path, damage, message):
    copy = tmp_path / "copy"
    shutil.copytree(version_dir(model_root), copy)
    damage(copy)
    with pytest.raises(LogWardenError, match=message):
        Detector.load(copy)


def test_model_trained_for_another_format(model_root, tmp_path, capsys):
    logs = tmp_path / "bgl.log"
    logs.write_text("- 1117838570 2005.06.03 R02-M1-N0 2005-06-03-15.42.50.363779 R02-M1-N0 RAS KERNEL INFO ok\n")
    code, _, err = run(["score", str(logs), "--model", str(model_root), "--format", "bgl"], capsys)
    assert code == 2 and "trained on format 'hdfs', not 'bgl'" in err
    code, _, err = run(["score", str(logs), "--model", str(model_root)], capsys)
    assert code == 2 and "could be read as format 'hdfs'" in err


def test_versions_are_immutable(model_root):
    existing = version_dir(model_root).name
    with pytest.raises(LogWardenError, match="immutable"):
        artifact.write_version(model_root, existing, lambda tmp: None)
