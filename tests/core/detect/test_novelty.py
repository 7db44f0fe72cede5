"""Templates the model does not know are judged, not assumed: distance to known templates and severity."""

import numpy as np
import pytest

from logwarden.core.detect.calibration import NOVELTY_PRIOR, novelty_scores, novelty_threshold, threshold_within
from logwarden.core.detect.novelty import SEED_WORDS, Novelty, level_severity, words
from logwarden.core.errors import LogWardenError

KNOWN = {
    "1": "instruction cache parity error corrected",
    "2": "temperature above threshold on node card <*>",
    "3": "ciod: LOGIN chdir(<*>) succeeded",
    "4": "job <*> started on partition <*>",
    "5": "machine state register: <*>",
}
LINES = [
    ("instruction cache parity error corrected", "INFO"),
    ("temperature above threshold on node card <*>", "WARNING"),
    ("ciod: LOGIN chdir(<*>) succeeded", "INFO"),
    ("job <*> started on partition <*>", "INFO"),
    ("machine state register: <*>", "FATAL"),
    ("ddr error(s) detected and corrected on rank <*>", "INFO"),
]


@pytest.fixture
def novelty() -> Novelty:
    return Novelty.build(KNOWN, LINES, level_field="Level")


def test_a_benign_variant_of_a_known_template_scores_low_and_names_it(novelty):
    judged = novelty.judge("temperature back to normal on node card <*>", "INFO")
    assert judged.closest == "2" and judged.similarity > 0.3
    assert set(judged.added) == {"back", "to", "normal"} and set(judged.missing) == {"above", "threshold"}
    assert judged.score < NOVELTY_PRIOR


def test_a_new_fatal_error_scores_high(novelty):
    judged = novelty.judge("rts panic! - stopping execution", "FATAL")
    # FATAL, discounted by its share of the normal lines (1 of 6): still severe, and unlike anything known
    assert judged.score > 0.85 and judged.severity == pytest.approx(5 / 6, abs=1e-3)
    assert novelty.judge("kernel panic: fatal machine check", None).score > NOVELTY_PRIOR  # no level: its words


def test_a_known_severe_template_in_another_case_is_not_novel(novelty):
    """A FATAL register dump like a known normal one: severity does not make it novel."""
    assert novelty.judge("Machine State Register: <*>", "FATAL").score == pytest.approx(0.0)


def test_word_severity_is_learned_from_the_systems_own_lines(novelty):
    # "corrected" and "error" appear in normal INFO lines only: below their seed values
    assert novelty.word_severity("error") < SEED_WORDS["error"]
    assert novelty.word_severity("corrected") < 0.1
    # "register" appears in a normal FATAL line: more severe than an unseen plain word
    assert novelty.word_severity("register") > novelty.word_severity("banana")


def test_levels_and_words():
    assert level_severity("FATAL") == 1.0 and level_severity("info") == 0.0 and level_severity(None) is None
    assert level_severity("NOTALEVEL") == pytest.approx(0.3)
    assert words("ciod: LOGIN chdir(<*>) failed: 42 Input/output error") == {
        "ciod",
        "login",
        "chdir",
        "failed",
        "input",
        "output",
        "error",
    }


def test_without_text_nothing_is_compared(novelty):
    judged = novelty.judge(None)
    assert judged.score == 1.0 and not judged.has_text and judged.to_dict() == {"novelty": 1.0}


def test_round_trip_and_bad_config(novelty):
    again = Novelty.from_dict(novelty.to_dict())
    line = ("data TLB error interrupt", "FATAL")
    assert again.judge(*line) == novelty.judge(*line)
    with pytest.raises(LogWardenError, match="novelty"):
        Novelty.from_dict({"severity": {}})


def test_threshold_is_the_prior_unless_validation_asks_for_more():
    assert novelty_threshold([-np.inf] * 200, 0.005) == NOVELTY_PRIOR
    assert novelty_threshold([0.9] + [-np.inf] * 199, 0.005) == NOVELTY_PRIOR  # 0.5 % fits the budget
    values = [0.6, 0.7, 0.8, 0.9] + [-np.inf] * 196  # 2 % would alert at the prior
    threshold = novelty_threshold(values, 0.005)  # half the budget is half a session: one session is allowed
    assert threshold == 0.8 and float((np.array(values) > threshold).mean()) == 0.005
    assert threshold_within([3.0, 2.0, 1.5] + [0.5] * 397, 1.0, 0.005) == 2.0  # at most half the budget


def test_novelty_scores_are_continuous_with_the_boundary_at_the_threshold():
    scores = novelty_scores(np.array([0.0, 0.25, 0.5, 0.75, 1.0]), 0.5)
    assert scores.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert novelty_scores(np.array([0.2, 0.9]), None).tolist() == [1.0, 1.0]  # mode 'always'
    assert novelty_scores(np.array([0.9]), 1.0)[0] < 0.5  # nothing can pass a threshold of 1
