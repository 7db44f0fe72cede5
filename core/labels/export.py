"""Labels to and from JSON lines or CSV, streaming.

CSV cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or CR) get a
leading apostrophe, as OWASP advises for CSV injection; ``read_labels`` removes it again, so an
export reads back into the same labels. In CSV, ``keys`` is one space-separated cell and empty
optional cells read back as absent.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import fields
from typing import IO

from logwarden.core.errors import LogWardenError
from logwarden.core.labels.label import Label, LabelError

FORMATS = ("jsonl", "csv")
COLUMNS = [f.name for f in fields(Label)]
_OPTIONAL = {
    "template_id",
    "event_id",
    "message",
    "predicted",
    "keys",
    "reason_code",
    "external_id",
    "attributes",
    "id",
    "created_at",
    "retracted_at",
}
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def write_labels(labels: Iterable[Label], file: IO[str], fmt: str = "jsonl") -> int:
    """Write ``labels`` to ``file`` one by one; returns how many."""
    _check(fmt)
    n = 0
    if fmt == "jsonl":
        for n, label in enumerate(labels, start=1):  # noqa: B007
            file.write(json.dumps(label.to_dict(), ensure_ascii=False) + "\n")
        return n
    writer = csv.writer(file)
    writer.writerow(COLUMNS)
    for n, label in enumerate(labels, start=1):  # noqa: B007
        row = label.to_dict()
        row["keys"] = None if label.keys is None else " ".join(label.keys)
        row["attributes"] = None if label.attributes is None else json.dumps(label.attributes, ensure_ascii=False)
        writer.writerow(["" if row[c] is None else _escape(str(row[c])) for c in COLUMNS])
    return n


def read_labels(file: IO[str], fmt: str = "jsonl") -> Iterator[Label]:
    """Labels back from ``write_labels`` output; errors name the line and the field."""
    _check(fmt)
    if fmt == "jsonl":
        for line_no, line in enumerate(file, start=1):
            if line.strip():
                yield _parse(line_no, lambda line=line: json.loads(line))
        return
    reader = csv.DictReader(file)
    if reader.fieldnames is None or set(reader.fieldnames) != set(COLUMNS):
        raise LogWardenError(f"labels CSV header must be: {','.join(COLUMNS)}")
    for line_no, row in enumerate(reader, start=2):
        yield _parse(line_no, lambda row=row: _from_csv(row))


def _from_csv(row: dict[str, str]) -> dict:
    data: dict = {k: _unescape(v) for k, v in row.items()}
    for name in _OPTIONAL:
        if data[name] == "":
            data[name] = None
    if data["keys"] is not None:
        data["keys"] = data["keys"].split(" ")
    if data["attributes"] is not None:
        try:
            data["attributes"] = json.loads(data["attributes"])
        except ValueError:
            raise LabelError("attributes", "must be a JSON object of strings") from None
    if data["id"] is not None:
        if not data["id"].isdigit():
            raise LabelError("id", "must be a positive integer")
        data["id"] = int(data["id"])
    return data


def _parse(line_no: int, load) -> Label:
    try:
        return Label.from_dict(load())
    except json.JSONDecodeError as exc:
        raise LogWardenError(f"labels line {line_no}: not valid JSON ({exc.msg})") from exc
    except LabelError as exc:
        raise LabelError(exc.field, f"line {line_no}: {exc.problem}") from exc


def _escape(value: str) -> str:
    return "'" + value if value.startswith((*_FORMULA, "'")) else value


def _unescape(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith((*_FORMULA, "'")) else value


def _check(fmt: str) -> None:
    if fmt not in FORMATS:
        raise LogWardenError(f"unknown label export format {fmt!r}: use {' or '.join(FORMATS)}")
