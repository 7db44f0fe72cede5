"""``| anomalyscore`` run the way splunkd runs it: the BUILT app's script as a subprocess under Splunk's
Pythons (3.9 for Splunk 9, 3.13 for Splunk 10, where this machine has them), driven with SCP v2 frames
(tests/plugins/splunk/splunk_scp.py stands in for splunkd's search process; splunkd_peer.py for its REST API),
against a real LogWarden server on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
import splunk_scp as scp
from splunk_app_support import REPO, SESSION_KEY, store_settings
from splunkd_peer import Splunkd
from support import engine_verdicts, sessions_by_block

PYTHONS = scp.interpreters()
FIELDS = (
    "logwarden_score",
    "logwarden_verdict",
    "logwarden_reason",
    "logwarden_reason_code",
    "logwarden_template",
    "logwarden_template_id",
    "logwarden_expected",
    "logwarden_session_verdict",
    "logwarden_model_version",
    "logwarden_status",
)


def hdfs_rows(sessions: dict[str, list[str]], host: str = "hdfs-1") -> list[dict]:
    """The sessions' lines as Splunk events, in log order (oldest first), with _time from the HDFS timestamp."""
    lines = sorted(((line[:13], n, line) for lines in sessions.values() for n, line in enumerate(lines)))
    rows = []
    for k, (stamp, _, line) in enumerate(lines):
        when = datetime.strptime("20" + stamp, "%Y%m%d %H%M%S").replace(tzinfo=UTC).timestamp()
        rows.append(
            {
                "_time": f"{when:.3f}",
                "_raw": line,
                "host": host,
                "index": "hdfs",
                "sourcetype": "hdfs",
                "splunk_server": "idx-1",
                "_cd": f"0:{k}",
            }
        )
    return rows


def chunks_of(rows: list[dict], size: int) -> list[list[dict]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def search(python, app, args, chunks, dispatch_dir, env, splunkd_uri="https://127.0.0.1:1"):
    return scp.run_search(
        python,
        app / "bin" / "anomalyscore.py",
        args,
        chunks,
        dispatch_dir,
        env,
        splunkd_uri=splunkd_uri,
        session_key=SESSION_KEY,
    )


@pytest.fixture(scope="module")
def sessions() -> dict[str, list[str]]:
    return sessions_by_block(16, seed=41, anomaly_rate=0.3)


@pytest.fixture(scope="module")
def engine(model_root, sessions):
    return engine_verdicts(model_root, sessions)


@pytest.mark.parametrize("python", PYTHONS)
def test_protocol_frames_multibyte_multivalue_empty_chunk(python, splunk_app, dispatch_dir, command_env):
    """Stands for splunkd's search process driving a chunked=true command (SCP v2): getinfo first, one reply per
    execute chunk, no rows while finished=false (sequence mode holds them), byte-counted lengths with multibyte
    _raw, __mv_ fields round-trip, an empty chunk is answered; with no reachable splunkd the settings are
    unreadable, so every row passes unscored with ONE warning and no error."""
    rows = [
        {"_time": "3.0", "_raw": "ünïcødé € blk_1 ✓", "host": "a", "tags": ["x", "y$z"]},
        {"_time": "2.0", "_raw": "world blk_1", "host": ["b", "c"]},
        {"_time": "1.0", "_raw": "日本語のログ blk_2", "host": "a"},
    ]
    first, replies, code = search(python, splunk_app, [], [rows[:2], [], rows[2:]], dispatch_dir, command_env)
    assert first.metadata["type"] == "events" and code == 0
    assert len(replies) == 3
    assert [r.finished for r in replies] == [False, False, True]
    assert replies[0].rows == [] and replies[1].rows == []
    final = replies[-1]
    assert final.header_lengths[1] == len(final.body) and len(final.body) > len(final.body.decode())  # bytes
    assert [r["_raw"] for r in final.rows] == [r["_raw"] for r in rows]  # input order
    assert final.rows[0]["tags"] == ["x", "y$z"] and final.rows[1]["host"] == ["b", "c"]
    assert all(r["logwarden_status"] == "unscored" for r in final.rows)
    assert all(set(FIELDS) <= set(r) for r in final.rows)
    assert all("settings unreadable" in r["logwarden_reason"] for r in final.rows)
    assert [m[0] for r in replies for m in r.messages] == ["WARN"]


@pytest.mark.parametrize("python", PYTHONS)
def test_bad_option_is_a_clear_error(python, splunk_app, dispatch_dir, command_env):
    """Stands for a user typing a wrong option in SPL: splunkd shows the ERROR from the getinfo reply."""
    first, replies, code = search(python, splunk_app, ["mode=batch"], [], dispatch_dir, command_env)
    assert code == 1 and replies == []
    assert ("ERROR", "Illegal value: mode=batch") in first.messages
    first, _, code = search(python, splunk_app, ["window=5"], [], dispatch_dir, command_env)
    assert code == 1 and ("ERROR", "Unrecognized option: window=5") in first.messages


@pytest.mark.parametrize("python", PYTHONS)
def test_verdicts_equal_the_engine_with_newest_first_chunks(
    python, splunk_app, splunkd, sessions, engine, dispatch_dir, command_env
):
    """Stands for a search returning events newest first in chunks of a few rows (sessions spread over several
    chunks, as splunkd sends them): every session's verdict equals the engine's offline verdict for the whole
    session, so no normal session cut by a chunk boundary is flagged; rows come out in input order, all scored."""
    rows = hdfs_rows(sessions)[::-1]  # Splunk's default order: newest first
    chunks = chunks_of(rows, 7)
    assert len(chunks) > 5
    _, replies, code = search(python, splunk_app, [], chunks, dispatch_dir, command_env, splunkd.uri)
    assert code == 0 and len(replies) == len(chunks)
    out = replies[-1].rows
    assert [r["_cd"] for r in out] == [r["_cd"] for r in rows]
    assert all(r["logwarden_status"] == "scored" for r in out), {r["logwarden_reason"] for r in out}
    assert not [m for r in replies for m in r.messages]
    by_block: dict[str, set[str]] = {}
    for r in out:
        by_block.setdefault(r["logwarden_session_key"], set()).add(r["logwarden_session_verdict"])
    assert set(by_block) == set(sessions)
    for block, verdicts in by_block.items():
        assert verdicts == {"anomalous" if engine[block].anomalous else "normal"}, block
    # a normal session spread over several chunks is still normal
    chunk_of = {r["_cd"]: n for n, c in enumerate(chunks) for r in c}
    spread = [
        b for b in sessions if not engine[b].anomalous and len({chunk_of[r["_cd"]] for r in out if b in r["_raw"]}) > 2
    ]
    assert spread, "the test data must cut a normal session over chunks"
    scored = next(r for r in out if r["logwarden_verdict"])
    assert (
        scored["logwarden_template_id"] and scored["logwarden_model_version"] and float(scored["logwarden_score"]) >= 0
    )
    assert isinstance(next(r for r in out if r["logwarden_expected"])["logwarden_expected"], (list, str))


def test_stream_mode_scores_each_chunk_at_once(splunk_app, splunkd, sessions, dispatch_dir, command_env):
    """Stands for a real-time search (mode=stream): each chunk's rows come back scored in its own reply."""
    rows = hdfs_rows(sessions)[:40]
    chunks = chunks_of(rows, 15)
    _, replies, code = search(PYTHONS[-1], splunk_app, ["mode=stream"], chunks, dispatch_dir, command_env, splunkd.uri)
    assert code == 0
    assert [len(r.rows) for r in replies] == [len(c) for c in chunks]
    out = [row for r in replies for row in r.rows]
    assert [r["_cd"] for r in out] == [r["_cd"] for r in rows]
    assert all(r["logwarden_status"] == "scored" and r["logwarden_verdict"] for r in out), [
        (r["logwarden_status"], r.get("logwarden_reason")) for r in out
    ][:2]


def test_full_buffer_scores_partial_sessions_and_says_so(splunk_app, splunkd, sessions, dispatch_dir, command_env):
    """Stands for a search larger than the buffer: the held rows are scored at once as partial sessions, the
    job inspector says so, and every row still comes out, once, in input order."""
    rows = hdfs_rows(sessions)[::-1]
    chunks = chunks_of(rows, 20)
    _, replies, code = search(
        PYTHONS[-1], splunk_app, ["max_buffer=50"], chunks, dispatch_dir, command_env, splunkd.uri
    )
    assert code == 0
    out = [row for r in replies for row in r.rows]
    assert [r["_cd"] for r in out] == [r["_cd"] for r in rows]
    assert all(r["logwarden_status"] == "scored" for r in out)
    notes = [text for r in replies for kind, text in r.messages if kind == "WARN"]
    assert notes and all("partial sessions" in n for n in notes)
    assert sum(1 for r in replies if r.rows) >= 3


def test_sessions_cut_by_the_buffer_are_open_and_their_ends_not_judged(
    splunk_app, splunkd, sessions, engine, dispatch_dir, command_env
):
    """Stands for a search larger than the buffer cutting normal sessions: the server reports each cut session
    open and judges neither its end nor its template set, so no normal session is flagged for those."""
    rows = hdfs_rows(sessions)[::-1]
    _, replies, _ = search(
        PYTHONS[-1], splunk_app, ["max_buffer=50"], chunks_of(rows, 20), dispatch_dir, command_env, splunkd.uri
    )
    replies_of: dict[str, set[int]] = {}
    for n, reply in enumerate(replies):
        for r in reply.rows:
            replies_of.setdefault(r["logwarden_session_key"], set()).add(n)
    cut = [b for b, seen in replies_of.items() if len(seen) > 1 and not engine[b].anomalous]
    assert cut, "the test data must cut a normal session at the buffer bound"
    for reply in replies:
        for r in reply.rows:
            if r["logwarden_session_key"] in cut:
                assert r["logwarden_session_open"] == "1"
                assert r["logwarden_session_reason_code"] not in ("ended_early", "unexpected_end", "rare_combination")


def test_unreadable_settings_pass_rows_unscored(splunk_app, scorer, dispatch_dir, command_env):
    """Stands for a role without list_storage_passwords: splunkd answers 403, rows pass unscored, one warning
    names the capability."""
    rows = [{"_time": "1", "_raw": "a blk_1", "host": "h"}]
    with Splunkd(SESSION_KEY) as peer:
        store_settings(peer, scorer.url)
        peer.refuse_reads = True
        _, replies, code = search(PYTHONS[-1], splunk_app, [], [rows], dispatch_dir, command_env, peer.uri)
    assert code == 0
    assert replies[0].rows[0]["logwarden_status"] == "unscored"
    (kind, text), *more = replies[0].messages
    assert kind == "WARN" and "list_storage_passwords" in text and not more


def test_wrong_token_passes_rows_unscored(splunk_app, scorer, dispatch_dir, command_env):
    """Stands for a setup page saved with a wrong bearer token: the scorer refuses, rows pass unscored."""
    rows = [{"_time": "1", "_raw": "a blk_1", "host": "h"}]
    with Splunkd(SESSION_KEY) as peer:
        store_settings(peer, scorer.url, token="wrong")
        _, replies, code = search(PYTHONS[-1], splunk_app, [], [rows], dispatch_dir, command_env, peer.uri)
    assert code == 0 and replies[0].rows[0]["logwarden_status"] == "unscored"
    assert "refused" in replies[0].rows[0]["logwarden_reason"] and len(replies[0].messages) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    import urllib.request

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, "the scoring server exited early"
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the scoring server did not become ready")


def test_server_killed_mid_search_every_row_comes_out(model_root, splunk_app, sessions, dispatch_dir, command_env):
    """Stands for the scoring server dying (kill -9) during a real-time search: the rows scored before come out
    scored, every later row comes out unscored with the reason, one warning, no error, no row lost."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "logwarden.core.cli", "serve", "--model-path", str(model_root), "--grpc-port", "0",
         "--http-port", str(port), "--log-level", "warning"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(url, proc)
        rows = hdfs_rows(sessions)[:60]
        chunks = chunks_of(rows, 20)
        with Splunkd(SESSION_KEY) as peer:
            store_settings(peer, url, token="")
            command = scp.CommandProcess(PYTHONS[-1], splunk_app / "bin" / "anomalyscore.py", command_env)
            command.send(scp.getinfo(["mode=stream"], dispatch_dir, splunkd_uri=peer.uri, session_key=SESSION_KEY))
            assert command.reply().metadata["type"] == "events"
            command.send(scp.execute(chunks[0], finished=False))
            before = command.reply()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
            command.send(scp.execute(chunks[1], finished=False))
            during = command.reply()
            command.send(scp.execute(chunks[2], finished=True))
            after = command.reply()
            code, _ = command.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0
    assert [r["_cd"] for x in (before, during, after) for r in x.rows] == [r["_cd"] for r in rows]
    assert all(r["logwarden_status"] == "scored" for r in before.rows)
    later = during.rows + after.rows
    assert all(r["logwarden_status"] == "unscored" and "unavailable" in r["logwarden_reason"] for r in later)
    messages = before.messages + during.messages + after.messages
    assert [m[0] for m in messages] == ["WARN"]
