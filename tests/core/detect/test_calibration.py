"""K is chosen from normal validation data for a target false-positive rate; scores map to [0, 1]."""

import math

import numpy as np
import pytest

from logwarden.core.detect.calibration import (
    END_SURPRISAL_FLOOR,
    TOLERANCE,
    choose_k,
    end_threshold,
    margin_temperature,
    scores_from_margins,
)
from logwarden.core.errors import LogWardenError


def test_smallest_k_meeting_the_target():
    ranks = [1, 1, 2, 2, 3, 5, 1, 1, 2, 9]
    assert choose_k(ranks, 0.0, 20) == (9, 0.0)
    assert choose_k(ranks, 0.1, 20) == (5, 0.1)
    assert choose_k(ranks, 0.25, 20) == (3, 0.2)
    assert choose_k(ranks, 0.3, 20) == (2, 0.3)


def test_new_templates_in_validation_cap_k_at_vocab():
    k, fpr = choose_k([1, 2, float("inf")], 0.0, 10)
    assert k == 10 and fpr == pytest.approx(1 / 3)


def test_bad_target_and_empty_validation():
    with pytest.raises(LogWardenError, match="false-positive rate"):
        choose_k([1], 1.5, 10)
    with pytest.raises(LogWardenError, match="no normal validation"):
        choose_k([], 0.01, 10)


def test_scores_are_monotone_with_boundary_at_half():
    margins = np.array([-5.0, -0.1, 0.0, 0.1, 5.0, np.inf])
    scores = scores_from_margins(margins, temperature=1.0)
    assert np.all(np.diff(scores) >= 0)
    assert scores[2] == 0.5 and scores[-1] == 1.0
    assert (scores > 0.5).tolist() == [False, False, False, True, True, True]


def test_temperature_is_a_robust_positive_scale():
    assert margin_temperature(np.array([-2.0, -2.0, 2.0, np.inf])) == 2.0
    assert margin_temperature(np.array([0.0, 0.0])) == 0.1
    assert margin_temperature(np.array([np.inf])) == 1.0


def test_end_threshold_is_the_least_likely_normal_end_but_never_below_the_floor():
    # an infinite surprisal is not a normal end; the threshold passes the least likely one by a hair
    assert end_threshold([0.1, 7.5, 2.0, math.inf]) == pytest.approx(7.5 + TOLERANCE)
    assert end_threshold([0.01, 0.2]) == END_SURPRISAL_FLOOR == pytest.approx(math.log(100))
    assert end_threshold([]) is None
