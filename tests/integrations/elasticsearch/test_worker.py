"""``logwarden es-worker`` with the official ``elasticsearch`` client (9.x) as its client, against the
Elasticsearch stand-in (tests/peers/elasticsearch.py, standing in for an Elasticsearch 9 cluster), scoring
with a real LogWarden server: session verdicts written back, open sessions carried between passes, a killed
back-fill resumed, data-stream backing indices, the pending pipeline, and labels from Kibana."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch, helpers
from es_support import LogwardenProcess, free_port
from peers.elasticsearch import ElasticsearchPeer
from support import engine_verdicts, sessions_by_block

from logwarden.core.labels.sqlite import SqliteLabelStore
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer
from logwarden.integrations.client import LogWardenClient
from logwarden.integrations.elasticsearch.checkpoint import CheckpointStore
from logwarden.integrations.elasticsearch.labels import LabelForwarder
from logwarden.integrations.elasticsearch.search import iso
from logwarden.integrations.elasticsearch.settings import WorkerSettings
from logwarden.integrations.elasticsearch.worker import EsWorker, ModelRule, ScorerTrouble

REPO = Path(__file__).resolve().parents[3]
BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def index_sessions(es_url: str, sessions: dict[str, list[str]], index: str = "logs-hdfs", op: str = "index") -> int:
    """Index the sessions' lines interleaved in time (session i starts i × 2 s in, events 100 ms apart)."""
    docs = []
    for i, lines in enumerate(sessions.values()):
        for j, line in enumerate(lines):
            at = BASE_MS + i * 2000 + j * 100
            docs.append((at, {"_op_type": op, "_index": index, "message": line, "@timestamp": iso(at)}))
    docs.sort(key=lambda d: d[0])
    with Elasticsearch(es_url) as client:
        helpers.bulk(client, (d for _, d in docs), chunk_size=500)
    return len(docs)


def worker(es_url: str, scorer_target: str, now_ms: int, **overrides) -> EsWorker:
    settings = WorkerSettings(
        es_url=es_url,
        scorer=scorer_target,
        index=overrides.pop("index", "logs-hdfs"),
        lag_s=0,
        idle_gap_s=30,
        lookback_s=7 * 86400,
        page_size=overrides.pop("page_size", 200),
        metrics_port=None,
        **overrides,
    )
    es = settings.es_client()
    scorer = LogWardenClient(scorer_target, **settings.scorer_options(settings.score_budget_s))
    return EsWorker(settings, es, scorer, clock=lambda: now_ms / 1000)


def verdicts_by_block(es: ElasticsearchPeer, target: str = "logs-hdfs") -> dict[str, set]:
    out: dict[str, set] = {}
    for source in es.sources(target):
        session = source["logwarden"].get("session", {})
        out.setdefault(source["logwarden"]["session_key"], set()).add((session.get("state"), session.get("verdict")))
    return out


@pytest.fixture(scope="module")
def sessions():
    return sessions_by_block(60, seed=21, anomaly_rate=0.3)


@pytest.fixture(scope="module")
def expected(model_root, sessions):
    return {k: ("anomalous" if v.anomalous else "normal") for k, v in engine_verdicts(model_root, sessions).items()}


@pytest.mark.parametrize("keys", ["local", "server"])
def test_a_pass_writes_the_engines_whole_session_verdicts(es, scorer, sessions, expected, keys, monkeypatch):
    """Documents without a session key get the model's (the blk_ id in the line: found here with the model's
    rule, or by the server when the worker cannot apply the rule itself); every complete session's verdict
    is the engine's own for the whole session, on every one of its documents."""
    if keys == "server":
        monkeypatch.setattr(ModelRule, "of", classmethod(lambda cls, scorer, model: None))
    n = index_sessions(es.url, sessions)
    end = BASE_MS + 3_600_000
    assert worker(es.url, scorer.target, end).cycle() == n
    found = verdicts_by_block(es)
    assert found == {block: {("closed", verdict)} for block, verdict in expected.items()}
    assert "anomalous" in set(expected.values()) and "normal" in set(expected.values())
    checkpoint = CheckpointStore(Elasticsearch(es.url), "logwarden-checkpoints", "window:logs-hdfs").load()
    assert checkpoint.watermark_ms == end and checkpoint.open == []
    assert worker(es.url, scorer.target, end + 1000).cycle() == 0  # nothing new: nothing written
    assert {h["_version"] for h in es.hits("logs-hdfs")} == {2}


def test_the_model_rule_applied_here_finds_the_servers_session_keys(scorer, sessions):
    lines = [*[line for block in sessions.values() for line in block][:300], "a line with no block id"]
    with LogWardenClient(scorer.target) as client:
        rule = ModelRule.of(client, "")
        assert rule is not None and rule.rule.kind == "key"
        found = client.score(lines, "sequence", partial_sessions=True)
    assert [rule.key(line) or "" for line in lines] == [
        r.session_key if r.session_key != r.source else "" for r in found
    ]
    assert ModelRule.of(LogWardenClient(scorer.target), "hdfs-route") is None  # routes: the server decides


def test_open_sessions_are_carried_to_the_pass_that_sees_their_end(es, scorer, sessions, expected):
    """A pass ending mid-traffic writes event fields and state open; later passes judge each session whole."""
    index_sessions(es.url, sessions)
    middle = BASE_MS + 60_000  # sessions starting after ~30 s are still open, some are cut in two
    w = worker(es.url, scorer.target, middle, pass_docs=150)
    w.cycle()
    states = {s["logwarden"]["session"]["state"] for s in es.sources("logs-hdfs") if "logwarden" in s}
    assert states == {"open", "closed"}
    w.clock = lambda: (BASE_MS + 3_600_000) / 1000
    w.cycle()
    assert verdicts_by_block(es) == {block: {("closed", verdict)} for block, verdict in expected.items()}


class KilledAfterWrites(CheckpointStore):
    """A checkpoint store whose n-th save never happens: the worker dies after a pass's writes."""

    def __init__(self, *args, die_at: int) -> None:
        super().__init__(*args)
        self.saves, self.die_at = 0, die_at

    def save(self, checkpoint, now_iso):
        self.saves += 1
        if self.saves == self.die_at:
            raise SystemExit("killed")
        return super().save(checkpoint, now_iso)


def test_a_backfill_killed_between_writes_and_checkpoint_resumes_without_gaps_or_double_writes(scorer, sessions):
    """The same back-fill run once whole and once killed after a pass's writes (before its checkpoint): the
    documents end identical, each written as many times (its _version), none missed."""
    end = BASE_MS + 3_600_000
    finals = []
    for die_at in (None, 3):
        with ElasticsearchPeer() as es:
            index_sessions(es.url, sessions)
            w = worker(es.url, scorer.target, end, pass_docs=120)
            if die_at:
                store_id = f"{w.s.checkpoint_id()}:backfill:{BASE_MS}-{end}"
                killed = KilledAfterWrites(w.es, w.s.checkpoint_index, store_id, die_at=die_at)
                killed.ensure_index()
                with pytest.raises(SystemExit):
                    for _ in w.passes(killed, killed.load(), BASE_MS, end, window=True):
                        pass
                assert 0 < CheckpointStore(w.es, w.s.checkpoint_index, store_id).load().watermark_ms < end
                w = worker(es.url, scorer.target, end, pass_docs=120)
            w.backfill(BASE_MS, end)
            finals.append(
                {(h["_index"], h["_source"]["message"], h["_source"]["@timestamp"]): h for h in es.hits("logs-hdfs")}
            )
    whole, resumed = finals
    assert whole.keys() == resumed.keys()
    for key, hit in whole.items():
        assert resumed[key]["_source"] == hit["_source"]
        assert resumed[key]["_version"] == hit["_version"]
    assert all(h["_source"]["logwarden"]["session"]["state"] == "closed" for h in whole.values())


def test_the_cli_backfill_killed_with_sigkill_resumes(tmp_path, es, scorer, sessions):
    """``logwarden es-worker --backfill`` as its own process, killed with SIGKILL mid-run and started again,
    ends where an uninterrupted back-fill (in-process, same pass size) ends: same documents, same versions."""
    n = index_sessions(es.url, sessions)
    end = BASE_MS + 3_600_000
    es.delay_s = 0.02  # a slower cluster, so the kill lands mid-run
    args = [sys.executable, "-m", "logwarden.core.cli", "es-worker", "--backfill", iso(BASE_MS), iso(end)]
    args += ["--es-url", es.url, "--scorer", scorer.target, "--index", "logs-hdfs", "--pass-docs", "100"]
    args += ["--idle-gap-s", "30", "--metrics-port", "null", "--no-progress", "--page-size", "100"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
        h["_source"].get("watermark_ms") for h in es.hits("logwarden-checkpoints")
    ):
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    marks = [h["_source"]["watermark_ms"] for h in es.hits("logwarden-checkpoints")]
    assert marks and marks[0] < end, "the worker finished before it could be killed"
    es.delay_s = 0
    second = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    with ElasticsearchPeer() as reference:
        index_sessions(reference.url, sessions)
        worker(reference.url, scorer.target, end, pass_docs=100).backfill(BASE_MS, end)
        expected = {(h["_source"]["message"], h["_source"]["@timestamp"]): h for h in reference.hits("logs-hdfs")}
    found = {(h["_source"]["message"], h["_source"]["@timestamp"]): h for h in es.hits("logs-hdfs")}
    assert len(found) == n and found.keys() == expected.keys()
    for key, hit in expected.items():
        assert (found[key]["_source"], found[key]["_version"]) == (hit["_source"], hit["_version"])


def test_data_stream_backing_indices_are_written_with_if_seq_no(es, scorer, sessions, expected):
    """Backing indices take ``index`` with if_seq_no/if_primary_term; a concurrent change (409) is re-read."""
    Elasticsearch(es.url).indices.put_index_template(name="ds", index_patterns=["logs-ds-*"], data_stream={})
    index_sessions(es.url, sessions, index="logs-ds-hdfs", op="create")
    es.fail_items(409, times=2, ops=("index",))
    worker(es.url, scorer.target, BASE_MS + 3_600_000, index="logs-ds-*").cycle()
    assert verdicts_by_block(es, "logs-ds-hdfs") == {block: {("closed", v)} for block, v in expected.items()}
    writes = [r for r in es.bulk_requests() if r.ndjson() and "index" in r.ndjson()[0]]
    actions = [line for r in writes for line in r.ndjson()[::2]]
    assert all(a["index"]["_index"].startswith(".ds-logs-ds-hdfs-") and "if_seq_no" in a["index"] for a in actions)


def test_pending_mode_scores_what_the_shipped_pipeline_marked(es, scorer, sessions, expected):
    """plugins/elasticsearch's pending pipeline as the final pipeline: documents indexed directly come in
    pending; the worker in pending mode scores them and they stop being pending."""
    client = Elasticsearch(es.url)
    pipeline = json.loads((REPO / "plugins/elasticsearch/pipelines/logwarden-pending.json").read_text())
    client.ingest.put_pipeline(id="logwarden-pending", **pipeline)
    client.indices.put_index_template(
        name="pending", index_patterns=["logs-*"], template={"settings": {"index.final_pipeline": "logwarden-pending"}}
    )
    index_sessions(es.url, sessions)
    assert {s["logwarden"]["status"] for s in es.sources("logs-hdfs")} == {"pending"}
    worker(es.url, scorer.target, BASE_MS + 3_600_000, mode="pending").cycle()
    assert {s["logwarden"]["status"] for s in es.sources("logs-hdfs")} == {"scored"}
    assert verdicts_by_block(es) == {block: {("closed", v)} for block, v in expected.items()}


def test_scorer_down_the_pass_writes_nothing(es, sessions):
    index_sessions(es.url, dict(list(sessions.items())[:5]))
    w = worker(es.url, "127.0.0.1:1", BASE_MS + 3_600_000, score_budget_s=0.5)
    with pytest.raises(ScorerTrouble):
        w.cycle()
    assert all("logwarden" not in s for s in es.sources("logs-hdfs"))
    assert CheckpointStore(w.es, w.s.checkpoint_index, w.s.checkpoint_id()).load().watermark_ms is None


@pytest.fixture()
def label_server(model_root, tmp_path):
    db = tmp_path / "labels.sqlite"
    with BackgroundServer(load_settings(None, model_path=model_root, grpc_port=0, label_db=db)) as bg:
        yield bg, db


def labelled(es_url: str, index: str = "logs-hdfs") -> list[str]:
    client = Elasticsearch(es_url)
    hits = client.search(index=index, size=3, sort=[{"@timestamp": "asc"}])["hits"]["hits"]
    values = ["anomaly", "normal", "bogus"]
    for hit, value in zip(hits, values, strict=True):
        client.update(index=index, id=hit["_id"], doc={"logwarden": {"label": value, "label_by": "ann"}})
    return [h["_id"] for h in hits]


def test_labels_are_sent_with_external_ids_and_marked_sent(es, label_server, sessions):
    """Labels set in Kibana reach the label store once per run; accepted ones are marked sent, a bad one is
    marked with its error; a second run sends nothing."""
    server, db = label_server
    index_sessions(es.url, dict(list(sessions.items())[:3]))
    ids = labelled(es.url)
    w = worker(es.url, server.target, BASE_MS)
    forwarder = LabelForwarder(w.s, w.es, w.scorer)
    assert forwarder.forward() == 2
    docs = {h["_id"]: h["_source"]["logwarden"] for h in es.hits("logs-hdfs") if h["_id"] in ids}
    assert docs[ids[0]]["label_sent"] == "anomaly" and docs[ids[0]]["label_id"]
    assert docs[ids[1]]["label_sent"] == "normal"
    assert "must be anomaly or normal" in docs[ids[2]]["label_error"]
    assert forwarder.forward() == 0
    with SqliteLabelStore(db) as store:
        assert store.count() == 2


def test_a_label_changed_in_flight_is_not_marked_and_goes_again(es, label_server, sessions):
    server, _ = label_server
    index_sessions(es.url, dict(list(sessions.items())[:3]))
    ids = labelled(es.url)
    w = worker(es.url, server.target, BASE_MS)
    forwarder = LabelForwarder(w.s, w.es, w.scorer)
    es.fail_items(409, ops=("update",), match=lambda item: item.id == ids[0])  # changed between read and mark
    assert forwarder.forward() == 1
    assert forwarder.forward() == 1  # the unmarked one is sent again
    assert forwarder.forward() == 0


def test_a_label_sent_twice_is_stored_once(es, label_server, sessions):
    server, db = label_server
    index_sessions(es.url, dict(list(sessions.items())[:3]))
    ids = labelled(es.url)
    w = worker(es.url, server.target, BASE_MS)
    forwarder = LabelForwarder(w.s, w.es, w.scorer)
    es.fail_items(500, times=2, ops=("update",), match=lambda item: item.id in ids[:2])  # sent, not marked
    assert forwarder.forward() == 0
    assert forwarder.forward() == 2
    with SqliteLabelStore(db) as store:
        assert store.count() == 2


def test_train_from_es_reads_an_index_oldest_first_without_labelled_anomalies(tmp_path, es, sessions):
    """``logwarden train --from-es``: the lines come from the documents; labelled anomalies are left out."""
    from logwarden.core.cli import main

    index_sessions(es.url, sessions)
    ids = labelled(es.url)
    out = tmp_path / "model"
    args = ["train", "--from-es", "logs-hdfs", "--es-url", es.url, "--format", "hdfs", "--out", str(out)]
    assert main([*args, "--epochs", "2", "--quiet", "--no-onnx"]) == 0
    searches = [r.json() for r in es.requests if r.path == "/_search"]
    assert searches and all(
        s["query"]["bool"]["must_not"] == [{"terms": {"logwarden.label": ["anomaly", "anomalous"]}}] for s in searches
    )
    config = json.loads(next(out.glob("v*/config.json")).read_text())
    assert config["data"]["events"] == sum(len(v) for v in sessions.values()) - 1  # the one labelled anomaly
    assert len(ids) == 3


def test_the_worker_process_reports_ready_and_stops_on_sigterm(es, scorer, sessions):
    """``logwarden es-worker`` following an index: /readyz once a pass went through, metrics with the lag,
    SIGTERM ends it after the current pass with exit code 0."""
    index_sessions(es.url, dict(list(sessions.items())[:5]))
    metrics_port = free_port()
    args = ["es-worker", "--es-url", es.url, "--scorer", scorer.target, "--index", "logs-hdfs", "--lag-s", "0"]
    args += ["--lookback-s", str(400 * 86400), "--poll-s", "0.2", "--metrics-port", str(metrics_port)]
    process = LogwardenProcess(args, "es worker pass").start()
    try:
        base = f"http://127.0.0.1:{metrics_port}"
        deadline = time.monotonic() + 30
        while json.loads(urllib.request.urlopen(base + "/healthz", timeout=5).read())["status"] != "ok":
            assert time.monotonic() < deadline
        while True:
            try:
                ready = urllib.request.urlopen(base + "/readyz", timeout=5)
                break
            except urllib.error.HTTPError as exc:
                assert exc.code == 503 and time.monotonic() < deadline
                time.sleep(0.1)
        assert json.loads(ready.read())["status"] == "ok"
        metrics = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        assert (
            "logwarden_es_worker_lag_seconds" in metrics
            and 'logwarden_es_worker_passes_total{outcome="done"}' in metrics
        )
        assert process.terminate() == 0
        assert "es worker stopping after the current pass" in [e.get("event") for e in process.logs]
    finally:
        process.kill()
    assert all(s["logwarden"]["session"]["state"] == "closed" for s in es.sources("logs-hdfs"))
