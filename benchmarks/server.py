"""Server throughput and latency on this machine, over real sockets, parsing and model included.

    python benchmarks/server.py [--seconds S] [--batch N] [--backend onnx|torch] [--model DIR]

Starts ``logwarden serve`` as a separate process (trains a small model on generated HDFS-style logs
first unless ``--model`` is given), then from this process:

1. sustained throughput: raw log lines in batches of ``--batch`` events over several bidirectional
   streams, as fast as the server answers (stream mode: the server keeps per-session windows);
2. latency at an offered load of ``--offered`` events/s (paced batches), p50/p99 per batch;
3. the single-event HTTP path (Logstash's http filter shape): requests/s and p50/p99.

Ends with one JSON line: ``events_per_s``, ``p50_ms``, ``p99_ms``, ``offered_events_per_s``,
``http_single_rps`` and more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np

from logwarden.core.synthetic import generate
from logwarden.protos.logwarden.v1 import scoring_pb2, scoring_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, backend: str, grpc_port: int, http_port: int) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "logwarden.core.cli",
        "serve",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(grpc_port),
        "--http-port",
        str(http_port),
        "--backend",
        backend,
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
    proc.kill()
    raise SystemExit("server did not become ready in 120 s")


def batches(lines: list[str], size: int) -> list[scoring_pb2.ScoreRequest]:
    out = []
    for i in range(0, len(lines) - size + 1, size):
        events = [
            scoring_pb2.Event(id=str(i + j), message=line, source="bench") for j, line in enumerate(lines[i : i + size])
        ]
        out.append(scoring_pb2.ScoreRequest(events=events))
    return out


async def stream_worker(stub, requests, stop_at: float, paced: float | None, latencies: list, counts: list):
    queue: asyncio.Queue = asyncio.Queue()
    call = stub.ScoreStream()

    async def reader():
        async for response in call:
            sent = await queue.get()
            latencies.append(time.perf_counter() - sent)
            counts.append(len(response.results))

    task = asyncio.create_task(reader())
    i, next_send = 0, time.perf_counter()
    while time.perf_counter() < stop_at:
        if paced:
            now = time.perf_counter()
            if now < next_send:
                await asyncio.sleep(next_send - now)
            next_send += paced
        elif queue.qsize() >= 2:  # keep two messages in flight per stream
            await asyncio.sleep(0.0005)
            continue
        await queue.put(time.perf_counter())
        await call.write(requests[i % len(requests)])
        i += 1
    await call.done_writing()
    await task


async def grpc_load(target: str, requests, seconds: float, streams: int, offered: float | None, batch: int):
    latencies: list[float] = []
    counts: list[int] = []
    async with grpc.aio.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        await stub.Score(requests[0])  # warm-up
        paced = None if offered is None else streams * batch / offered
        start = time.perf_counter()
        stop_at = start + seconds
        await asyncio.gather(
            *(
                stream_worker(stub, requests[k::streams] or requests, stop_at, paced, latencies, counts)
                for k in range(streams)
            )
        )
        wall = time.perf_counter() - start
    lat = np.array(latencies) * 1000
    return {
        "events_per_s": round(sum(counts) / wall),
        "batches": len(latencies),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
    }


def http_single(port: int, lines: list[str], seconds: float, threads: int) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def worker(k: int) -> None:
        i = k
        while time.perf_counter() < stop_at:
            body = json.dumps({"message": lines[i % len(lines)], "host": {"name": "bench"}}).encode()
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/score/event", data=body, headers={"Content-Type": "application/json"}
            )
            t0 = time.perf_counter()
            with urllib.request.urlopen(req, timeout=10) as r:
                r.read()
            with lock:
                latencies.append(time.perf_counter() - t0)
            i += threads

    start = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - start
    lat = np.array(latencies) * 1000
    return {
        "http_single_rps": round(len(latencies) / wall),
        "http_p50_ms": round(float(np.percentile(lat, 50)), 2),
        "http_p99_ms": round(float(np.percentile(lat, 99)), 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=500, help="events per streamed message")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--offered", type=float, default=10_000, help="events/s for the latency run")
    ap.add_argument("--backend", choices=["onnx", "torch"], default="onnx")
    ap.add_argument("--model", type=Path, help="serve this model instead of training a small one")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            model = Path(tmp) / "model"
            (Path(tmp) / "train.log").write_text("\n".join(generate(400, seed=21).lines) + "\n")
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "logwarden.core.cli",
                    "train",
                    str(Path(tmp) / "train.log"),
                    "--format",
                    "hdfs",
                    "--out",
                    str(model),
                    "--epochs",
                    "5",
                    "--quiet",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        lines = generate(3000, anomaly_rate=0.02, seed=22).lines
        grpc_port, http_port = free_port(), free_port()
        proc = start_server(model, args.backend, grpc_port, http_port)
        try:
            requests = batches(lines, args.batch)
            target = f"127.0.0.1:{grpc_port}"
            sustained = asyncio.run(grpc_load(target, requests, args.seconds, args.streams, None, args.batch))
            half = max(1, args.batch // 2)
            paced = asyncio.run(grpc_load(target, batches(lines, half), args.seconds, 2, args.offered, half))
            http = http_single(http_port, lines, args.seconds / 2, threads=4)
        finally:
            proc.terminate()
            proc.wait(30)
    result = {
        "events_per_s": sustained["events_per_s"],
        "sustained_p50_ms": sustained["p50_ms"],
        "sustained_p99_ms": sustained["p99_ms"],
        "offered_events_per_s": args.offered,
        "achieved_events_per_s_at_offered": paced["events_per_s"],
        "p50_ms": paced["p50_ms"],
        "p99_ms": paced["p99_ms"],
        **http,
        "batch_events": args.batch,
        "streams": args.streams,
        "backend": args.backend,
        "cpu_cores": os.cpu_count(),
    }
    print(f"\nserver benchmark ({args.backend}, {os.cpu_count()} cores, server and load generator on the same machine)")
    print(
        f"  sustained: {result['events_per_s']:>9,} events/s  ({args.streams} streams × {args.batch}-event messages;"
        f" p50 {result['sustained_p50_ms']} ms, p99 {result['sustained_p99_ms']} ms per message)"
    )
    print(
        f"  offered {args.offered:,.0f} events/s: achieved {result['achieved_events_per_s_at_offered']:,}, "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms per batch of {args.batch // 2}"
    )
    print(
        f"  HTTP single event: {result['http_single_rps']:,} req/s, p50 {result['http_p50_ms']} ms, "
        f"p99 {result['http_p99_ms']} ms (4 client threads)"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
