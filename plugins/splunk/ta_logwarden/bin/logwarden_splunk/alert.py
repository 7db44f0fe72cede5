"""The "LogWarden: label results" custom alert action: labels every result of the alert's search.

Splunk runs ``logwarden_label_alert.py --execute`` with a JSON payload on stdin (``payload_format = json``):
``results_file`` (gzipped CSV), ``session_key``, ``server_uri``, ``owner``, ``search_name``, ``sid`` and the
action's ``configuration`` (``value``, ``target``, ``comment``). Lines written to stderr go to splunkd.log
with their level; a non-zero exit marks the action failed in the alert's history.
"""

from __future__ import annotations

import gzip
import io
import json
from typing import Any, TextIO

from logwarden_splunk import credentials, labels
from logwarden_splunk import rows as R
from logwarden_splunk.scoring import Unavailable

MAX_PAYLOAD_BYTES = 1 << 20


def main(argv: list[str], stdin: TextIO, log: TextIO) -> int:
    if len(argv) < 2 or argv[1] != "--execute":
        log.write("FATAL this alert action runs as: logwarden_label_alert.py --execute < payload.json\n")
        return 1
    try:
        payload = json.loads(stdin.read(MAX_PAYLOAD_BYTES))
        options = _options(payload)
        results = read_results(payload["results_file"])
    except (ValueError, KeyError, OSError) as exc:
        log.write(f"ERROR LogWarden alert action: bad payload or results file: {type(exc).__name__}: {exc}\n")
        return 3

    def client() -> Any:
        try:
            svc = credentials.service(payload.get("server_uri") or "", payload.get("session_key") or "")
            return credentials.http_client(credentials.load(svc))
        except credentials.SettingsError as exc:
            raise Unavailable(f"settings unreadable: {exc}") from None

    out, warnings = labels.Labeler(options, client).label(results)
    for message in warnings:
        log.write(f"WARN {message}\n")
    counts: dict[str, int] = {}
    for row in out:
        counts[row["logwarden_label_status"]] = counts.get(row["logwarden_label_status"], 0) + 1
    log.write(f"INFO LogWarden alert action labelled {len(out)} results of {payload.get('search_name')!r}: {counts}\n")
    return 2 if counts.get("unsent") else 0


def _options(payload: dict) -> labels.LabelOptions:
    config = payload.get("configuration") or {}
    value = config.get("value", "")
    target = config.get("target") or "event"
    if value not in labels.VALUES:
        raise ValueError(f"configuration value must be one of {labels.VALUES}, not {value!r}")
    if target not in labels.TARGETS:
        raise ValueError(f"configuration target must be one of {labels.TARGETS}, not {target!r}")
    return labels.LabelOptions(
        value=value,
        target=target,
        comment=config.get("comment") or "",
        source_field=config.get("source_field") or "host",
        analyst=payload.get("owner") or "splunk-alert",
        origin=f"alert:{payload.get('search_name', '')}:{payload.get('sid', '')}",
    )


def read_results(path: str) -> list[dict]:
    """The alert's results (``results.csv.gz``)."""
    with gzip.open(path, "rb") as raw:
        return R.read_results_csv(io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=""))
