"""The Elasticsearch integration's figures on this machine: es-proxy throughput with the real scorer and with
scoring off, the latency it adds to bulks at an offered rate, and the es-worker's back-fill rate.

    python benchmarks/elasticsearch.py [--records N] [--seconds S] [--offered DOCS_PER_S] [--bulk 500]
                                       [--concurrency C] [--backfill-docs N] [--model DIR] [--phases ...]

Every part is its own process: ``logwarden serve`` (a small model trained on generated HDFS-style logs
unless ``--model``), the Elasticsearch stand-in (``tests/peers/elasticsearch.py``, sources stored unread),
``logwarden es-proxy`` twice (scoring on, and ``--no-score``); this process generates the load with
aiohttp: bulks of ``--bulk`` documents (generated HDFS lines with fresh block ids), built before the clock
starts, ``--concurrency`` in flight.

0. ``scorer_events_per_s``: the scorer alone, loaded as ``benchmarks/server.py`` loads it (raw lines over 4
   gRPC streams), on the same lines: the ceiling of the scoring proxy on this machine today;
1. ``direct_docs_per_s``: bulks straight into the stand-in (the ceiling for everything behind it);
2. ``proxy_docs_per_s``: through the proxy, every document scored (target ≥ 20,000/s);
3. ``passthrough_docs_per_s``: through the proxy with scoring off (target ≥ 100,000/s, i.e. the proxy
   is not the bottleneck: compare with 1.); ``sink_passthrough_docs_per_s``: the same into a bulk sink that
   answers every item created without reading the sources (a cluster that is never the bottleneck, so this
   is the proxy's own ceiling on this machine, with the load generator and the sink beside it);
4. ``p99_added_ms``: bulks sent on a fixed schedule at ``--offered`` documents/s for ``--seconds``,
   straight and through the scoring proxy; p99 through the proxy minus p99 straight;
5. ``backfill_docs_per_s``: ``es-worker --backfill`` over ``--backfill-docs`` documents already indexed
   (point-in-time reads, sequence-mode scoring, bulk write-backs, checkpoints).

Ends with one JSON line (the keys above, p50/p99 both ways, and the CPU cores each process used).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# this file is named like the client package: keep its folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT / "tests"))

import aiohttp  # noqa: E402
import numpy as np  # noqa: E402

from logwarden.core.synthetic import generate  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_server", HERE / "server.py")
bench_server = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_server)
free_port, start_server, replay, cpu_seconds, scorer_batches, grpc_load = (
    bench_server.free_port,
    bench_server.start_server,
    bench_server.replay,
    bench_server.cpu_seconds,
    bench_server.batches,
    bench_server.grpc_load,
)
NDJSON = {"Content-Type": "application/x-ndjson"}
BASE_MS = 1_767_225_600_000


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{what} did not answer within {timeout} s")


def start_peer(port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "peers.elasticsearch", "--port", str(port), "--no-validate"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/", proc, "the Elasticsearch stand-in")
    return proc


def start_sink(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-sink", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_http(f"http://127.0.0.1:{port}/", proc, "the bulk sink")
    return proc


def serve_sink(port: int) -> None:
    """A bulk endpoint that answers every item ``201 created`` at once, reading only the action lines' count
    (the shape of Elasticsearch's answer, none of its work)."""
    import gzip

    from aiohttp import web

    item = b'{"index":{"_index":"logs-bench","_id":"x","_version":1,"result":"created","status":201}}'
    product = {"X-Elastic-Product": "Elasticsearch"}

    async def root(request: web.Request) -> web.Response:
        return web.json_response({"version": {"number": "9.1.0"}, "tagline": "You Know, for Search"}, headers=product)

    async def bulk(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        items = sum(1 for line in body.split(b"\n") if line.strip()) // 2  # index actions, each with a source
        answer = b'{"took":0,"errors":false,"items":[' + b",".join([item] * items) + b"]}"
        return web.Response(body=answer, content_type="application/json", headers=product)

    app = web.Application(client_max_size=1 << 30)
    app.router.add_get("/", root)
    app.router.add_post("/_bulk", bulk)
    app.router.add_post("/{index}/_bulk", bulk)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


def start_proxy(port: int, upstream: str, scorer: str, score: bool) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "logwarden.core.cli", "es-proxy", "--port", str(port), "--upstream", upstream]
    cmd += ["--scorer", scorer, "--metrics-port", "null", "--log-level", "warning", "--score-budget-s", "10"]
    cmd += [] if score else ["--no-score"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/", proc, "es-proxy")
    return proc


def bodies(n_docs: int, bulk: int, cycle0: int, index: str = "logs-bench") -> list[bytes]:
    """NDJSON bulks of ``bulk`` index actions: generated HDFS lines with block ids fresh per replay."""
    lines = generate(3000, anomaly_rate=0.02, seed=22).lines
    out, docs, cycle = [], [], cycle0
    action = json.dumps({"index": {"_index": index}}).encode()
    while len(out) * bulk < n_docs:
        for line in replay(lines, cycle):
            docs.append(action + b"\n" + json.dumps({"message": line, "@timestamp": "2026-01-01T00:00:00Z"}).encode())
            if len(docs) == bulk:
                out.append(b"\n".join(docs) + b"\n")
                docs = []
                if len(out) * bulk >= n_docs:
                    break
        cycle += 1
    return out


async def send(session: aiohttp.ClientSession, url: str, body: bytes) -> float:
    started = time.perf_counter()
    async with session.post(url + "/_bulk", data=body, headers=NDJSON) as response:
        answer = await response.read()
    if response.status != 200 or b'"errors":false' not in answer[:100]:
        raise SystemExit(f"bulk to {url} failed: {response.status} {answer[:300]!r}")
    return time.perf_counter() - started


async def throughput(url: str, payloads: list[bytes], concurrency: int, bulk: int) -> float:
    queue: asyncio.Queue = asyncio.Queue()
    for p in payloads:
        queue.put_nowait(p)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:

        async def worker() -> None:
            while not queue.empty():
                await send(session, url, queue.get_nowait())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(payloads) * bulk / elapsed


async def paced(url: str, payloads: list[bytes], interval: float) -> list[float]:
    """Send each bulk at its scheduled time (open loop); the latency of each."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        start = time.perf_counter()
        tasks = []
        for i, body in enumerate(payloads):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(session, url, body)))
        return list(await asyncio.gather(*tasks))


def measured(procs: dict[str, subprocess.Popen], run):
    """``run()``'s result and the CPU cores each process (and this one) used meanwhile."""
    before = {name: cpu_seconds(p.pid) for name, p in procs.items()}
    mine, wall = cpu_seconds(), time.perf_counter()
    result = run()
    wall = time.perf_counter() - wall
    cores = {name: round((cpu_seconds(p.pid) - before[name]) / wall, 2) for name, p in procs.items()}
    cores["loadgen"] = round((cpu_seconds() - mine) / wall, 2)
    return result, cores


def delete_index(url: str, index: str = "logs-bench") -> None:
    request = urllib.request.Request(f"{url}/{index}", method="DELETE")
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(request, timeout=30).read()


def backfill(peer_url: str, scorer: str, n_docs: int, bulk: int) -> tuple[float, int]:
    from elasticsearch import Elasticsearch, helpers

    from logwarden.integrations.client import LogWardenClient
    from logwarden.integrations.elasticsearch.search import iso
    from logwarden.integrations.elasticsearch.settings import WorkerSettings
    from logwarden.integrations.elasticsearch.worker import EsWorker

    lines = generate(max(50, n_docs // 16), anomaly_rate=0.02, seed=23).lines[:n_docs]
    with Elasticsearch(peer_url, request_timeout=300) as es:
        docs = (
            {"_index": "logs-backfill", "message": line, "@timestamp": iso(BASE_MS + i)} for i, line in enumerate(lines)
        )
        helpers.bulk(es, docs, chunk_size=bulk)
    end = BASE_MS + len(lines) + 3_600_000
    settings = WorkerSettings(es_url=peer_url, scorer=scorer, index="logs-backfill", idle_gap_s=30, metrics_port=None)
    scorer_client = LogWardenClient(scorer, **settings.scorer_options(settings.score_budget_s))
    worker = EsWorker(settings, settings.es_client(request_timeout=300), scorer_client)
    started = time.perf_counter()
    read = worker.backfill(BASE_MS, end)
    elapsed = time.perf_counter() - started
    scorer_client.close()
    return read / elapsed, read


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000, help="documents per throughput run")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each paced latency run")
    ap.add_argument("--offered", type=float, default=10_000, help="documents/s offered in the latency run")
    ap.add_argument("--bulk", type=int, default=500, help="documents per bulk")
    ap.add_argument("--concurrency", type=int, default=4, help="bulks in flight in the throughput runs")
    ap.add_argument("--backfill-docs", type=int, default=20_000)
    ap.add_argument("--model", type=Path, help="serve this model instead of training a small one")
    ap.add_argument("--phases", default="scorer,direct,proxy,passthrough,sink,latency,backfill")
    ap.add_argument("--serve-sink", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_sink:
        serve_sink(args.serve_sink)
        return 0
    phases = set(args.phases.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            model = Path(tmp) / "model"
            (Path(tmp) / "train.log").write_text("\n".join(generate(400, seed=21).lines) + "\n")
            train = [sys.executable, "-m", "logwarden.core.cli", "train", str(Path(tmp) / "train.log")]
            train += ["--format", "hdfs", "--out", str(model), "--epochs", "5", "--quiet"]
            subprocess.run(train, check=True, stdout=subprocess.DEVNULL)
        grpc_port, http_port, peer_port, proxy_port, pass_port, sink_port, sink_pass_port = (
            free_port() for _ in range(7)
        )
        procs: dict[str, subprocess.Popen] = {}
        try:
            procs["scorer"] = start_server(model, "onnx", grpc_port, http_port, [])
            scorer = f"127.0.0.1:{grpc_port}"
            procs["es"] = start_peer(peer_port)
            peer = f"http://127.0.0.1:{peer_port}"
            procs["proxy"] = start_proxy(proxy_port, peer, scorer, score=True)
            procs["passthrough"] = start_proxy(pass_port, peer, scorer, score=False)
            procs["sink"] = start_sink(sink_port)
            procs["sink_passthrough"] = start_proxy(sink_pass_port, f"http://127.0.0.1:{sink_port}", scorer, False)
            proxy, passthrough = f"http://127.0.0.1:{proxy_port}", f"http://127.0.0.1:{pass_port}"
            sink_passthrough = f"http://127.0.0.1:{sink_pass_port}"
            out: dict = {"bulk": args.bulk, "records": args.records, "concurrency": args.concurrency}
            if "scorer" in phases:  # fresh sessions far from the cycles the phases below use
                requests = scorer_batches(generate(3000, anomaly_rate=0.02, seed=22).lines, 500, range(900, 904))
                alone = asyncio.run(grpc_load(scorer, requests, args.seconds, 4, None, 500, procs["scorer"].pid))
                out["scorer_events_per_s"], out["scorer_cores"] = alone["events_per_s"], alone["server_cores"]
            cycle = 1
            runs = (("direct", peer), ("proxy", proxy), ("passthrough", passthrough), ("sink", sink_passthrough))
            for name, url in runs:
                key = "sink_passthrough" if name == "sink" else name
                if name not in phases:
                    out[f"{key}_docs_per_s"] = 0
                    continue
                payloads = bodies(args.records, args.bulk, cycle)
                cycle += math.ceil(args.records / 49_000) + 1
                rate, cores = measured(
                    procs, lambda u=url, p=payloads: asyncio.run(throughput(u, p, args.concurrency, args.bulk))
                )
                out[f"{key}_docs_per_s"] = round(rate)
                out[f"{key}_cores"] = cores
                delete_index(peer)
            if "latency" in phases:
                n = max(1, int(args.seconds * args.offered / args.bulk))
                interval = args.bulk / args.offered
                for name, url in (("direct", peer), ("proxy", proxy)):
                    payloads = bodies(n * args.bulk, args.bulk, cycle)
                    cycle += math.ceil(n * args.bulk / 49_000) + 1
                    latencies = np.array(asyncio.run(paced(url, payloads, interval))) * 1000
                    out[f"{name}_p50_ms"] = round(float(np.percentile(latencies, 50)), 2)
                    out[f"{name}_p99_ms"] = round(float(np.percentile(latencies, 99)), 2)
                    delete_index(peer)
                out["offered_docs_per_s"] = args.offered
                out["p99_added_ms"] = round(out["proxy_p99_ms"] - out["direct_p99_ms"], 2)
            else:
                out["p99_added_ms"] = 0.0
            if "backfill" in phases:
                (rate, read), cores = measured(procs, lambda: backfill(peer, scorer, args.backfill_docs, args.bulk))
                out["backfill_docs_per_s"], out["backfill_docs"], out["backfill_cores"] = round(rate), read, cores
            else:
                out["backfill_docs_per_s"] = 0
        finally:
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    if out.get("scorer_events_per_s") and out.get("proxy_docs_per_s"):
        out["proxy_share_of_scorer"] = round(out["proxy_docs_per_s"] / out["scorer_events_per_s"], 3)
    print(f"{'measure':<34}{'value':>12}")
    for key in (
        "scorer_events_per_s",
        "proxy_share_of_scorer",
        "direct_docs_per_s",
        "proxy_docs_per_s",
        "passthrough_docs_per_s",
        "sink_passthrough_docs_per_s",
        "direct_p50_ms",
        "direct_p99_ms",
        "proxy_p50_ms",
        "proxy_p99_ms",
        "p99_added_ms",
        "backfill_docs_per_s",
    ):
        if key in out:
            print(f"{key:<34}{out[key]:>12}")
    for key in ("direct_cores", "proxy_cores", "passthrough_cores", "sink_passthrough_cores", "backfill_cores"):
        if key in out:
            print(f"{key:<34}  {out[key]}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
