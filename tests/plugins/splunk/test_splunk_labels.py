"""``| anomalylabel`` and the "LogWarden: label results" alert action, run as splunkd runs them (the BUILT app's
scripts under Splunk's Pythons; SCP v2 frames for the command, a JSON payload and a gzipped results CSV for
the alert action), against a real LogWarden server with a SQLite label store."""

from __future__ import annotations

import gzip
import json
import subprocess

import pytest
import splunk_scp as scp
from splunk_app_support import SESSION_KEY, store_settings
from splunkd_peer import Splunkd
from support import sessions_by_block
from test_splunk_anomalyscore import PYTHONS, chunks_of, hdfs_rows, search

from logwarden.core.labels.sqlite import SqliteLabelStore


@pytest.fixture(scope="module")
def scored(splunk_app, scorer, tmp_path_factory, command_env) -> list[dict]:
    """Rows as ``| anomalyscore`` leaves them (two sessions), newest first."""
    sessions = dict(list(sessions_by_block(6, seed=57, anomaly_rate=0.0).items())[:2])
    rows = hdfs_rows(sessions)[::-1]
    with Splunkd(SESSION_KEY) as peer:
        store_settings(peer, scorer.url)
        d = str(tmp_path_factory.mktemp("dispatch"))
        _, replies, code = search(PYTHONS[-1], splunk_app, [], chunks_of(rows, 10), d, command_env, peer.uri)
    assert code == 0
    out = replies[-1].rows
    assert all(r["logwarden_status"] == "scored" for r in out), [
        (r["logwarden_status"], r.get("logwarden_reason")) for r in out
    ][:3]
    return out


def stored(scorer) -> int:
    store = SqliteLabelStore(scorer.label_db, create=False)
    try:
        return store.count()
    finally:
        store.close()


def in_own_index(rows: list[dict], python: str) -> list[dict]:
    """The rows as if read from an index of their own per interpreter, so each parametrized run labels other
    events (the same events labelled twice are stored once)."""
    index = f"hdfs-py{PYTHONS.index(python)}"
    return [{**row, "index": index} for row in rows]


def label_search(python, app, args, rows, dispatch_dir, env, splunkd_uri):
    return scp.run_search(
        python,
        app / "bin" / "anomalylabel.py",
        args,
        chunks_of(rows, 50),
        dispatch_dir,
        env,
        splunkd_uri=splunkd_uri,
        session_key=SESSION_KEY,
        command="anomalylabel",
        username="ann",
    )


@pytest.mark.parametrize("python", PYTHONS)
def test_label_command_sends_one_label_per_session_with_what_the_model_said(
    python, splunk_app, scorer, splunkd, scored, dispatch_dir, command_env
):
    """Stands for an analyst marking two scored sessions normal from a search: one label per session (every row
    reports it accepted), by the searching user, with the model's prediction and the session's template ids
    in time order."""
    before = stored(scorer)
    scored = in_own_index(scored, python)
    _, replies, code = label_search(
        python, splunk_app, ["value=normal", "target=session", "comment=fine"], scored, dispatch_dir, command_env,
        splunkd.uri,
    )  # fmt: skip
    assert code == 0
    out = [r for reply in replies for r in reply.rows]
    assert [r["_cd"] for r in out] == [r["_cd"] for r in scored]
    assert {r["logwarden_label_status"] for r in out} <= {"accepted", "duplicate"}
    sessions = {r["logwarden_session_key"] for r in scored}
    assert len({r["logwarden_label_id"] for r in out}) == len(sessions) == 2
    assert stored(scorer) - before == 2
    store = SqliteLabelStore(scorer.label_db, create=False)
    try:
        labels = store.query(limit=2)
    finally:
        store.close()
    for label in labels:
        assert label.analyst == "ann" and label.source == "hdfs-1" and label.comment == "fine"
        assert label.session_key in sessions and label.target == "session" and label.verdict == "normal"
        rows = sorted(
            (r for r in scored if r["logwarden_session_key"] == label.session_key),
            key=lambda r: int(r["_cd"].split(":")[1]),
        )
        assert list(label.keys) == [r["logwarden_template_id"] for r in rows]
        assert label.predicted == ("anomaly" if rows[0]["logwarden_session_verdict"] == "anomalous" else "normal")


def test_label_command_run_twice_stores_each_label_once(splunk_app, scorer, splunkd, scored, dispatch_dir, command_env):
    """Stands for an analyst running the same labelling search twice: the second run stores nothing and every
    row says duplicate."""
    args = ["value=anomaly", "target=event"]
    label_search(PYTHONS[-1], splunk_app, args, scored[:5], dispatch_dir, command_env, splunkd.uri)
    before = stored(scorer)
    _, replies, code = label_search(PYTHONS[-1], splunk_app, args, scored[:5], dispatch_dir, command_env, splunkd.uri)
    assert code == 0 and stored(scorer) == before
    assert {r["logwarden_label_status"] for reply in replies for r in reply.rows} == {"duplicate"}
    assert not [m for reply in replies for m in reply.messages]


def test_label_rows_without_identity_are_refused_and_still_come_out(
    splunk_app, scorer, splunkd, scored, dispatch_dir, command_env
):
    """Stands for labelling a statistics table (no index/_cd): those rows say why, the others are stored."""
    rows = [dict(scored[0]), {k: v for k, v in scored[1].items() if k != "_cd"}]
    _, replies, code = label_search(
        PYTHONS[-1], splunk_app, ["value=anomaly"], rows, dispatch_dir, command_env, splunkd.uri
    )
    assert code == 0
    out = replies[-1].rows
    assert len(out) == 2 and out[0]["logwarden_label_status"] in ("accepted", "duplicate")
    assert out[1]["logwarden_label_status"] == "refused" and "_cd" in out[1]["logwarden_label_error"]
    assert any(kind == "WARN" and "refused" in text for kind, text in replies[-1].messages)


def test_label_command_with_the_scorer_down_keeps_the_rows(splunk_app, scored, dispatch_dir, command_env):
    """Stands for labelling while the scorer (or splunkd's credential) cannot be reached: rows come out unsent."""
    _, replies, code = label_search(
        PYTHONS[-1], splunk_app, ["value=normal"], scored[:3], dispatch_dir, command_env, "https://127.0.0.1:1"
    )
    assert code == 0
    assert [r["logwarden_label_status"] for r in replies[-1].rows] == ["unsent"] * 3
    assert [m[0] for m in replies[-1].messages] == ["WARN"]


def test_label_command_requires_a_value(splunk_app, dispatch_dir, command_env):
    """Stands for ``| anomalylabel`` typed without value=: a clear error."""
    first, _, code = label_search(PYTHONS[-1], splunk_app, [], [], dispatch_dir, command_env, "http://x")
    assert code == 1 and ("ERROR", 'A value for "value" is required') in first.messages


def run_alert(python, app, rows, tmp_path, splunkd_uri, value="anomaly", target="event"):
    results = tmp_path / "results.csv.gz"
    results.write_bytes(gzip.compress(scp.encode_rows(rows)))
    payload = {
        "app": "search",
        "owner": "ann",
        "results_file": str(results),
        "results_link": "http://splunk/app/search/search?sid=scheduler_x",
        "server_host": "sh-1",
        "server_uri": splunkd_uri,
        "session_key": SESSION_KEY,
        "sid": "scheduler__ann__search__RMD5_at_1733130000_7",
        "search_name": "HDFS anomalies",
        "configuration": {"value": value, "target": target, "comment": ""},
    }
    return subprocess.run(
        [python, str(app / "bin" / "logwarden_label_alert.py"), "--execute"],
        input=json.dumps(payload).encode(),
        capture_output=True,
        timeout=120,
    )


@pytest.mark.parametrize("python", PYTHONS)
def test_alert_action_labels_the_alert_results(python, splunk_app, scorer, splunkd, scored, tmp_path):
    """Stands for splunkd firing the custom alert action (alert_actions.conf, payload_format = json) on a saved
    search's results: each result is stored as a label by the search's owner; splunkd.log gets a summary."""
    before = stored(scorer)
    done = run_alert(python, splunk_app, in_own_index(scored[:4], python), tmp_path, splunkd.uri)
    assert done.returncode == 0, done.stderr
    assert stored(scorer) - before == 4
    assert b"INFO LogWarden alert action labelled 4 results" in done.stderr


def test_alert_action_with_bad_configuration_fails_clearly(splunk_app, splunkd, scored, tmp_path):
    """Stands for an alert action saved with a wrong verdict: a non-zero exit and an ERROR line in splunkd.log."""
    done = run_alert(PYTHONS[-1], splunk_app, scored[:1], tmp_path, splunkd.uri, value="maybe")
    assert done.returncode == 3 and b"ERROR" in done.stderr and b"maybe" in done.stderr


def test_alert_action_fired_twice_stores_each_label_once(splunk_app, scorer, splunkd, scored, tmp_path):
    """Stands for splunkd re-running an alert action (a retry after a timeout): nothing is stored twice."""
    run_alert(PYTHONS[-1], splunk_app, scored[4:7], tmp_path, splunkd.uri)
    before = stored(scorer)
    done = run_alert(PYTHONS[-1], splunk_app, scored[4:7], tmp_path, splunkd.uri)
    assert done.returncode == 0 and stored(scorer) == before
