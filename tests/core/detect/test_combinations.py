"""A complete session's set of templates is judged too: a combination no normal session had is anomalous.

Generated key sequences stand for a system with two optional steps that never happen together in
normal operation (like HDFS's replication and deletion of one block): each transition of a session
with both is one the model has seen, but the combination is not.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from logwarden.core.detect.combinations import RARE_COMBINATION, Combinations, Difference
from logwarden.core.detect.detector import Detector
from logwarden.core.errors import LogWardenError
from logwarden.core.model.config import ModelConfig, TrainConfig
from logwarden.core.parsing.sessions import SessionRule
from logwarden.core.pipeline.fit import FitSettings, fit_sequences, save_detector


def exclusive_steps(n: int, seed: int) -> list[list[str]]:
    """start, read, [x], write, [y], stop: x or y or neither, never both."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        branch = int(rng.integers(0, 3))
        out.append(["start", "read", *(["x"] if branch == 1 else []), "write", *(["y"] if branch == 2 else []), "stop"])
    return out


def settings(**overrides) -> FitSettings:
    base = {
        "model": ModelConfig(n_layer=1, n_head=2, n_embd=16, max_len=32),
        "train": TrainConfig(epochs=4, batch_size=32, seed=3),
        "target_fpr": 0.01,
    }
    return FitSettings(**{**base, **overrides})


@pytest.fixture(scope="module")
def fitted():
    saveable = {"line_format": "plain", "sessions": SessionRule().to_dict()}  # what train_from_logs adds
    return fit_sequences(exclusive_steps(400, 0), settings(), progress=False, extra_config=saveable)


def test_known_and_rare_combinations():
    combos = Combinations.build([["a", "b"], ["b", "a", "a"], ["a", "b"], ["a", "c"]], min_sessions=2)
    assert len(combos) == 1
    assert not combos.is_rare(["b", "a"])  # order and repeats do not matter
    assert combos.is_rare(["a", "c"])  # seen once: below the bar
    assert combos.is_rare(["a", "b", None])  # a new template makes any combination new
    assert combos.closest(["a", "b", "d"]) == Difference(sessions=3, extra=("d",), missing=())
    assert combos.closest(["a"]) == Difference(sessions=3, extra=(), missing=("b",))
    assert Combinations({}, 1).closest(["a"]) is None


def test_round_trip_and_bad_config():
    combos = Combinations.build([["a", "b"]] * 3 + [["c"]] * 5, min_sessions=3)
    again = Combinations.from_dict(json.loads(json.dumps(combos.to_dict())))
    assert again.known == combos.known and again.min_sessions == 3
    with pytest.raises(LogWardenError, match="template combinations"):
        Combinations.from_dict({"min_sessions": 2, "known": [{"keys": ["a"]}]})
    with pytest.raises(LogWardenError, match="at least 1"):
        Combinations({}, 0)


def test_a_combination_never_seen_is_flagged_and_explained(fitted):
    detector = fitted.detector
    assert detector.combinations is not None and len(detector.combinations) == 3
    assert detector.calibration.combination_fpr == 0.0
    normal = exclusive_steps(60, 1)
    assert not any(v.combination for v in detector.score_keys(normal))
    both = detector.score_keys([["start", "read", "x", "write", "y", "stop"]])[0]
    assert both.anomalous and both.score == 1.0
    assert both.combination.startswith(RARE_COMBINATION)
    assert "with 'y'" in both.combination or "with 'x'" in both.combination
    # the session's reason is its first anomalous event's, else the combination's
    assert both.reason == next((e.reason for e in [*both.events, both.end] if e.anomalous), both.combination)
    # an open session (stream mode) is not judged as a whole: it may still be missing steps
    assert not detector.score_keys([["start", "read", "x", "write", "y"]], complete=False)[0].combination
    # nor is one whose stream window dropped its first keys: its set of templates is not known whole
    cut = detector.score_keys([["x", "write", "y", "stop"]] * 2, whole=[False, True])
    assert not cut[0].combination and cut[1].combination.startswith(RARE_COMBINATION)


def test_the_check_survives_save_and_load(fitted, tmp_path):
    path = save_detector(fitted.detector, tmp_path / "m", onnx=False)
    loaded = Detector.load(path.parent, backend="torch")
    assert loaded.combinations is not None and loaded.combinations.known == fitted.detector.combinations.known
    verdict = loaded.score_keys([["start", "read", "x", "write", "y", "stop"]])[0]
    assert verdict.combination.startswith(RARE_COMBINATION)


def test_models_saved_before_the_check_have_none(fitted, tmp_path):
    path = save_detector(fitted.detector, tmp_path / "old", onnx=False)
    config = json.loads((path / "config.json").read_text())
    del config["combinations"]
    (path / "config.json").write_text(json.dumps(config))
    old = Detector.load(path.parent, backend="torch")
    assert old.combinations is None
    assert not old.score_keys([["start", "read", "x", "write", "y", "stop"]])[0].combination


def test_too_varied_sessions_switch_the_check_off():
    """Sessions whose sets of templates rarely repeat: the check would flag most normal validation
    sessions, so calibration drops it and keeps the next-key checks within the target alone."""
    rng = np.random.default_rng(5)
    varied = [["start", *[f"opt{i}" for i in range(10) if rng.random() < 0.5], "stop"] for _ in range(300)]
    fit = fit_sequences(varied, settings(min_template_sessions=1), progress=False)
    assert fit.detector.combinations is None
    assert fit.detector.calibration.combination_fpr > fit.detector.calibration.target_fpr
    assert fit.detector.config.combinations is None
    assert fit.detector.calibration.validation_fpr <= fit.detector.calibration.target_fpr


def test_the_check_can_be_turned_off():
    fit = fit_sequences(exclusive_steps(400, 0), settings(check_combinations=False), progress=False)
    assert fit.detector.combinations is None and fit.detector.calibration.combination_fpr is None
