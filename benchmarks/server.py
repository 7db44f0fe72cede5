"""Server throughput and latency on this machine, over real sockets, parsing and model included.

    python benchmarks/server.py [--seconds S] [--batch N] [--latency-batch N] [--backend onnx|torch] [--model DIR]

Starts ``logwarden serve`` as a separate process (trains a small model on generated HDFS-style logs
first unless ``--model`` is given); this process is the load generator. Raw log lines go over the
bidirectional gRPC stream in stream mode (the server splits the lines, finds the block id, matches
templates, keeps per-session windows and runs the model). The corpus (3,000 generated block sessions,
~49k lines) is replayed with fresh block ids on each pass, as a live HDFS stream brings new blocks
(``--same-sessions`` replays the same ids: sessions then grow across passes, an unnatural workload).
Messages are serialized once before the clock starts; responses are decoded.

1. sustained throughput: ``--streams`` streams × ``--batch``-event messages, two in flight per stream;
2. latency at an offered load of ``--offered`` events/s: ``--latency-streams`` streams sending
   ``--latency-batch``-event messages on a fixed schedule (a shipper flushing chunks); p50/p99 per message;
3. the single-event HTTP path (Logstash's http filter shape): requests/s and p50/p99.

Each run also reports the CPU cores the server and the load generator used. ``LOGWARDEN_BENCH_PROFILE=FILE``
samples the server with py-spy during the sustained run (raw folded stacks; py-spy must be installed).

Ends with one JSON line: ``events_per_s``, ``p50_ms``, ``p99_ms``, ``offered_events_per_s``,
``http_single_rps`` and more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
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


def start_server(model: Path, backend: str, grpc_port: int, http_port: int, extra: list[str]) -> subprocess.Popen:
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
        *extra,
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


BLOCK = re.compile(r"blk_(-?)(\d+)")


def replay(lines: list[str], cycle: int) -> list[str]:
    """The corpus again with fresh block ids (``cycle`` prefixed to the digits): new sessions of natural length,
    as a live HDFS stream brings new blocks; cycle 0 is the corpus itself."""
    if cycle == 0:
        return lines
    return [BLOCK.sub(rf"blk_\g<1>{cycle}\g<2>", line) for line in lines]


def batches(lines: list[str], size: int, cycles: range, variant: str = "plain") -> list[bytes]:
    """Serialized ``ScoreRequest`` messages of ``size`` raw lines over ``cycles`` replays of the corpus.

    ``variant``: ``plain``; ``idempotency`` (every request carries its own idempotency key, as the Fluent Bit
    receiver and the Elasticsearch proxy send them); ``routed`` (every other block's events carry the
    attribute that routes them to the second model). Serialized once up front, so the load generator spends
    its CPU on sending, not on building messages."""
    out = []
    for cycle in cycles:
        text = replay(lines, cycle)
        for i in range(0, len(text) - size + 1, size):
            events = [
                scoring_pb2.Event(id=str(i + j), message=line, source="bench", attributes=_attributes(line, variant))
                for j, line in enumerate(text[i : i + size])
            ]
            key = f"bench-{cycle}-{i}" if variant == "idempotency" else ""
            out.append(scoring_pb2.ScoreRequest(events=events, idempotency_key=key).SerializeToString())
    return out


def _attributes(line: str, variant: str) -> dict[str, str]:
    if variant == "attributes":
        return {"index": "main"}  # matches no route: the default model, as the plain run
    if variant != "routed":
        return {}
    block = BLOCK.search(line)
    return {"index": "other" if block and int(block.group(0)[-1]) % 2 else "main"}


STREAM_METHOD = "/logwarden.v1.ScoringService/ScoreStream"


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of a process so far: this one when ``pid`` is None."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def stream_worker(
    channel, requests: list[bytes], stop_at: float, paced: float | None, latencies: list, counts: list
):
    queue: asyncio.Queue = asyncio.Queue()
    call = channel.stream_stream(
        STREAM_METHOD, request_serializer=None, response_deserializer=scoring_pb2.ScoreResponse.FromString
    )()

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
    return i > len(requests)


async def grpc_load(
    target: str, requests: list[bytes], seconds: float, streams: int, offered: float | None, batch: int, server_pid: int
):
    latencies: list[float] = []
    counts: list[int] = []
    async with grpc.aio.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        warm = scoring_pb2.ScoreRequest.FromString(requests[0])
        await stub.Score(scoring_pb2.ScoreRequest(events=warm.events, mode=scoring_pb2.SCORING_MODE_SEQUENCE))
        paced = None if offered is None else streams * batch / offered
        cpu_server, cpu_self = cpu_seconds(server_pid), cpu_seconds()
        start = time.perf_counter()
        stop_at = start + seconds
        wrapped = await asyncio.gather(
            *(stream_worker(channel, requests[k::streams], stop_at, paced, latencies, counts) for k in range(streams))
        )
        wall = time.perf_counter() - start
        cpu_server, cpu_self = cpu_seconds(server_pid) - cpu_server, cpu_seconds() - cpu_self
    lat = np.array(latencies) * 1000
    return {
        "events_per_s": round(sum(counts) / wall),
        "batches": len(latencies),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "server_cores": round(cpu_server / wall, 2),
        "loadgen_cores": round(cpu_self / wall, 2),
        "replayed_sessions": any(wrapped),  # ran out of fresh sessions: some windows were continued
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


def start_profiler(pid: int, seconds: float) -> subprocess.Popen | None:
    """``LOGWARDEN_BENCH_PROFILE=FILE``: sample the server with py-spy (all threads, raw folded stacks) during the
    sustained run. The sampler takes CPU: figures from such a run are not the benchmark's."""
    out = os.environ.get("LOGWARDEN_BENCH_PROFILE")
    if not out:
        return None
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.is_file():
        raise SystemExit(f"LOGWARDEN_BENCH_PROFILE needs py-spy beside {sys.executable} (pip install py-spy)")
    cmd = [
        str(spy),
        "record",
        "-p",
        str(pid),
        "-d",
        str(max(1, int(seconds) - 1)),
        "-r",
        "200",
        "-f",
        "raw",
        "--threads",
        "--nonblocking",
        "-o",
        out,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=500, help="events per streamed message")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--offered", type=float, default=10_000, help="events/s for the latency run")
    ap.add_argument(
        "--latency-batch",
        type=int,
        default=250,
        help="events per message in the latency run (a shipper's chunk: 2 streams × 250 events every "
        "50 ms at 10,000 events/s)",
    )
    ap.add_argument("--latency-streams", type=int, default=2)
    ap.add_argument(
        "--same-sessions",
        action="store_true",
        help="replay the corpus with its own block ids (sessions grow across replays, windows fill up "
        "to window_size) instead of fresh block ids per replay",
    )
    ap.add_argument("--backend", choices=["onnx", "torch"], default="onnx")
    ap.add_argument("--model", type=Path, help="serve this model instead of training a small one")
    ap.add_argument("--server-args", default="", help="extra `logwarden serve` flags, e.g. '--batch-wait-ms 2'")
    ap.add_argument(
        "--phases",
        default="sustained,latency,http,idempotency,routed",
        help="which measurements to run; idempotency and routed repeat sustained and latency with an idempotency key "
        "on every request and with two routed models (a second server process) and report ratios to the plain run",
    )
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
        need = math.ceil(args.seconds * 50_000 / len(lines))  # fresh sessions for up to 50,000 events/s
        sustained_cycles = range(1) if args.same_sessions else range(need)
        paced_cycles = (
            range(1)
            if args.same_sessions
            else range(need, need + math.ceil(args.seconds * args.offered * 1.2 / len(lines)))
        )
        requests = batches(lines, args.batch, sustained_cycles)
        paced_requests = batches(lines, args.latency_batch, paced_cycles)
        grpc_port, http_port = free_port(), free_port()
        proc = start_server(model, args.backend, grpc_port, http_port, args.server_args.split())
        try:
            target = f"127.0.0.1:{grpc_port}"
            phases = set(args.phases.split(","))
            skipped = {
                "events_per_s": 0,
                "batches": 0,
                "p50_ms": 0.0,
                "p99_ms": 0.0,
                "server_cores": 0.0,
                "loadgen_cores": 0.0,
                "replayed_sessions": False,
            }
            sustained = paced = skipped
            http = {"http_single_rps": 0, "http_p50_ms": 0.0, "http_p99_ms": 0.0}
            if "sustained" in phases:
                profiler = start_profiler(proc.pid, args.seconds)
                sustained = asyncio.run(
                    grpc_load(target, requests, args.seconds, args.streams, None, args.batch, proc.pid)
                )
                if profiler is not None:
                    profiler.wait()
            if "latency" in phases:
                paced = asyncio.run(
                    grpc_load(
                        target,
                        paced_requests,
                        args.seconds,
                        args.latency_streams,
                        args.offered,
                        args.latency_batch,
                        proc.pid,
                    )
                )
            if "http" in phases:
                http = http_single(http_port, lines, args.seconds / 2, threads=4)
            variants = {}
            if "idempotency" in phases:
                variants["idempotency"] = run_variant(args, lines, "idempotency", target, proc.pid, need)
        finally:
            proc.terminate()
            proc.wait(30)
        if "routed" in phases:
            routes = json.dumps({"other": {"path": str(model), "rules": [{"index": "other"}]}})
            grpc_port, http_port = free_port(), free_port()
            proc = start_server(
                model, args.backend, grpc_port, http_port, [*args.server_args.split(), "--models", routes]
            )
            try:  # the same requests with one model first, on this process: routing's own cost is the difference
                target = f"127.0.0.1:{grpc_port}"
                variants["attributes"] = run_variant(args, lines, "attributes", target, proc.pid, 10 * need)
                variants["routed"] = run_variant(args, lines, "routed", target, proc.pid, need)
            finally:
                proc.terminate()
                proc.wait(30)
    sessions = "same block ids on every replay" if args.same_sessions else "fresh block ids on every replay"
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
        "latency_batch_events": args.latency_batch,
        "latency_streams": args.latency_streams,
        "sessions": sessions,
        "server_cores_sustained": sustained["server_cores"],
        "loadgen_cores_sustained": sustained["loadgen_cores"],
        "server_cores_at_offered": paced["server_cores"],
        "replayed_sessions": sustained["replayed_sessions"] or paced["replayed_sessions"],
        "server_args": args.server_args,
        "backend": args.backend,
        "cpu_cores": os.cpu_count(),
    }
    for name, figures in variants.items():
        result[f"{name}_events_per_s"] = figures["sustained"]["events_per_s"]
        result[f"{name}_throughput_ratio"] = round(
            figures["sustained"]["events_per_s"] / max(1, result["events_per_s"]), 3
        )
        result[f"{name}_p99_ms"] = figures["paced"]["p99_ms"]
    if "routed" in variants:
        result["routed_to_attributes_ratio"] = round(
            result["routed_events_per_s"] / max(1, result["attributes_events_per_s"]), 3
        )
    print(
        f"\nserver benchmark ({args.backend}, {os.cpu_count()} cores; `logwarden serve` in its own process, this "
        "load generator in another, same machine)"
    )
    print(
        f"  raw HDFS-style lines over the bidirectional gRPC stream, stream mode (server-side session windows), "
        f"parsing and model included; {sessions}"
    )
    print(
        f"  sustained: {result['events_per_s']:>9,} events/s  ({args.streams} streams × {args.batch}-event messages;"
        f" p50 {result['sustained_p50_ms']} ms, p99 {result['sustained_p99_ms']} ms per message;"
        f" server {sustained['server_cores']} cores, load generator {sustained['loadgen_cores']} cores)"
    )
    print(
        f"  offered {args.offered:,.0f} events/s: achieved {result['achieved_events_per_s_at_offered']:,}, "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms per message of {args.latency_batch} events "
        f"({args.latency_streams} streams; server {paced['server_cores']} cores)"
    )
    print(
        f"  HTTP single event: {result['http_single_rps']:,} req/s, p50 {result['http_p50_ms']} ms, "
        f"p99 {result['http_p99_ms']} ms (4 client threads)"
    )
    whats = {
        "idempotency": "an idempotency key on every request",
        "attributes": "an index attribute on every event, one model (second server)",
        "routed": "two models routed by that attribute (second server)",
    }
    for name in variants:
        what = whats[name]
        print(
            f"  with {what}: {result[f'{name}_events_per_s']:>9,} events/s sustained "
            f"(ratio {result[f'{name}_throughput_ratio']} to the plain run), p99 {result[f'{name}_p99_ms']} ms "
            f"at {args.offered:,.0f} offered"
        )
    if "routed" in variants:
        ratio = result["routed_to_attributes_ratio"]
        print(f"  routing's own cost: ratio {ratio} to the same requests served by one model")
    print(json.dumps(result))
    return 0


def run_variant(args, lines: list[str], variant: str, target: str, pid: int, start: int) -> dict:
    """The sustained and latency runs again, on requests of ``variant`` and fresh block ids."""
    need = math.ceil(args.seconds * 50_000 / len(lines))
    offset = start + math.ceil(args.seconds * args.offered * 1.2 / len(lines)) + (0 if variant == "idempotency" else 1)
    offset += need if variant == "routed" else 0
    sustained = batches(lines, args.batch, range(offset, offset + need), variant)
    paced_cycles = range(offset + need, offset + need + math.ceil(args.seconds * args.offered * 1.2 / len(lines)))
    paced = batches(lines, args.latency_batch, paced_cycles, variant)
    return {
        "sustained": asyncio.run(grpc_load(target, sustained, args.seconds, args.streams, None, args.batch, pid)),
        "paced": asyncio.run(
            grpc_load(target, paced, args.seconds, args.latency_streams, args.offered, args.latency_batch, pid)
        ),
    }


if __name__ == "__main__":
    sys.exit(main())
