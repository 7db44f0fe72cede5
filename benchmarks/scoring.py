"""Scoring speed on this CPU: events/s from raw lines (read → parse → sessions → model → JSON) and
from parsed sessions (model and verdicts only), onnxruntime vs torch.

    python benchmarks/scoring.py [--sessions N] [--repeats R]

Trains a small model on a generated corpus (the speed does not depend on the data's origin), then
times each path ``repeats`` times and keeps the best run. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from logwarden.core.cli import main as cli
from logwarden.core.detect.detector import Detector
from logwarden.core.parsing.formats import get_format
from logwarden.core.parsing.reader import read_records
from logwarden.core.parsing.sessions import build_sessions
from logwarden.core.pipeline.score import score_records
from logwarden.core.synthetic import generate


def best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=4000, help="generated sessions to score")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "train.log").write_text("\n".join(generate(400, seed=11).lines) + "\n")
        test = generate(args.sessions, anomaly_rate=0.05, seed=12)
        (root / "test.log").write_text("\n".join(test.lines) + "\n")
        assert (
            cli(
                [
                    "train",
                    str(root / "train.log"),
                    "--format",
                    "hdfs",
                    "--out",
                    str(root / "m"),
                    "--epochs",
                    "5",
                    "--quiet",
                ]
            )
            == 0
        )
        n_events = len(test.lines)
        rows = []
        for backend in ("onnx", "torch"):
            detector = Detector.load(root / "m", backend=backend, device="cpu")
            fmt = get_format(detector.line_format)
            raw = best_of(
                args.repeats,
                lambda d=detector, f=fmt: sum(
                    1 for _ in score_records(d, read_records([str(root / "test.log")], f), events="all")
                ),
            )
            parsed = [detector.parse(r) for r in read_records([str(root / "test.log")], fmt)]
            keys = [[e.key for e in s.events] for s in build_sessions(parsed, detector.rule)]
            model = best_of(args.repeats, lambda d=detector, k=keys: d.score_keys(k))
            rows.append(
                {
                    "backend": backend,
                    "raw_events_per_s": round(n_events / raw),
                    "session_events_per_s": round(n_events / model),
                }
            )
    print(f"\nscoring speed, {n_events:,} events in {args.sessions:,} sessions (best of {args.repeats})")
    print(f"{'backend':8} {'raw lines → JSON (ev/s)':>26} {'parsed sessions (ev/s)':>24}")
    for r in rows:
        print(f"{r['backend']:8} {r['raw_events_per_s']:>26,} {r['session_events_per_s']:>24,}")
    by = {r["backend"]: r for r in rows}
    print(
        json.dumps(
            {
                "events": n_events,
                "sessions": args.sessions,
                "onnx_raw_events_per_s": by["onnx"]["raw_events_per_s"],
                "onnx_session_events_per_s": by["onnx"]["session_events_per_s"],
                "torch_raw_events_per_s": by["torch"]["raw_events_per_s"],
                "torch_session_events_per_s": by["torch"]["session_events_per_s"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
