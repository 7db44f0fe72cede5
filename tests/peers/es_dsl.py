"""The parts of Elasticsearch's request language the stand-in peer evaluates: ``filter_path`` response
filtering, ``_source`` filtering, a query DSL subset, sort values and ``search_after``.

Semantics follow the Elasticsearch reference (``filter_path``: dotted paths, ``*`` within one name,
``**`` across levels, ``-`` excludes, arrays are transparent and emptied objects vanish; dates are
``strict_date_optional_time`` strings or epoch milliseconds and sort as epoch milliseconds; a missing
sort value sorts last ascending, first descending). What is not here is refused with a 400, never
silently ignored.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cmp_to_key
from typing import Any

LONG_MAX, LONG_MIN = 9223372036854775807, -9223372036854775808
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$")
DATE_MATH = re.compile(r"^now(?P<ops>(?:[+-]\d+[yMwdhHms])*)(?:/[yMwdhHms])?$")
UNITS_S = {"s": 1, "m": 60, "h": 3600, "H": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}
_MISSING = object()


class QueryError(ValueError):
    """A request the stand-in cannot or must not evaluate: ``error_type`` is Elasticsearch's exception type."""

    def __init__(self, reason: str, error_type: str = "parsing_exception") -> None:
        super().__init__(reason)
        self.reason, self.error_type = reason, error_type


# -- paths and filtering -------------------------------------------------------------------------------


def _split(patterns: str | Iterable[str]) -> tuple[list[list[str]], list[list[str]]]:
    items = patterns.split(",") if isinstance(patterns, str) else list(patterns)
    include, exclude = [], []
    for item in (p.strip() for p in items):
        if not item:
            continue
        (exclude if item.startswith("-") else include).append(item.lstrip("-").split("."))
    return include, exclude


def _step(patterns: list[list[str]], key: str) -> tuple[bool, list[list[str]]]:
    """For a key: whether some pattern ends on it (take the whole value), and the patterns left below it."""
    whole, below = False, []
    for p in patterns:
        if not p:
            continue
        if p[0] == "**":
            below.append(p)  # ** goes on matching deeper levels
            rest = p[1:]
            if not rest:
                whole = True
                continue
            matched, deeper = _step([rest], key)
            whole |= matched
            below += deeper
        elif fnmatch.fnmatchcase(key, p[0]):
            if len(p) == 1:
                whole = True
            else:
                below.append(p[1:])
    return whole, below


def _include(value: Any, patterns: list[list[str]]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, sub in value.items():
            whole, below = _step(patterns, key)
            if whole:
                out[key] = sub
            elif below:
                kept = _include(sub, below)
                if kept is not _MISSING:
                    out[key] = kept
        return out if out else _MISSING
    if isinstance(value, list):
        kept = [k for k in (_include(v, patterns) for v in value) if k is not _MISSING]
        return kept if kept else _MISSING
    return _MISSING  # a leaf with pattern parts left does not match


def _exclude(value: Any, patterns: list[list[str]]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, sub in value.items():
            whole, below = _step(patterns, key)
            if whole:
                continue
            out[key] = _exclude(sub, below) if below else sub
        return out
    if isinstance(value, list):
        return [_exclude(v, patterns) for v in value]
    return value


def filter_path(body: Any, patterns: str | Iterable[str] | None) -> Any:
    """``body`` as ``filter_path`` leaves it (``{}`` when nothing matches, as Elasticsearch answers)."""
    if not patterns:
        return body
    include, exclude = _split(patterns)
    if include:
        body = _include(body, include)
        if body is _MISSING:
            return {}
    if exclude:
        body = _exclude(body, exclude)
    return body


def filter_source(source: dict, spec: Any) -> dict | None:
    """``_source`` as a search or get asks for it: true/false, a pattern list, or ``{includes, excludes}``."""
    if spec is None or spec is True:
        return source
    if spec is False:
        return None
    if isinstance(spec, str):
        spec = [s for s in spec.split(",") if s]
    if isinstance(spec, list):
        spec = {"includes": spec}
    if not isinstance(spec, dict):
        raise QueryError("[_source] must be a boolean, a string, an array or an object")
    includes = spec.get("includes", spec.get("include")) or []
    excludes = spec.get("excludes", spec.get("exclude")) or []
    includes = [includes] if isinstance(includes, str) else includes
    excludes = [excludes] if isinstance(excludes, str) else excludes
    out = source
    if includes:
        kept = _include(source, [p.split(".") for p in includes])
        out = {} if kept is _MISSING else kept
    if excludes:
        out = _exclude(out, [p.split(".") for p in excludes])
    return out


def values(source: Any, path: str) -> list[Any]:
    """Every value at dotted ``path`` (object keys may themselves hold dots; arrays are flattened)."""
    parts = path.split(".")
    out: list[Any] = []

    def walk(node: Any, i: int) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, i)
            return
        if i == len(parts):
            if node is not None:
                out.append(node)
            return
        if not isinstance(node, dict):
            return
        for j in range(i + 1, len(parts) + 1):
            key = ".".join(parts[i:j])
            if key in node:
                walk(node[key], j)

    walk(source, 0)
    return out


# -- dates ---------------------------------------------------------------------------------------------


def is_date_text(value: Any) -> bool:
    return isinstance(value, str) and bool(ISO_DATE.match(value))


def epoch_millis(value: Any, now: float | None = None) -> int | None:
    """Epoch milliseconds of an ISO 8601 date, epoch-millis number (or its text), or ``now±N<unit>``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if re.fullmatch(r"-?\d{5,}", text):
        return int(text)
    math = DATE_MATH.match(text)
    if math:
        seconds = time.time() if now is None else now
        for sign, amount, unit in re.findall(r"([+-])(\d+)([yMwdhHms])", math.group("ops")):
            seconds += (1 if sign == "+" else -1) * int(amount) * UNITS_S[unit]
        return int(seconds * 1000)
    if ISO_DATE.match(text):
        text = text.replace(" ", "T").replace(",", ".").replace("Z", "+00:00")
        if len(text) == 10:
            text += "T00:00:00"
        text = re.sub(r"\.(\d{6})\d+", r".\1", text)  # Python keeps microseconds
        text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp() * 1000)
    return None


# -- queries -------------------------------------------------------------------------------------------


class Fields:
    """What the peer knows of a target's field types (``date`` from mappings, else dynamic date detection)."""

    def __init__(self, date_fields: Iterable[str] = (), numeric_fields: Iterable[str] = ()) -> None:
        self.date_fields = set(date_fields)
        self.numeric_fields = set(numeric_fields)

    def learn(self, field: str, sample: Any) -> None:
        """Dynamic mapping: the first value seen decides a field's type (date text, number or keyword)."""
        if field in self.date_fields or field in self.numeric_fields:
            return
        if is_date_text(sample):
            self.date_fields.add(field)
        elif isinstance(sample, int | float) and not isinstance(sample, bool):
            self.numeric_fields.add(field)

    def is_date(self, field: str, sample: Any) -> bool:
        return field in self.date_fields or is_date_text(sample)


def _same(doc_value: Any, query_value: Any) -> bool:
    if isinstance(doc_value, bool) or isinstance(query_value, bool):
        return str(doc_value).lower() == str(query_value).lower()
    if isinstance(doc_value, int | float) and isinstance(query_value, int | float):
        return float(doc_value) == float(query_value)
    if isinstance(doc_value, int | float) and isinstance(query_value, str):
        try:
            return float(doc_value) == float(query_value)
        except ValueError:
            return False
    return str(doc_value) == str(query_value)


def _one(clause: Any, name: str) -> tuple[str, Any]:
    if not isinstance(clause, dict) or len(clause) != 1:
        raise QueryError(f"[{name}] query malformed, must have exactly one field")
    return next(iter(clause.items()))


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def matches(query: dict | None, doc_id: str, source: dict, fields: Fields, now: float | None = None) -> bool:
    """Whether a document matches ``query`` (match_all, match_none, term, terms, range, exists, ids,
    prefix, match, bool)."""
    if not query:
        return True
    kind, body = _one(query, "query")
    if kind == "match_all":
        return True
    if kind == "match_none":
        return False
    if kind == "bool":
        if not isinstance(body, dict):
            raise QueryError("[bool] query malformed")
        musts = _as_list(body.get("must", [])) + _as_list(body.get("filter", []))
        if not all(matches(q, doc_id, source, fields, now) for q in musts):
            return False
        if any(matches(q, doc_id, source, fields, now) for q in _as_list(body.get("must_not", []))):
            return False
        shoulds = _as_list(body.get("should", []))
        if shoulds:
            minimum = body.get("minimum_should_match", 0 if musts else 1)
            hit = sum(matches(q, doc_id, source, fields, now) for q in shoulds)
            return hit >= int(minimum)
        return True
    if kind == "ids":
        return doc_id in [str(v) for v in body.get("values", [])]
    if kind == "exists":
        return bool(values(source, body["field"]))
    if kind in ("term", "terms", "prefix", "match", "range"):
        field, spec = _one(body, kind)
        found = values(source, field)
        if kind == "term":
            want = spec["value"] if isinstance(spec, dict) else spec
            return any(_same(v, want) for v in found)
        if kind == "terms":
            return any(_same(v, w) for v in found for w in _as_list(spec))
        if kind == "prefix":
            want = spec["value"] if isinstance(spec, dict) else spec
            return any(isinstance(v, str) and v.startswith(str(want)) for v in found)
        if kind == "match":
            want = str(spec["query"] if isinstance(spec, dict) else spec).lower().split()
            return any(all(w in str(v).lower().split() for w in want) or _same(v, spec) for v in found)
        return any(_in_range(v, spec, fields.is_date(field, v), now) for v in found)
    raise QueryError(f"unknown query [{kind}] (not evaluated by this Elasticsearch stand-in)")


def _in_range(value: Any, spec: dict, is_date: bool, now: float | None) -> bool:
    if not isinstance(spec, dict):
        raise QueryError("[range] query malformed")
    convert = (lambda v: epoch_millis(v, now)) if is_date else _number
    left = convert(value)
    if left is None:
        return False
    checks = {
        "gte": lambda a, b: a >= b,
        "gt": lambda a, b: a > b,
        "lte": lambda a, b: a <= b,
        "lt": lambda a, b: a < b,
    }
    for op, check in checks.items():
        if op in spec and spec[op] is not None:
            right = convert(spec[op])
            if right is None:
                raise QueryError(f"failed to parse [{spec[op]}] in a range query", "parse_exception")
            if not check(left, right):
                return False
    return True


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# -- sorting -------------------------------------------------------------------------------------------


class SortSpec:
    """One sort key: a field (date, number or keyword), ``_doc``/``_shard_doc`` (index order) or ``_score``."""

    def __init__(self, field: str, order: str, missing: str | None) -> None:
        if order not in ("asc", "desc"):
            raise QueryError(f"[sort] unknown order [{order}]")
        self.field, self.order = field, order
        self.missing = missing or ("_last" if order == "asc" else "_first")

    @property
    def tiebreaker(self) -> bool:
        return self.field in ("_doc", "_shard_doc")


def parse_sort(sort: Any, *, pit: bool) -> list[SortSpec]:
    """Sort clauses as Elasticsearch takes them; a point-in-time search gains ``_shard_doc`` as the tiebreaker."""
    specs: list[SortSpec] = []
    for clause in _as_list(sort) if sort is not None else []:
        if isinstance(clause, str):
            field, _, order = clause.partition(":")
            specs.append(SortSpec(field, order or ("desc" if field == "_score" else "asc"), None))
        elif isinstance(clause, dict) and len(clause) == 1:
            field, spec = next(iter(clause.items()))
            if isinstance(spec, str):
                specs.append(SortSpec(field, spec, None))
            elif isinstance(spec, dict):
                specs.append(SortSpec(field, spec.get("order", "asc"), spec.get("missing")))
            else:
                raise QueryError("[sort] malformed")
        else:
            raise QueryError("[sort] malformed")
    if pit and not any(s.tiebreaker for s in specs):
        specs.append(SortSpec("_shard_doc", "asc", None))
    return specs


def sort_values(specs: list[SortSpec], source: dict, order: int, fields: Fields) -> list[Any]:
    """The ``sort`` array of a hit: dates as epoch millis, numbers, keywords; missing as Elasticsearch writes it."""
    out: list[Any] = []
    for s in specs:
        if s.tiebreaker:
            out.append(order)
            continue
        if s.field == "_score":
            out.append(1.0)
            continue
        found = values(source, s.field)
        keyed = []
        for v in found:
            if fields.is_date(s.field, v):
                keyed.append(epoch_millis(v))
            elif isinstance(v, bool):
                keyed.append(int(v))
            else:
                keyed.append(v)
        keyed = [k for k in keyed if k is not None]
        if not keyed:
            numeric = s.field in fields.date_fields or s.field in fields.numeric_fields
            out.append((LONG_MAX if s.missing == "_last" else LONG_MIN) if numeric else None)
            continue
        try:
            out.append(min(keyed) if s.order == "asc" else max(keyed))
        except TypeError:
            out.append(sorted(map(str, keyed))[0 if s.order == "asc" else -1])
    return out


def _cmp(a: Any, b: Any) -> int:
    if a is None and b is None:
        return 0
    if a is None:
        return 1
    if b is None:
        return -1
    if isinstance(a, int | float) and isinstance(b, int | float):
        return (a > b) - (a < b)
    a, b = str(a), str(b)
    return (a > b) - (a < b)


def compare(specs: list[SortSpec], left: list[Any], right: list[Any]) -> int:
    """Order of two hits' sort values (missing values where each key's ``missing`` puts them)."""
    for s, a, b in zip(specs, left, right, strict=True):
        if a is None or b is None:  # keyword missing values: first or last whatever the direction
            if a is None and b is None:
                continue
            first = s.missing == "_first"
            return (-1 if first else 1) if a is None else (1 if first else -1)
        c = _cmp(a, b)
        if c:
            return c if s.order == "asc" else -c
    return 0


def sort_key(specs: list[SortSpec]):
    return cmp_to_key(lambda x, y: compare(specs, x, y))


def after_key(specs: list[SortSpec], search_after: list[Any]) -> list[Any]:
    """``search_after`` as sort values (date text becomes epoch millis); its length must match the sort."""
    if not isinstance(search_after, list) or len(search_after) != len(specs):
        n = len(search_after) if isinstance(search_after, list) else 1
        raise QueryError(f"search_after has {n} value(s) but sort has {len(specs)}.", "illegal_argument_exception")
    out = []
    for s, v in zip(specs, search_after, strict=True):
        if isinstance(v, str) and not s.tiebreaker and s.field != "_score" and is_date_text(v):
            out.append(epoch_millis(v))
        else:
            out.append(v)
    return out


def duration_s(text: Any) -> float:
    """Seconds of an Elasticsearch time value (``30s``, ``1m``, ``500ms``, ``2h``, ``1d``)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", str(text).strip())
    if not match:
        raise QueryError(f"failed to parse setting [keep_alive] with value [{text}] as a time value", "parse_exception")
    amount, unit = float(match.group(1)), match.group(2)
    return amount * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
