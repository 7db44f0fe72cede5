"""A real syslog-ng 3.38 (Debian) ships a file of lines with its SCL ``elasticsearch-http()`` destination into
the Elasticsearch stand-in, which stands in for an Elasticsearch 9 cluster: the request it sends is the one
INTEGRATIONS.md §8.5 recorded, and a whole-request 503 is retried by syslog-ng until it is accepted (the
SCL's default ``workers(4)`` spread batches round-robin, so the retried batch comes back out of order)."""

from __future__ import annotations

import time

from peers.elasticsearch import ElasticsearchPeer
from peers.syslog_ng import SyslogNg, wait_for


def es_http_config(source_file, url: str, index: str) -> str:
    return f"""
options {{ stats-freq(0); }};
source s_in {{ file("{source_file}" flags(no-parse) follow-freq(0.1)); }};
destination d_es {{
    elasticsearch-http(url("{url}/_bulk") index("{index}") type("")
                       batch-lines(5) batch-timeout(200) time-reopen(1));
}};
log {{ source(s_in); destination(d_es); }};
"""


def test_syslog_ng_elasticsearch_http_ships_every_line_once_through_a_503(tmp_path):
    lines = [f"081109 2036{i:02d} 148 INFO dfs.DataNode: line {i} blk_{i % 3}" for i in range(12)]
    source = tmp_path / "in.log"
    source.write_text("\n".join(lines) + "\n")
    with ElasticsearchPeer() as es:
        es.fail_requests(503, times=1, path="/_bulk$")
        with SyslogNg(tmp_path, es_http_config(source, es.url, "logs-sng")) as sng:
            assert wait_for(lambda: es.count("logs-sng") >= len(lines)), sng.log_text()[-2000:]
            time.sleep(0.5)  # nothing more arrives
        messages = [s["MESSAGE"] for s in es.sources("logs-sng")]
        assert sorted(messages) == sorted(lines)
        bulks = es.bulk_requests()
        assert bulks[0].status == 503  # the same batch comes again later (its worker waits time-reopen())
        assert [b.ndjson() for b in bulks[1:] if b.ndjson() == bulks[0].ndjson()] == [bulks[0].ndjson()]
        first = bulks[1]
        assert first.method == "POST" and first.path == "/_bulk"
        assert first.header("content-type") == "application/x-ndjson"
        assert first.header("user-agent").startswith("syslog-ng 3.")
        assert first.ndjson()[0] == {"index": {"_index": "logs-sng"}} and "@timestamp" in first.ndjson()[1]
        assert first.body.endswith(b"\n")
