"""``logwarden es-proxy`` as its own process, and a real shipper through it: syslog-ng 3.38's
``elasticsearch-http()`` (Debian) and the official ``elasticsearch`` client, into the Elasticsearch stand-in
(standing in for an Elasticsearch 9 cluster), scoring with a real LogWarden server."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

from elasticsearch import Elasticsearch
from es_support import LINES, BackgroundProxy, LogwardenProcess, free_port
from peers.syslog_ng import SyslogNg


def test_syslog_ng_ships_a_file_through_the_proxy_every_line_enriched_once(tmp_path, es, scorer):
    lines = LINES[:60]
    source = tmp_path / "in.log"
    source.write_text("\n".join(lines) + "\n")
    rules = [{"pattern": "logs-*", "message_field": "MESSAGE", "source_field": "HOST"}]
    with BackgroundProxy(upstream=es.url, scorer=scorer.target, rules=rules) as proxy:
        es.fail_requests(503, times=2, path="/_bulk$")  # syslog-ng retries the batch after time-reopen()
        config = f"""
options {{ stats-freq(0); }};
source s_in {{ file("{source}" flags(no-parse) follow-freq(0.1)); }};
destination d_es {{
    elasticsearch-http(url("{proxy.url}/_bulk") index("logs-syslog") type("")
                       batch-lines(16) batch-timeout(200) time-reopen(1));
}};
log {{ source(s_in); destination(d_es); }};
"""
        with SyslogNg(tmp_path, config) as sng:
            deadline = time.monotonic() + 60
            while es.count("logs-syslog") < len(lines) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)  # anything more would arrive now
            log = sng.log_text()
    sources = es.sources("logs-syslog")
    assert sorted(s["MESSAGE"] for s in sources) == sorted(lines), log[-2000:]
    assert all(s["logwarden"]["status"] == "scored" and "risk_score" in s["event"] for s in sources)
    assert [r.status for r in es.bulk_requests()].count(503) == 2


def test_the_proxy_process_serves_metrics_and_drains_on_sigterm(es, scorer):
    """SIGTERM while a bulk is in flight: the bulk is answered, then the process exits 0."""
    port, metrics_port = free_port(), free_port()
    args = ["es-proxy", "--port", str(port), "--upstream", es.url, "--scorer", scorer.target]
    args += ["--metrics-port", str(metrics_port), "--shutdown-grace-s", "30"]
    process = LogwardenProcess(args, "es proxy listening").start()
    try:
        url = f"http://127.0.0.1:{port}"
        with Elasticsearch(url) as client:
            assert not client.bulk(operations=[{"index": {"_index": "logs-p"}}, {"message": LINES[0]}])["errors"]
        ready = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz", timeout=10).read())
        assert ready["status"] == "ready"
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        assert 'logwarden_es_proxy_documents_total{outcome="scored"} 1.0' in metrics
        es.delay_s = 2.0
        answer: dict = {}

        def slow_bulk() -> None:
            with Elasticsearch(url, request_timeout=60) as client:
                answer.update(client.bulk(operations=[{"index": {"_index": "logs-p"}}, {"message": LINES[1]}]))

        sender = threading.Thread(target=slow_bulk)
        sender.start()
        deadline = time.monotonic() + 30
        while not [r for r in es.requests if r.path == "/_bulk" and r.status == 0] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.terminate() == 0
        sender.join(30)
        assert answer.get("errors") is False and es.count("logs-p") == 2
        assert [e["event"] for e in process.logs][-2:] == ["es proxy draining", "es proxy stopped"]
    finally:
        process.kill()
