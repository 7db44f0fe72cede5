"""Training data straight from an Elasticsearch index (``logwarden train --from-es INDEX``).

Documents are read oldest first through a point-in-time, streamed (never held whole), with a progress bar.
Each document's message field (``--json-message``, default ``message``) is a log line in the training
format (``--format``); with ``--format json`` the whole ``_source`` is the JSON line. Documents analysts
labelled anomalous (``logwarden.label: anomaly``) are left out unless asked otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from logwarden.core.errors import BadLineError, LogWardenError
from logwarden.core.records import LogRecord
from logwarden.integrations.elasticsearch.bulk import lookup
from logwarden.integrations.elasticsearch.search import iter_hits

ANOMALY_LABELS = ["anomaly", "anomalous"]


def training_query(message_field: str, exclude_labelled: bool) -> dict:
    query: dict = {"bool": {"filter": [{"exists": {"field": message_field}}]}}
    if exclude_labelled:
        query["bool"]["must_not"] = [{"terms": {"logwarden.label": ANOMALY_LABELS}}]
    return query


def index_records(
    client,
    index: str,
    fmt,
    *,
    message_field: str = "message",
    time_field: str = "@timestamp",
    exclude_labelled: bool = True,
    max_line_bytes: int = 65536,
    stats=None,
    progress: bool = True,
    page_size: int = 1000,
) -> Iterator[LogRecord]:
    """``LogRecord``s of ``index``'s documents in time order; bad ones are counted in ``stats`` and skipped."""
    from tqdm import tqdm

    query = training_query(message_field, exclude_labelled)
    try:
        total = int(client.count(index=index, query=query, ignore_unavailable=True)["count"])
    except Exception as exc:  # any client error: say which index could not be read
        raise LogWardenError(f"cannot read Elasticsearch index {index!r}: {type(exc).__name__}: {exc}") from None
    if stats is not None:
        stats.files += 1
    whole = fmt.spec == "json"
    with tqdm(total=total, unit="doc", desc=f"reading {index}", disable=not progress) as bar:
        hits = iter_hits(client, index, query, time_field=time_field, page_size=page_size)
        for n, hit in enumerate(hits, start=1):
            bar.update(1)
            if stats is not None:
                stats.lines += 1
            line = json.dumps(hit.source, ensure_ascii=False) if whole else lookup(hit.source, message_field)
            if not isinstance(line, str) or not line.strip():
                if stats is not None:
                    stats.empty += 1
                continue
            if len(line.encode("utf-8")) > max_line_bytes:
                if stats is not None:
                    stats.add_bad("too_long", hit.external_id, n, f"longer than {max_line_bytes} bytes")
                continue
            try:
                record = fmt.parse(line, source=hit.index, line_no=n)
            except BadLineError as exc:
                if stats is not None:
                    stats.add_bad("format", hit.external_id, n, str(exc))
                continue
            if stats is not None:
                stats.records += 1
            yield record
