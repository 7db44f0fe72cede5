"""No loss, measured: documents shipped by the official ``elasticsearch`` client (9.x, ``streaming_bulk``
with its per-item 429 retries and the transport's 429/502/503/504 retries) through ``logwarden es-proxy``
into the Elasticsearch stand-in (standing in for an Elasticsearch 9 cluster), while the scoring server (its
own process) is killed with SIGKILL and started again, and while the cluster answers 429 and 503 for whole
requests and 429 for items. Every document must be indexed exactly once, scored or marked unscored.

``LOGWARDEN_NO_LOSS_DOCS`` sets the count (default 10,000 to keep the suite short; the issue's figure is
``LOGWARDEN_NO_LOSS_DOCS=100000 pytest tests/integrations/elasticsearch/test_es_no_loss.py``)."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

from elasticsearch import Elasticsearch, helpers
from es_support import LINES, BackgroundProxy

from logwarden.integrations.client import LogWardenClient

DOCS = int(os.environ.get("LOGWARDEN_NO_LOSS_DOCS", "10000"))


def ship(client: Elasticsearch, start: int, count: int) -> list[tuple[bool, dict]]:
    docs = (
        {"_index": "logs-noloss", "message": LINES[i % len(LINES)], "seq": i, "@timestamp": "2026-01-01T00:00:00Z"}
        for i in range(start, start + count)
    )
    return list(
        helpers.streaming_bulk(
            client, docs, chunk_size=500, max_retries=20, initial_backoff=0.05, max_backoff=1, raise_on_error=False
        )
    )


def start_scoring(process) -> None:
    """Start the scorer and wait until it scores (its first call loads the model's runtime)."""
    process.start()
    with LogWardenClient(process.target, budget_s=60) as client:
        deadline = time.monotonic() + 120
        while client.score([LINES[0]])[0].status != "scored":
            assert time.monotonic() < deadline, "the scorer never answered"


def test_no_document_lost_or_doubled_through_scorer_kills_and_cluster_overload(es, scorer_process):
    """A: all well (all scored); B: no scorer (all unscored); C: 503 and 429 for whole bulks, then 429 items
    (all scored); D: the scorer killed and restarted mid-stream while items get 429 (scored or unscored)."""
    start_scoring(scorer_process)
    quarter = DOCS // 4
    with (
        BackgroundProxy(
            upstream=es.url, scorer=scorer_process.target, score_budget_s=1.0, scorer_timeout_s=0.5
        ) as proxy,
        Elasticsearch(proxy.url, retry_on_status=(429, 502, 503, 504), max_retries=20, request_timeout=60) as client,
    ):
        results = ship(client, 0, quarter)  # A: all well
        scorer_process.kill()
        results += ship(client, quarter, quarter)  # B: no scorer
        start_scoring(scorer_process)
        es.fail_requests(503, times=3, path="/_bulk$")  # C: the cluster refuses whole bulks, then items
        es.fail_requests(429, times=3, path="/_bulk$")
        es.fail_items(429, times=quarter // 10)
        results += ship(client, 2 * quarter, quarter)

        def bounce() -> None:  # D: the scorer dies and comes back while bulks are in flight
            time.sleep(0.3)
            scorer_process.kill()
            time.sleep(1.0)
            start_scoring(scorer_process)

        bouncer = threading.Thread(target=bounce)
        bouncer.start()
        es.fail_items(429, seconds=1.0)
        results += ship(client, 3 * quarter, DOCS - 3 * quarter)
        bouncer.join()

    assert len(results) == DOCS and all(ok for ok, _ in results)
    sources = es.sources("logs-noloss")
    seqs = Counter(s["seq"] for s in sources)
    assert len(sources) == DOCS and sorted(seqs) == list(range(DOCS)) and max(seqs.values()) == 1
    status = {s["seq"]: s["logwarden"]["status"] for s in sources}
    reason = {s["seq"]: s["logwarden"]["reason"] for s in sources}
    assert set(status.values()) <= {"scored", "unscored"}
    assert {status[i] for i in range(quarter, 2 * quarter)} == {"unscored"}
    assert all(reason[i].startswith("scorer unavailable") for i in range(quarter, 2 * quarter))
    for phase in (range(quarter), range(2 * quarter, 3 * quarter)):  # up: scored, unless the machine is too slow
        assert "scored" in {status[i] for i in phase}, Counter(reason[i] for i in phase)
        assert all(reason[i].startswith("deadline exceeded") for i in phase if status[i] == "unscored")
    statuses = es.cluster.item_statuses
    assert statuses[429] >= quarter // 10 and statuses[201] == DOCS
    refused = [r.status for r in es.bulk_requests() if r.status in (429, 503)]
    assert Counter(refused) == {503: 3, 429: 3}
