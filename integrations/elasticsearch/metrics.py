"""Prometheus metrics of the ES proxy and the ES worker, each on a registry of its own.

Proxy: ``rate(logwarden_es_proxy_documents_total[1m])`` by ``outcome`` (scored, unscored, invalid, skipped)
is documents in; ``logwarden_es_proxy_items_total`` by upstream ``status`` is documents out;
``logwarden_es_proxy_bulk_seconds`` by ``stage`` (score, upstream, total) is latency. Worker: documents and
sessions scored, updates by status, labels, and ``logwarden_es_worker_lag_seconds`` (now − checkpoint).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _Metrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.registry = registry or CollectorRegistry()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class ProxyMetrics(_Metrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.requests = Counter(
            "logwarden_es_proxy_requests",
            "Requests relayed, by kind (bulk, other) and status",
            ["kind", "status"],
            registry=r,
        )
        self.documents = Counter(
            "logwarden_es_proxy_documents",
            "Bulk index/create documents in, by enrichment outcome (scored, unscored, invalid, skipped)",
            ["outcome"],
            registry=r,
        )
        self.items = Counter(
            "logwarden_es_proxy_items", "Bulk items out, by the cluster's per-item status", ["status"], registry=r
        )
        self.bulk_seconds = Histogram(
            "logwarden_es_proxy_bulk_seconds",
            "Bulk latency by stage (score, upstream, total)",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "logwarden_es_proxy_upstream_errors",
            "Requests the cluster did not answer, by reason",
            ["reason"],
            registry=r,
        )
        self.replays = Counter(
            "logwarden_es_proxy_replays", "Bulks seen before (a shipper's retry): enrichment reused", registry=r
        )
        self.retried_items = Counter(
            "logwarden_es_proxy_retried_items", "Items answered 429 and retried inside the proxy", registry=r
        )
        self.in_flight = Gauge("logwarden_es_proxy_in_flight", "Requests in progress", registry=r)


class WorkerMetrics(_Metrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.documents = Counter(
            "logwarden_es_worker_documents", "Documents read and scored, by outcome", ["outcome"], registry=r
        )
        self.sessions = Counter(
            "logwarden_es_worker_sessions",
            "Sessions judged, by state (closed, open) and verdict",
            ["state", "verdict"],
            registry=r,
        )
        self.updates = Counter(
            "logwarden_es_worker_updates",
            "Write-backs, by result (updated, noop, unchanged, conflict, failed)",
            ["result"],
            registry=r,
        )
        self.labels = Counter(
            "logwarden_es_worker_labels", "Labels forwarded, by result (sent, refused, marked)", ["result"], registry=r
        )
        self.passes = Counter("logwarden_es_worker_passes", "Passes, by outcome", ["outcome"], registry=r)
        self.lag = Gauge("logwarden_es_worker_lag_seconds", "Now minus the checkpoint's watermark", registry=r)
        self.pass_seconds = Histogram(
            "logwarden_es_worker_pass_seconds", "Pass duration", buckets=LATENCY_BUCKETS, registry=r
        )


def serve_ops(metrics: _Metrics, port: int, ready: Callable[[], tuple[bool, dict]], host: str = "127.0.0.1"):
    """``/metrics``, ``/healthz`` (200 while the process runs) and ``/readyz`` (``ready()``: 200 or 503) on a
    daemon thread, for a command without an event loop (the worker); returns the server (``.server_port``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, content_type, status = *metrics.render(), 200
            elif self.path in ("/healthz", "/readyz"):
                ok, detail = (True, {"status": "ok"}) if self.path == "/healthz" else ready()
                body, content_type, status = json.dumps(detail).encode(), "application/json", 200 if ok else 503
            else:
                body, content_type, status = b"not found", "text/plain", 404
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # no access log on stderr
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="logwarden-ops", daemon=True).start()
    return server
