"""A real third-party shipper drives the server: Debian's syslog-ng 3.38 (``syslog-ng-core`` and
``syslog-ng-mod-http``, started on loopback by ``peers.syslog_ng``) tails a file and posts its lines to
``/v1/score`` as NDJSON with the ``http()`` destination shipped in ``plugins/syslog-ng/logwarden.conf``
(``format-json`` records, ``delimiter("\\n")``, a bearer token; batches of 5 here). The first batch meets
a transient 429, which syslog-ng retries; every line is scored exactly once."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest
from peers.syslog_ng import SyslogNg, wait_for
from support import sessions_by_block

from logwarden.grpc_server.gateway.app import HttpGateway
from logwarden.grpc_server.service.errors import Overloaded
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer

TOKEN = "syslog-ng-t0ken"
PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "syslog-ng" / "logwarden.conf"


def http_config(source_file, port: int) -> str:
    """The shipped destination (plugins/syslog-ng/logwarden.conf) with this server's URL and token, small
    batches and a short retry interval, fed from a file."""
    shipped = PLUGIN.read_text()
    shipped = shipped.replace('"http://127.0.0.1:8080"', f'"http://127.0.0.1:{port}"')
    shipped = shipped.replace('"CHANGE-ME"', f'"{TOKEN}"').replace("batch-lines(500)", "batch-lines(5)")
    shipped = shipped.replace("batch-timeout(1000)", "batch-timeout(200)").replace("time-reopen(2)", "time-reopen(1)")
    return f"""
options {{ stats-freq(0); }};
{shipped}
source s_in {{ file("{source_file}" flags(no-parse) follow-freq(0.1)); }};
log {{ source(s_in); destination(d_logwarden); }};
"""


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


@pytest.fixture
def server(model_root):
    settings = load_settings(
        None, model_path=model_root, grpc_port=0, http_port=0, batch_wait_ms=2, auth_tokens=[TOKEN]
    )
    with BackgroundServer(settings) as bg:
        bg.http = next(c for c in bg.server.companions if isinstance(c, HttpGateway)).port
        yield bg


def test_syslog_ng_http_ships_a_file_and_every_line_is_scored_once(server, tmp_path):
    lines = [line for block in sessions_by_block(4, seed=9).values() for line in block]
    lines[3] += ' "quoted" ünïcode \\ backslash'  # format-json escapes what it must
    source = tmp_path / "in.log"
    source.write_text("\n".join(lines) + "\n")

    service = server.server.service
    original = service.score
    scored: list[str] = []
    sources: set[str] = set()
    refused = []

    async def score(events, mode="stream", **options):  # a test hook: the first batch meets a full queue
        if not refused:
            refused.append(len(events))
            raise Overloaded("scoring queue full (test)")
        out = await original(events, mode, **options)
        scored.extend(e.message for e, r in zip(events, out.results, strict=True) if r.status == "scored")
        sources.update(e.source for e in events)
        return out

    service.score = score
    metrics = server.server.metrics
    with SyslogNg(tmp_path, http_config(source, server.http)) as sng:
        assert wait_for(lambda: len(scored) >= len(lines)), sng.log_text()[-3000:]
        time.sleep(1.5)  # past batch-timeout and time-reopen: nothing more arrives
        log = sng.log_text()
    assert Counter(scored) == Counter(lines)  # every line once: the refused batch came again, once
    assert refused == [5] and "trying again" in log
    text, _ = metrics.render()
    text = text.decode()
    assert metric(text, "logwarden_http_requests_total", route="/v1/score", status="429") == 1
    assert metric(text, "logwarden_http_requests_total", route="/v1/score", status="200") >= len(lines) / 5
    assert metric(text, "logwarden_events_total", status="scored") == len(lines)
    assert metric(text, "logwarden_events_total", status="invalid") == 0
    assert len(sources) == 1 and "" not in sources  # the source is syslog-ng's HOST (the record's "host")
