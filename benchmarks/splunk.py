"""The Splunk app's figures: rows/s through ``| anomalyscore`` (sequence mode, the default), driven with SCP v2
frames as splunkd sends them, against a real scoring server on loopback; the command's peak memory per
100,000 held rows; and how long AppInspect's cloud checks take on the package.

    python benchmarks/splunk.py [--records N] [--chunk 50000] [--model PATH] [--python PATH] [--no-appinspect]

Builds the app (plugins/splunk/build.py), trains a small model unless given one, starts ``logwarden serve``
(HTTP gateway) as its own process, and stands in for splunkd's search process (frames) and REST API (the
app's settings in storage/passwords). Rows arrive newest first in chunks of ``--chunk``; the clock runs from
the first execute chunk to the final reply. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP_BIN = ROOT / "plugins" / "splunk" / "ta_logwarden" / "bin"
sys.path[:0] = [str(ROOT / "tests" / "plugins" / "splunk"), str(ROOT / "plugins" / "splunk"), str(APP_BIN)]

import appinspect  # noqa: E402
import build  # noqa: E402
import splunk_scp as scp  # noqa: E402
from splunkd_peer import Splunkd  # noqa: E402

from logwarden.core.cli import main as cli  # noqa: E402
from logwarden.core.synthetic import generate  # noqa: E402

SESSION_KEY = "bench-session-key"


def train(root: Path) -> Path:
    (root / "train.log").write_text("\n".join(generate(400, seed=11).lines) + "\n")
    args = ["train", str(root / "train.log"), "--format", "hdfs", "--out", str(root / "m"), "--epochs", "5", "--quiet"]
    assert cli(args) == 0
    return root / "m"


def rows_for(n: int) -> list[dict]:
    lines: list[str] = []
    seed = 100
    while len(lines) < n:
        lines += generate(max(50, (n - len(lines)) // 14 + 1), anomaly_rate=0.05, seed=seed).lines
        seed += 1
    lines = lines[:n]
    return [
        {"_time": f"{1733130000 + k / 100:.2f}", "_raw": line, "host": f"hdfs-{k % 4}", "index": "hdfs",
         "splunk_server": "idx-1", "_cd": f"0:{k}"}
        for k, line in enumerate(lines)
    ][::-1]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(model: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "logwarden.core.cli", "serve", "--model-path", str(model), "--grpc-port", "0",
         "--http-port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    end = time.monotonic() + 180
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the scoring server did not become ready")


def vm(pid: int, key: str) -> float:
    """VmRSS / VmHWM of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def drive(python: str, app: Path, rows: list[dict], chunk: int, splunkd_uri: str, dispatch: str) -> dict:
    frames = [scp.execute(rows[i : i + chunk], finished=i + chunk >= len(rows)) for i in range(0, len(rows), chunk)]
    command = scp.CommandProcess(python, app / "bin" / "anomalyscore.py")
    command.send(scp.getinfo([], dispatch, splunkd_uri=splunkd_uri, session_key=SESSION_KEY))
    assert command.reply().metadata["type"] == "events"
    baseline = vm(command.proc.pid, "VmRSS")
    started = time.perf_counter()
    out = 0
    for n, data in enumerate(frames):
        if n == len(frames) - 1:
            held_s = time.perf_counter() - started
        command.send(data)
        reply = command.reply()
        out += len(reply.rows)
        statuses = {r["logwarden_status"] for r in reply.rows}
    total_s = time.perf_counter() - started
    peak = vm(command.proc.pid, "VmHWM")
    code, _ = command.close()
    assert code == 0 and out == len(rows), (code, out)
    return {
        "seconds": total_s,
        "hold_s": held_s,
        "baseline_mb": baseline,
        "peak_mb": peak,
        "statuses": sorted(statuses),
        "warnings": [m for m in reply.messages],
    }


def server_only(rows: list[dict], port: int) -> float:
    """The scoring server alone (sequence mode through the same client, no Splunk framework): events/s."""
    import re

    from logwarden_splunk.scoring import IN_FLIGHT

    from logwarden.integrations.client import HttpClient

    block = re.compile(r"blk_-?\d+")
    events = sorted(
        ({"id": r["_cd"], "message": r["_raw"], "source": r["host"], "session_key": block.search(r["_raw"]).group(0)}
         for r in rows),
        key=lambda e: (e["source"], e["session_key"]),
    )  # fmt: skip
    client = HttpClient(f"http://127.0.0.1:{port}", max_batch_events=1000, budget_s=3600, max_in_flight=IN_FLIGHT)
    started = time.perf_counter()
    results, _ = client.score_sessions(events)
    assert all(r.status == "scored" for r in results)
    return len(events) / (time.perf_counter() - started)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000, help="rows through the command")
    ap.add_argument("--chunk", type=int, default=50_000, help="rows per execute chunk (splunkd's default)")
    ap.add_argument("--model", type=Path, help="serve this model instead of training a small one")
    default_python = scp.interpreters()[-1]
    ap.add_argument("--python", default=default_python, help=f"the command's interpreter (default {default_python})")
    ap.add_argument("--no-appinspect", action="store_true")
    ap.add_argument("--appinspect", default=str(ROOT / ".venv-appinspect" / "bin" / "splunk-appinspect"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        slim = ROOT / ".venv-appinspect" / "bin" / "slim"
        app = build.build(root / "dist", "installed", str(slim) if slim.exists() else None, pack=False)
        package = build.archive(app, root / "dist", build.app_version())
        model = args.model or train(root)
        rows = rows_for(args.records)
        port = free_port()
        server = serve(model, port)
        try:
            with Splunkd(SESSION_KEY) as splunkd:
                splunkd.passwords[("ta_logwarden", "ta_logwarden:scoring_server:")] = {
                    "realm": "ta_logwarden", "username": "scoring_server",
                    "password": json.dumps({"url": f"http://127.0.0.1:{port}", "token": "", "timeout_s": 30}),
                }  # fmt: skip
                (root / "dispatch").mkdir()
                run = drive(args.python, app, rows, args.chunk, splunkd.uri, str(root / "dispatch"))
                server_rate = server_only(rows, port)
                splunkd.passwords.clear()  # settings unreadable: every row passes unscored, no scoring at all
                bare = drive(args.python, app, rows, args.chunk, splunkd.uri, str(root / "dispatch"))
        finally:
            server.terminate()
            server.wait(60)
        ai_s = None
        if not args.no_appinspect and Path(args.appinspect).exists():
            summary, _, ai_s = appinspect.inspect(args.appinspect, package)
            assert not any(summary.get(k) for k in appinspect.FATAL), summary
    rows_per_s = args.records / run["seconds"]
    per_100k = (run["peak_mb"] - run["baseline_mb"]) * 100_000 / args.records
    load = os.getloadavg()[0]
    print(f"{'rows':<34}{args.records:>12,}")
    print(f"{'chunk (rows per execute)':<34}{args.chunk:>12,}")
    print(f"{'interpreter':<34}{Path(args.python).parent.parent.name:>12}")
    print(f"{'wall time, s':<34}{run['seconds']:>12.2f}  (holding rows {run['hold_s']:.2f} s)")
    print(f"{'rows/s through | anomalyscore':<34}{rows_per_s:>12,.0f}")
    print(f"{'  the scorer alone, events/s':<34}{server_rate:>12,.0f}")
    print(f"{'  the command alone, rows/s':<34}{args.records / bare['seconds']:>12,.0f}  (settings unreadable)")
    print(f"{'command RSS: idle / peak, MB':<34}{run['baseline_mb']:>6.0f} / {run['peak_mb']:.0f}")
    print(f"{'peak MB per 100,000 held rows':<34}{per_100k:>12.1f}")
    print(f"{'AppInspect (cloud checks), s':<34}{'-' if ai_s is None else f'{ai_s:.1f}':>12}")
    print(f"{'row statuses':<34}{','.join(run['statuses']):>12}")
    print(f"{'load average (1 min) at the end':<34}{load:>12.2f}")
    result = {
        "rows_per_s": round(rows_per_s),
        "rss_mb_per_100k_rows": round(per_100k, 1),
        "appinspect_s": None if ai_s is None else round(ai_s, 1),
        "records": args.records,
        "chunk": args.chunk,
        "seconds": round(run["seconds"], 2),
        "server_events_per_s": round(server_rate),
        "share_of_server": round(rows_per_s / server_rate, 3),
        "command_only_rows_per_s": round(args.records / bare["seconds"]),
        "hold_s": round(run["hold_s"], 2),
        "peak_rss_mb": round(run["peak_mb"], 1),
        "python": args.python,
        "statuses": run["statuses"],
        "load_avg_1m": round(load, 2),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
