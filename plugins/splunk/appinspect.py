"""Run Splunk AppInspect's cloud checks on the built app package; fail on any failure, error or future failure.

    python plugins/splunk/appinspect.py --appinspect .venv-appinspect/bin/splunk-appinspect dist/ta_logwarden-X.tgz

AppInspect lives in its own virtualenv (``make appinspect-venv``): it pins older structlog, lxml and others.
Prints each non-passing check and, as the last line, a JSON summary (counts and the seconds it took).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FATAL = ("failure", "error", "future_failure")


def inspect(appinspect: str, package: Path) -> tuple[dict, list[tuple[str, str, str]], float]:
    """AppInspect's summary, the (result, check, message) of every check that did not pass, and its run time."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "appinspect.json"
        started = time.monotonic()
        done = subprocess.run(
            [appinspect, "inspect", str(package), "--mode", "precert", "--included-tags", "cloud",
             "--data-format", "json", "--output-file", str(report)],
            capture_output=True, text=True,
        )  # fmt: skip
        seconds = time.monotonic() - started
        if not report.exists():
            raise SystemExit(f"splunk-appinspect wrote no report (exit {done.returncode}):\n{done.stderr[-3000:]}")
        data = json.loads(report.read_text())
    findings = []
    for group in data["reports"][0]["groups"]:
        for check in group["checks"]:
            if check["result"] not in ("success", "not_applicable"):
                for message in check["messages"] or [{"message": ""}]:
                    findings.append((check["result"], check["name"], message.get("message", "")))
    return data["summary"], findings, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appinspect", required=True, help="the splunk-appinspect program")
    parser.add_argument("package", type=Path, help="the app package (.tgz / .spl)")
    args = parser.parse_args(argv)
    summary, findings, seconds = inspect(args.appinspect, args.package)
    for result, name, message in findings:
        print(f"{result:>14}  {name}: {message[:300]}")
    print(json.dumps({**summary, "seconds": round(seconds, 1), "package": str(args.package)}))
    return 1 if any(summary.get(k) for k in FATAL) else 0


if __name__ == "__main__":
    sys.exit(main())
