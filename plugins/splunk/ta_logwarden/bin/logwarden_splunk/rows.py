"""Splunk result rows as the search command framework hands them over: dicts of text, lists for multivalue
fields (``__mv_`` columns decoded), every value possibly missing."""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from typing import Any

MAX_ATTRIBUTE_CHARS = 256


def text(row: Mapping[str, Any], name: str) -> str:
    """A field as one text value: multivalue fields joined by newlines (as Splunk shows them), missing = ""."""
    value = row.get(name)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "\n".join("" if v is None else str(v) for v in value)
    return str(value)


def epoch(row: Mapping[str, Any]) -> float | None:
    """``_time`` as epoch seconds, or None when absent or not a number."""
    try:
        return float(text(row, "_time"))
    except ValueError:
        return None


def attributes(row: Mapping[str, Any]) -> dict[str, str]:
    """Where the event lives, for model routing on the server (``index``, ``sourcetype``, ``source``)."""
    out = {}
    for name in ("index", "sourcetype", "source"):
        value = text(row, name)
        if value:
            out[name] = value[:MAX_ATTRIBUTE_CHARS]
    return out


def external_id(row: Mapping[str, Any]) -> str:
    """The event's identity across searches: ``<splunk_server>:<index>:<_cd>`` ("" when a part is missing)."""
    server, index, cd = text(row, "splunk_server"), text(row, "index"), text(row, "_cd")
    return f"{server}:{index}:{cd}" if server and index and cd else ""


def time_order(times: list[float | None]) -> list[int]:
    """Positions in time order (oldest first). Ties keep the order of arrival, read backwards when the input
    runs newest first (Splunk's default), so equal timestamps stay in log order either way. Rows without a
    time keep their arrival position relative to each other, after the timed ones."""
    newer = older = 0
    previous = None
    for t in times:
        if t is not None and previous is not None:
            if t < previous:
                newer += 1
            elif t > previous:
                older += 1
        if t is not None:
            previous = t
    newest_first = newer > older
    n = len(times)

    def key(i: int) -> tuple[int, float, int]:
        t = times[i]
        return (t is None, 0.0 if t is None else t, (n - i) if newest_first and t is not None else i)

    return sorted(range(n), key=key)


_MV_VALUE = re.compile(r"\$((?:\$\$|[^$])*)\$(?:;|$)")


def decode_multivalue(encoded: str) -> list[str]:
    """A ``__mv_`` column's value (``$a$;$b$``, ``$`` doubled inside) as its list of values."""
    return [m.replace("$$", "$") for m in _MV_VALUE.findall(encoded)]


def read_results_csv(handle: Any) -> list[dict]:
    """Rows of a Splunk results CSV (an alert's ``results_file``), multivalue fields as lists."""
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None:
        return []
    out = []
    for values in reader:
        row: dict[str, Any] = {}
        for name, value in zip(header, values):
            if name.startswith("__mv_"):
                if value:
                    row[name[5:]] = decode_multivalue(value)
            elif name not in row:
                row[name] = value
        out.append(row)
    return out
