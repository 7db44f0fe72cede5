"""Per-source K from labels: steps, bounds, isolation, and surviving a restart."""

from __future__ import annotations

import pytest

from logwarden.core.errors import LogWardenError
from logwarden.core.labels import (
    KBounds,
    Label,
    LabelError,
    Policy,
    SourceThresholds,
    SqliteLabelStore,
    compute_source_k,
)

BOUNDS = KBounds(min_k=2, max_k=8)
POLICY = Policy(fp_per_step=3, missed_per_step=2)


def fp(session: str, source: str = "noisy", **kw) -> Label:
    return Label(
        target="session",
        verdict="normal",
        predicted="anomaly",
        source=source,
        session_key=session,
        analyst="alice",
        **kw,
    )


def missed(session: str, source: str = "quiet") -> Label:
    return Label(
        target="session", verdict="anomaly", predicted="normal", source=source, session_key=session, analyst="bob"
    )


def test_false_positives_raise_k_one_step_per_n_sessions():
    assert compute_source_k(4, [fp(f"s{i}") for i in range(2)], BOUNDS, POLICY) == 4
    assert compute_source_k(4, [fp(f"s{i}") for i in range(3)], BOUNDS, POLICY) == 5
    assert compute_source_k(4, [fp(f"s{i}") for i in range(7)], BOUNDS, POLICY) == 6


def test_a_flood_of_false_positives_stops_at_max_k():
    assert compute_source_k(4, [fp(f"s{i}") for i in range(10_000)], BOUNDS, POLICY) == BOUNDS.max_k


def test_missed_anomalies_lower_k_down_to_min_k():
    assert compute_source_k(4, [missed("m1")], BOUNDS, POLICY) == 4
    assert compute_source_k(4, [missed("m1"), missed("m2")], BOUNDS, POLICY) == 3
    assert compute_source_k(4, [missed(f"m{i}") for i in range(100)], BOUNDS, POLICY) == BOUNDS.min_k


def test_one_session_is_one_vote_and_the_latest_label_wins():
    same = [fp("s1") for _ in range(50)]
    assert compute_source_k(4, same, BOUNDS, POLICY) == 4
    three = [fp("s1"), fp("s2"), fp("s3")]
    assert compute_source_k(4, three, BOUNDS, POLICY) == 5
    corrected = [
        *three,
        Label(
            target="session", verdict="anomaly", predicted="anomaly", source="noisy", session_key="s3", analyst="carol"
        ),
    ]  # s3 was a real attack after all
    assert compute_source_k(4, corrected, BOUNDS, POLICY) == 4
    # store order (ids) decides "latest", not list order
    with_ids = [
        fp("s1", id=2),
        Label(
            target="session",
            verdict="anomaly",
            predicted="anomaly",
            source="noisy",
            session_key="s1",
            analyst="c",
            id=1,
        ),
        fp("s2"),
        fp("s3"),
    ]
    assert compute_source_k(4, with_ids, BOUNDS, POLICY) == 5


def test_event_labels_without_a_session_count_per_event():
    events = [
        Label(target="event", verdict="normal", source="noisy", event_id=f"e{i % 3}", analyst="a") for i in range(30)
    ]  # 30 clicks on 3 events
    assert compute_source_k(4, events, BOUNDS, POLICY) == 5


def test_agreements_and_k_independent_false_positives_leave_k_alone():
    agree = [
        Label(target="session", verdict="anomaly", predicted="anomaly", source="s", session_key=f"a{i}", analyst="a")
        for i in range(9)
    ]
    ok = [
        Label(target="session", verdict="normal", predicted="normal", source="s", session_key=f"n{i}", analyst="a")
        for i in range(9)
    ]
    assert compute_source_k(4, agree + ok, BOUNDS, POLICY) == 4
    new = [fp(f"s{i}", reason_code="new_template") for i in range(9)]
    rare = [fp(f"r{i}", reason_code="rare_template") for i in range(9)]
    ended = [fp(f"e{i}", reason_code="ended_early") for i in range(9)]
    combination = [fp(f"c{i}", reason_code="rare_combination") for i in range(9)]
    assert compute_source_k(4, new + rare + ended + combination, BOUNDS, POLICY) == 4


def test_k_is_moved_by_codes_not_by_reason_text():
    """Rewording a reason changes nothing: a text that reads like a new template but has the code of an
    unexpected template counts, and the same code under any text does not."""
    looks_new = [fp(f"s{i}", reason="new template (never seen)", reason_code="unexpected_template") for i in range(5)]
    assert compute_source_k(4, looks_new, BOUNDS, POLICY) == 5
    reworded = [fp(f"t{i}", reason="this line was never seen before", reason_code="new_template") for i in range(5)]
    assert compute_source_k(4, reworded, BOUNDS, POLICY) == 4
    with pytest.raises(LabelError, match="reason_code"):
        fp("x", reason_code="made_up")


def test_bounds_around_the_calibrated_k():
    assert KBounds.around(5) == KBounds(2, 10)
    assert KBounds.around(5, vocab_size=7) == KBounds(2, 7)
    assert KBounds.around(1) == KBounds(1, 2)
    assert KBounds.around(2) == KBounds(1, 4)
    with pytest.raises(LogWardenError):
        KBounds(0, 3)
    with pytest.raises(LogWardenError):
        KBounds(5, 3)
    with pytest.raises(LogWardenError):
        Policy(fp_per_step=0)


def test_false_positives_of_one_source_do_not_change_another():
    thresholds = SourceThresholds(4, BOUNDS, policy=POLICY)
    for i in range(30):
        thresholds.observe(fp(f"s{i}", source="noisy-host"))
    assert thresholds.k_for_source("noisy-host") == BOUNDS.max_k
    assert thresholds.k_for_source("db-01") is None  # keeps the calibrated K
    thresholds.observe(missed("m1", source="db-01"))
    assert thresholds.observe(missed("m2", source="db-01")) == 3
    assert thresholds.snapshot() == {"noisy-host": 8, "db-01": 3}


def test_incremental_updates_agree_with_the_pure_function():
    labels = [
        fp("a"),
        fp("b"),
        missed("c", "noisy"),
        fp("c"),
        fp("d"),
        fp("a"),
        missed("e", "noisy"),
        missed("f", "noisy"),
        fp("g"),
    ]
    thresholds = SourceThresholds(4, BOUNDS, policy=POLICY)
    for n, label in enumerate(labels, start=1):
        got = thresholds.observe(label) or 4
        assert got == compute_source_k(4, labels[:n], BOUNDS, POLICY)


def test_thresholds_rebuilt_from_the_store_after_a_restart(tmp_path):
    path = tmp_path / "labels.db"
    with SqliteLabelStore(path) as store:
        live = SourceThresholds(4, BOUNDS, policy=POLICY, model_version="v1")
        for i in range(6):
            label = fp(f"s{i}", model_version="v1")
            store.add(label)
            live.observe(label)
        for i in range(9):  # labels on an older model version: already folded into v1's training
            store.add(fp(f"old{i}", source="other", model_version="v0"))
        store.add(missed("m1"))
        store.add(missed("m2"))  # no model version: counted only when thresholds are not per version
    assert live.snapshot() == {"noisy": 6}
    with SqliteLabelStore(path, create=False) as store:  # the server starts again
        restarted = SourceThresholds.from_store(store, 4, BOUNDS, policy=POLICY, model_version="v1")
        everything = SourceThresholds.from_store(store, 4, BOUNDS, policy=POLICY)
    assert restarted.snapshot() == live.snapshot()
    assert restarted.k_for_source("other") is None
    assert everything.snapshot() == {"noisy": 6, "other": 7, "quiet": 3}
