"""The label store: validation, durability, concurrency, queries, export."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from logwarden.core.errors import LogWardenError
from logwarden.core.labels import Label, LabelError, SqliteLabelStore
from logwarden.core.labels.export import read_labels
from logwarden.core.labels.label import MAX_ANALYST, MAX_COMMENT, MAX_MESSAGE


def make(**kw) -> Label:
    base = {
        "target": "session",
        "verdict": "normal",
        "source": "host-a",
        "session_key": "blk_1",
        "analyst": "alice",
        "keys": ["1", "2", "3"],
        "model_version": "v1",
        "predicted": "anomaly",
    }
    return Label(**{**base, **kw})


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"verdict": "maybe"}, "verdict"),
        ({"target": "host"}, "target"),
        ({"predicted": "yes"}, "predicted"),
        ({"analyst": "  "}, "analyst"),
        ({"analyst": "a" * (MAX_ANALYST + 1)}, "analyst"),
        ({"analyst": "eve\nINFO forged log line"}, "analyst"),
        ({"comment": "c" * (MAX_COMMENT + 1)}, "comment"),
        ({"message": "m" * (MAX_MESSAGE + 1)}, "message"),
        ({"source": ""}, "source"),
        ({"session_key": 17}, "session_key"),
        ({"session_key": ""}, "session_key"),  # a session label needs its session
        ({"keys": "1 2 3"}, "keys"),
        ({"keys": ["1", "two words"]}, "keys"),
        ({"template_id": "a b"}, "template_id"),
        ({"target": "event"}, "event_id"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"id": 0}, "id"),
    ],
)
def test_bad_input_names_the_field(change, field):
    with pytest.raises(LabelError) as err:
        make(**change)
    assert err.value.field == field and repr(field) in str(err.value)
    assert isinstance(err.value, LogWardenError)


def test_from_dict_rejects_unknown_and_missing_fields():
    data = make().to_dict()
    with pytest.raises(LabelError, match="'colour': unknown field"):
        Label.from_dict({**data, "colour": "red"})
    del data["analyst"]
    with pytest.raises(LabelError, match="'analyst': is required"):
        Label.from_dict(data)
    with pytest.raises(LabelError, match="JSON object"):
        Label.from_dict(["session"])


def test_event_label_and_times_normalised_to_utc():
    label = make(target="event", event_id="e-9", template_id="4", created_at="2026-03-01T12:00:00+02:00")
    assert label.created_at == "2026-03-01T10:00:00.000000Z"
    assert label.keys == ("1", "2", "3")


# -- durability and concurrency -------------------------------------------------------------------


def test_labels_survive_close_and_reopen(tmp_path):
    path = tmp_path / "labels.db"
    with SqliteLabelStore(path) as store:
        first = store.add(make(comment="first"))
        store.add_many([make(session_key="blk_2"), make(session_key="blk_3", verdict="anomaly")])
    assert os.stat(path).st_mode & 0o077 == 0  # owner-only: labels hold names and comments
    with SqliteLabelStore(path, create=False) as store:
        assert store.count() == 3
        labels = store.query(newest_first=False)
        assert [lb.id for lb in labels] == [first, first + 1, first + 2]
        assert labels[0].comment == "first" and labels[0].keys == ("1", "2", "3")
        assert labels[2].verdict == "anomaly"
        assert store.add(make()) == first + 3  # ids keep growing


def test_committed_labels_survive_a_crash(tmp_path):
    path = tmp_path / "labels.db"
    code = (
        "import os, sys\n"
        "from logwarden.core.labels import Label, SqliteLabelStore\n"
        "s = SqliteLabelStore(sys.argv[1])\n"
        "s.add(Label(target='session', verdict='anomaly', source='h', session_key='k', analyst='bob'))\n"
        "os._exit(0)\n"  # no close, no cleanup: a killed server
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
    with SqliteLabelStore(path) as store:
        assert [(lb.analyst, lb.verdict) for lb in store.query()] == [("bob", "anomaly")]
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_concurrent_writers_from_threads_and_a_second_connection(tmp_path):
    path = tmp_path / "labels.db"
    shared, other = SqliteLabelStore(path), SqliteLabelStore(path)  # other: as if another process
    ids: list[int] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def write(store, worker: int) -> None:
        try:
            for i in range(40):
                new = store.add_many([make(session_key=f"w{worker}-{i}", source=f"host-{worker % 3}")])
                with lock:
                    ids.extend(new)
                store.count()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(shared if w % 4 else other, w)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(ids) == len(set(ids)) == 320
    assert shared.count() == other.count() == 320
    assert shared.count() == 320
    shared.close()
    other.close()


def test_add_many_is_all_or_nothing():
    store = SqliteLabelStore(":memory:")
    with pytest.raises(LabelError):
        store.add_many([make(), Label.from_dict({**make().to_dict(), "verdict": "??"})])
    assert store.count() == 0


def test_a_label_sqlite_cannot_store_is_refused_and_leaves_no_transaction_open(tmp_path):
    """A lone surrogate (which SQLite cannot encode) used to fail mid-transaction and leave it open: the
    next write from anyone then failed with "cannot start a transaction within a transaction"."""
    store = SqliteLabelStore(tmp_path / "labels.sqlite")
    for field in ("comment", "analyst", "reason"):
        with pytest.raises(LabelError) as info:
            store.add_many([make(), make(**{field: "bad \ud800 text"})])
        assert info.value.field == field
    assert store.add_many([make(comment="fine")]) == [1]  # the next write goes through
    assert store.count() == 1


def test_closed_store_and_missing_or_newer_database(tmp_path):
    store = SqliteLabelStore(":memory:")
    store.close()
    with pytest.raises(LogWardenError, match="closed"):
        store.count()
    with pytest.raises(LogWardenError, match="not found"):
        SqliteLabelStore(tmp_path / "nope.db", create=False)
    newer = tmp_path / "newer.db"
    db = sqlite3.connect(newer)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(LogWardenError, match="schema 99"):
        SqliteLabelStore(newer)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database, just some bytes" * 100)
    with pytest.raises(LogWardenError, match="cannot open label database"):
        SqliteLabelStore(junk)


def test_a_schema_1_store_is_upgraded_in_place(tmp_path):
    """A store written before reason codes keeps its labels (without a code) and takes new ones with one."""
    path = tmp_path / "v1.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE labels (id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, verdict TEXT NOT NULL,"
        " source TEXT NOT NULL, analyst TEXT NOT NULL, session_key TEXT NOT NULL, template_id TEXT, event_id TEXT,"
        " message TEXT, model_version TEXT NOT NULL, predicted TEXT, reason TEXT NOT NULL, comment TEXT NOT NULL,"
        " keys TEXT, created_at TEXT NOT NULL); PRAGMA user_version = 1;"
        "INSERT INTO labels (target, verdict, source, analyst, session_key, model_version, reason, comment,"
        " created_at) VALUES ('session', 'normal', 'h', 'ann', 'blk_1', 'v1', 'r', '', '2026-01-01T00:00:00.000000Z');"
    )
    db.close()
    with SqliteLabelStore(path) as store:
        (old,) = store.query()
        assert old.session_key == "blk_1" and old.reason_code is None
        store.add(make(session_key="blk_2", reason_code="rare_combination"))
        assert [x.reason_code for x in store.query(newest_first=False)] == [None, "rare_combination"]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] >= 2


# -- queries and statistics ------------------------------------------------------------------------


def test_query_filters_order_limit_and_paging():
    store = SqliteLabelStore(":memory:")
    old = datetime(2026, 1, 1, tzinfo=UTC)
    store.add_many([make(source="a", created_at=old + timedelta(days=d), session_key=f"s{d}") for d in range(5)])
    store.add_many([make(source="b", created_at=old + timedelta(days=d), model_version="v2") for d in range(3)])
    assert [lb.session_key for lb in store.query(source="a", limit=2)] == ["s4", "s3"]  # newest first
    assert len(store.query(since="2026-01-03")) == 3 + 1
    assert len(store.query(since=old + timedelta(days=2), source="b")) == 1
    assert {lb.source for lb in store.query(model_version="v2")} == {"b"}
    assert store.count("a") == 5 and store.count("zzz") == 0
    assert [lb.id for lb in store.iter_labels()] == list(range(1, 9))
    with pytest.raises(LogWardenError, match="limit"):
        store.query(limit=0)
    with pytest.raises(LogWardenError, match="limit"):
        store.query(limit=10**9)


def test_iter_labels_pages_through_large_stores():
    store = SqliteLabelStore(":memory:")
    store.add_many(make(session_key=f"s{i}") for i in range(1234))
    assert [lb.id for lb in store.iter_labels()] == list(range(1, 1235))


# -- export -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_round_trip(fmt):
    store = SqliteLabelStore(":memory:")
    store.add_many(
        [
            make(comment='=HYPERLINK("http://evil")', analyst="'quoted"),
            make(
                target="event",
                event_id="-42",
                template_id="7",
                session_key="",
                message='raw, line "with" quotes\nand newline',
                keys=None,
                predicted=None,
                reason="new template (never seen in training)",
            ),
            make(source="other", comment="multi\nline, comment", verdict="anomaly", model_version=""),
        ]
    )
    out = io.StringIO()
    assert store.export(out, fmt) == 3
    if fmt == "csv":
        assert "'=HYPERLINK" in out.getvalue()  # a spreadsheet shows it as text, never runs it
    back = list(read_labels(io.StringIO(out.getvalue()), fmt))
    assert back == store.query(newest_first=False)
    only = io.StringIO()
    assert store.export(only, fmt, source="other") == 1
    assert [lb.source for lb in read_labels(io.StringIO(only.getvalue()), fmt)] == ["other"]


def test_export_errors_name_line_and_field():
    good = json.dumps(make().to_dict())
    bad = json.dumps({**make().to_dict(), "verdict": "x"})
    with pytest.raises(LabelError, match="'verdict': line 2: must be one of"):
        list(read_labels(io.StringIO(f"{good}\n{bad}\n"), "jsonl"))
    with pytest.raises(LogWardenError, match="line 1: not valid JSON"):
        list(read_labels(io.StringIO("{nope\n"), "jsonl"))
    with pytest.raises(LogWardenError, match="header"):
        list(read_labels(io.StringIO("a,b\n1,2\n"), "csv"))
    with pytest.raises(LogWardenError, match="unknown label export format"):
        SqliteLabelStore(":memory:").export(io.StringIO(), "xml")


# -- external ids, replacement, retraction ------------------------------------------------------------


def test_a_label_sent_twice_is_stored_once_and_a_changed_one_replaces_it():
    store = SqliteLabelStore(":memory:")
    first = make(external_id="splunk:idx:42", attributes={"index": "idx", "cd": "1:42"})
    (a,) = store.submit([first])
    (b,) = store.submit([first])  # a replay: nothing written, the same id back
    assert (b.id, b.duplicate, b.replaced) == (a.id, True, None) and store.count() == 1
    (d,) = store.submit([replace(first, attributes={"index": "idx", "cd": "1:42", "origin": "search 2"})])
    assert (d.id, d.duplicate) == (a.id, True)  # the same verdict sent from another search is no change
    (c,) = store.submit([make(external_id="splunk:idx:42", verdict="anomaly")])  # the analyst changed their mind
    assert c.id != a.id and c.replaced == a.id and not c.duplicate
    live = store.query()
    assert [(x.id, x.verdict) for x in live] == [(c.id, "anomaly")]  # one vote: the replaced one no longer counts
    history = store.query(include_retracted=True, newest_first=False)
    assert [x.id for x in history] == [a.id, c.id] and history[0].retracted_at is not None
    assert history[0].attributes == {"index": "idx", "cd": "1:42"}


def test_the_same_external_id_twice_in_one_batch():
    store = SqliteLabelStore(":memory:")
    results = store.submit([make(external_id="e1"), make(external_id="e1"), make(external_id="e1", comment="x")])
    assert [r.duplicate for r in results] == [False, True, False] and results[2].replaced == results[0].id
    assert store.count() == 1


def test_retraction_by_store_id_and_by_external_id():
    store = SqliteLabelStore(":memory:")
    ids = store.add_many([make(session_key="s1"), make(session_key="s2", external_id="ext-2"), make(session_key="s3")])
    out = store.retract(label_ids=[ids[0], 999], external_ids=["ext-2", "nope"])
    assert [(r.id, r.retracted) for r in out] == [(str(ids[0]), True), ("999", False), ("ext-2", True), ("nope", False)]
    assert out[1].error and out[0].label.session_key == "s1"
    assert [x.session_key for x in store.iter_labels()] == ["s3"] and store.count() == 1
    assert store.retract(label_ids=[ids[0]])[0].retracted is False  # already withdrawn
    store.submit([make(external_id="ext-2")])  # the external id is free again
    assert store.count() == 2


def test_listing_pages_through_thousands_of_labels_in_order():
    store = SqliteLabelStore(":memory:")
    store.add_many(make(session_key=f"s{i}", external_id=f"x{i}") for i in range(2345))
    seen, after = [], 0
    while page := store.query(after_id=after, limit=1000, newest_first=False):
        seen.extend(x.id for x in page)
        after = page[-1].id
    assert seen == list(range(1, 2346))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"external_id": ""}, "external_id"),
        ({"external_id": "x" * 513}, "external_id"),
        ({"attributes": {f"k{i}": "v" for i in range(17)}}, "attributes"),
        ({"attributes": {"k": 3}}, "attributes['k']"),
        ({"attributes": {"k": "two\nlines"}}, "attributes['k']"),
        ({"attributes": "index=x"}, "attributes"),
    ],
)
def test_external_ids_and_attributes_are_bounded(change, field):
    with pytest.raises(LabelError) as info:
        make(**change)
    assert info.value.field == field
