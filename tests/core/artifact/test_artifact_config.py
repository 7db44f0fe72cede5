"""A version's config.json is one typed object: strict, versioned, upgraded from format 1 in one step, and
its weights must fit it exactly."""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file
from support import sessions_by_block

from logwarden.core.artifact import store as artifact
from logwarden.core.artifact.config import ARTIFACT_FORMAT, parse_config, upgrade_1_to_2, upgrade_2_to_3
from logwarden.core.detect.detector import Detector
from logwarden.core.detect.reasons import ReasonCode
from logwarden.core.errors import LogWardenError
from logwarden.core.parsing.formats import get_format


@pytest.fixture
def version_copy(model_root, tmp_path):
    """A copy of the test model's newest version, to damage."""
    source = artifact.resolve(model_root)
    target = tmp_path / "models" / source.name
    shutil.copytree(source, target)
    return target


def _config(path) -> dict:
    return json.loads((path / artifact.CONFIG).read_text())


def _write(path, data) -> None:
    (path / artifact.CONFIG).write_text(json.dumps(data))


def test_saved_config_is_the_current_format_and_round_trips(model_root):
    files = artifact.read_config(artifact.resolve(model_root))
    assert files.config.artifact_format == ARTIFACT_FORMAT
    again = parse_config(json.loads(files.config.to_json()), "copy")
    assert again == files.config


def test_unknown_or_mistyped_keys_are_refused_naming_them(version_copy):
    data = _config(version_copy)
    _write(version_copy, {**data, "surprise": 1})
    with pytest.raises(LogWardenError, match="surprise"):
        Detector.load(version_copy)
    _write(version_copy, {**data, "calibration": {**data["calibration"], "k": "many"}})
    with pytest.raises(LogWardenError, match=r"calibration\.k"):
        Detector.load(version_copy)


def test_a_newer_format_is_refused_naming_both_numbers(version_copy):
    _write(version_copy, {**_config(version_copy), "artifact_format": ARTIFACT_FORMAT + 1})
    with pytest.raises(LogWardenError, match=rf"format {ARTIFACT_FORMAT + 1}.*up to {ARTIFACT_FORMAT}"):
        Detector.load(version_copy)
    _write(version_copy, {"artifact_format": 0})
    with pytest.raises(LogWardenError, match="retrain"):
        Detector.load(version_copy)


def test_a_format_1_model_loads_and_judges_as_it_did(version_copy):
    """A format-1 config (written before end thresholds and the combination check) loads through the one
    upgrade step, and its session ends are judged by top-K as that version did."""
    data = _config(version_copy)
    for key in ("score_end", "check_combinations", "combinations", "min_template_sessions"):
        data.pop(key)
    data["calibration"] = {
        k: v for k, v in data["calibration"].items() if k not in ("end_surprisal", "combination_fpr")
    }
    _write(version_copy, {**data, "artifact_format": 1})
    detector = Detector.load(version_copy)
    assert detector.calibration.end_surprisal is None and detector.combinations is None
    fmt = get_format(detector.line_format)
    cut = [[detector.parse(fmt.parse(x)).key for x in lines][:2] for lines in sessions_by_block(10, 5, 0.0).values()]
    flagged = [v for v in detector.score_keys(cut, k=1) if v.end.anomalous]
    assert flagged and all(v.end.reason_code == ReasonCode.UNEXPECTED_END for v in flagged)
    assert upgrade_1_to_2({"artifact_format": 1, "calibration": {}})["artifact_format"] == 2


def test_a_format_2_model_loads_and_every_unknown_template_still_alerts(version_copy):
    """A format-2 config (written before novelty, counts and window scopes) loads through the upgrade step and
    judges as that version did: every template the model does not know alerts with score 1, windows uncut."""
    data = _config(version_copy)
    for key in ("novelty_mode", "novelty", "val_split", "notes", "check_counts", "counts"):
        data.pop(key)
    for key in ("novelty_threshold", "novelty_fpr", "count_threshold", "count_fpr"):
        data["calibration"].pop(key)
    for key in ("scope", "group_field", "max_events"):
        data["sessions"].pop(key)
    _write(version_copy, {**data, "artifact_format": 2})
    detector = Detector.load(version_copy)
    assert detector.novelty is None and detector.counts is None and detector.calibration.novelty_threshold is None
    assert detector.config.novelty_mode == "always" and detector.rule.max_events == 0
    fmt = get_format(detector.line_format)
    (lines,) = sessions_by_block(1, 5, 0.0).values()
    keys = [detector.parse(fmt.parse(x)).key for x in lines]
    (verdict,) = detector.score_keys([[*keys[:3], None, *keys[3:]]])
    new = verdict.events[3]
    assert new.anomalous and new.score == 1.0 and new.reason_code == ReasonCode.NEW_TEMPLATE
    assert upgrade_2_to_3({"artifact_format": 2, "calibration": {}})["artifact_format"] == 3


def test_weights_must_fit_the_config_exactly(version_copy):
    weights = version_copy / artifact.WEIGHTS
    state = load_file(str(weights))
    name = sorted(state)[0]
    save_file({k: v for k, v in state.items() if k != name}, str(weights))
    with pytest.raises(LogWardenError, match=f"missing tensors: {name}"):
        Detector.load(version_copy, backend="torch")
    save_file({**state, "extra.weight": state[name].clone()}, str(weights))
    with pytest.raises(LogWardenError, match=r"unexpected: extra\.weight"):
        Detector.load(version_copy, backend="torch")
    weights.write_bytes(b"not safetensors")
    with pytest.raises(LogWardenError, match="cannot read"):
        Detector.load(version_copy, backend="torch")
