"""A local stand-in for an Elasticsearch 9 cluster (aiohttp), for the tests and benchmarks of everything
that talks to Elasticsearch: the official ``elasticsearch`` client, the LogWarden ES proxy and worker,
next-hop writers.

    with ElasticsearchPeer() as es:                       # a background thread, a free loopback port
        client = Elasticsearch(es.url)
        es.fail_items(429, times=3)                       # the next 3 bulk items are rejected
        es.fail_requests(503, times=2, path="/_bulk")     # the next 2 bulk requests answer 503
        es.sources("logs-*")                              # what got indexed, in order

It speaks the REST API as the specification (``elastic/elasticsearch-specification``) defines it, for
the parts integrations use, and says so with a 400 where it does not:

* ``HEAD /``, ``GET /`` (version 9), ``GET /_license`` (active), ``GET /_cluster/health``; every
  response carries ``X-Elastic-Product: Elasticsearch``; ``Accept: …compatible-with=N`` is answered in
  kind (8 and 9; others 400); bodies need a JSON or NDJSON ``Content-Type`` (else 406).
* ``POST|PUT /_bulk`` and ``/{index}/_bulk``: NDJSON (blank action lines skipped, CRLF, the final newline
  required), ``Content-Encoding: gzip``, ``index``/``create``/``update``/``delete`` with ``_index``
  (path default), ``_id`` (generated when absent), ``if_seq_no``/``if_primary_term``, ``retry_on_conflict``,
  ``pipeline``; per-item results in request order (201/200, 409 conflicts, 404 missing, 400 bad
  documents) and ``errors``; ``filter_path`` on every API.
* Documents: ``GET|HEAD /{index}/_doc/{id}``, ``_mget``, ``PUT|POST /{index}/_doc[/{id}]``, ``/_create/{id}``,
  ``POST /{index}/_update/{id}`` (``doc``, ``upsert``, ``doc_as_upsert``, ``detect_noop``),
  ``DELETE /{index}/_doc/{id}``.
* Search: ``/_search`` and ``/{target}/_search`` (query DSL subset of ``es_dsl``), ``sort``,
  ``search_after``, ``size``/``from``, ``_source`` filtering, ``seq_no_primary_term``, ``version``,
  ``track_total_hits``; point in time (``POST /{target}/_pit?keep_alive=``, ``DELETE /_pit``): a PIT
  search sees the documents as they were when it opened and gains the ``_shard_doc`` tiebreaker;
  ``_count``.
* Indices and templates: ``PUT|GET|HEAD|DELETE /{index}``, ``/_refresh``, ``/_index_template``,
  ``/_component_template``, ``/_ingest/pipeline`` (stored and returned as given), data streams (created
  on first write when an index template with ``data_stream`` matches; only ``create`` writes go to the
  stream, ``@timestamp`` required; backing indices ``.ds-<name>-<date>-<generation>`` accept updates
  and ``if_seq_no`` writes; ``_rollover``). Ingest pipelines run their ``set`` and ``remove``
  processors (``default_pipeline``, ``final_pipeline``, ``?pipeline=``); any other processor gives the
  item a 400 saying it is not run here.
* Optional basic or API-key auth (401 ``security_exception``), TLS, gzip answers when asked.

Differences from a real cluster, on purpose: writes are visible at once (as if every request said
``refresh=true``); ``_score`` is 1.0; one shard; no aggregations or scripts.

Faults (scriptable from tests, thread-safe): ``fail_requests`` (whole-request 429/503/413/… or a
dropped connection, for N requests or S seconds), ``fail_items`` (per-item 409/429/400/… for N items or
S seconds, optionally only those a predicate picks), ``conflict_updates`` (a concurrent writer bumps the
next N updated documents, which ``retry_on_conflict`` absorbs), ``down()``/``up()`` (connection refused,
state kept), ``delay_s`` (latency on every answer). Everything it received is in ``requests``.

Run standalone for benchmarks: ``PYTHONPATH=tests python -m peers.elasticsearch --port 9200``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import copy
import fnmatch
import gzip
import itertools
import json
import os
import re
import threading
import time
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import hdrs, web

from .es_dsl import (
    Fields,
    QueryError,
    after_key,
    duration_s,
    filter_path,
    filter_source,
    matches,
    parse_sort,
    sort_key,
    sort_values,
    values,
)

VERSION = "9.1.5"
PRODUCT = {"X-Elastic-Product": "Elasticsearch"}
JSON_TYPES = ("application/json", "application/x-ndjson", "application/vnd.elasticsearch+json")
NDJSON_TYPES = (*JSON_TYPES, "application/vnd.elasticsearch+x-ndjson")
BULK_META = {
    "_index",
    "_id",
    "routing",
    "if_seq_no",
    "if_primary_term",
    "version",
    "version_type",
    "dynamic_templates",
    "pipeline",
    "require_alias",
    "require_data_stream",
    "retry_on_conflict",
    "_source",
    "list_executed_pipelines",
}
UPDATE_KEYS = {"doc", "upsert", "doc_as_upsert", "script", "scripted_upsert", "detect_noop", "_source"}
MAX_RESULT_WINDOW = 10_000
FAULT_REASONS = {
    400: ("document_parsing_exception", "[1:2] failed to parse: injected by the test"),
    404: ("index_not_found_exception", "no such index"),
    409: ("version_conflict_engine_exception", "version conflict, injected by the test"),
    413: ("content_too_long_exception", "request body is too large"),
    429: (
        "es_rejected_execution_exception",
        "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, "
        "all_bytes=0, coordinating_operation_bytes=1024, max_coordinating_and_primary_bytes=1024]",
    ),
    500: ("exception", "injected by the test"),
    503: ("cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE/2/no master];"),
}
SHARDS = {"total": 2, "successful": 1, "failed": 0}


class EsError(Exception):
    """An Elasticsearch error answer: ``{"error": {"root_cause": [...], "type", "reason"}, "status"}``."""

    def __init__(self, status: int, error_type: str, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.error_type, self.reason, self.headers = status, error_type, reason, headers or {}

    def cause(self) -> dict:
        return {"type": self.error_type, "reason": self.reason}

    def body(self) -> dict:
        return {"error": {"root_cause": [self.cause()], **self.cause()}, "status": self.status}


def _plain_error(status: int, text: str) -> EsError:
    """Errors Elasticsearch's REST layer writes as ``{"error": "<text>", "status": N}``."""
    err = EsError(status, "", text)
    err.body = lambda: {"error": text, "status": status}  # type: ignore[method-assign]
    return err


# -- state ---------------------------------------------------------------------------------------------


class Doc:
    """One stored document version; replaced (never changed) by a write, so snapshots can share it."""

    __slots__ = ("_parsed", "_raw", "order", "primary_term", "seq_no", "version")

    def __init__(self, raw: bytes | None, parsed: dict | None, seq_no: int, version: int, order: int) -> None:
        self._raw, self._parsed = raw, parsed
        self.seq_no, self.primary_term, self.version, self.order = seq_no, 1, version, order

    @property
    def source(self) -> dict:
        if self._parsed is None:
            self._parsed = json.loads(self._raw)
        return self._parsed


@dataclass
class Index:
    name: str
    mappings: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)  # flat, "index.default_pipeline": ...
    data_stream: str | None = None
    docs: dict[str, Doc] = field(default_factory=dict)
    next_seq_no: int = 0
    uuid: str = field(default_factory=lambda: base64.urlsafe_b64encode(os.urandom(16)).decode()[:22])
    created: float = field(default_factory=time.time)

    def fields(self) -> Fields:
        dates, numbers = [], []

        def walk(props: dict, prefix: str) -> None:
            for name, spec in (props or {}).items():
                path = f"{prefix}{name}"
                kind = spec.get("type")
                if kind in ("date", "date_nanos"):
                    dates.append(path)
                elif kind in ("long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float"):
                    numbers.append(path)
                walk(spec.get("properties", {}), path + ".")

        walk(self.mappings.get("properties", {}), "")
        return Fields(dates, numbers)


@dataclass
class DataStream:
    name: str
    template: str
    indices: list[str] = field(default_factory=list)
    generation: int = 0


@dataclass
class Pit:
    id: str
    snapshot: list[tuple[str, dict[str, Doc], Fields]]
    expires: float
    cache: dict = field(default_factory=dict)


@dataclass
class RequestFault:
    status: int | None
    times: int | None
    until: float | None
    method: str | None
    path: str | None
    body: Any
    headers: dict[str, str]
    disconnect: str | None  # "before" (nothing done) or "after" (done, answer lost)
    product_header: bool

    def live(self, now: float) -> bool:
        return (self.times is None or self.times > 0) and (self.until is None or now < self.until)


@dataclass
class ItemView:
    """What an item fault's predicate sees: the bulk action, its target as written, and its source."""

    op: str
    index: str
    id: str | None
    meta: dict
    raw_source: bytes | None

    @property
    def source(self) -> dict | None:
        return None if self.raw_source is None else json.loads(self.raw_source)


@dataclass
class ItemFault:
    status: int
    times: int | None
    until: float | None
    ops: tuple[str, ...]
    match: Callable[[ItemView], bool] | None
    error_type: str
    reason: str

    def live(self, now: float) -> bool:
        return (self.times is None or self.times > 0) and (self.until is None or now < self.until)


@dataclass
class Captured:
    """One request as the peer received it: ``body`` decompressed, ``raw`` as sent."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    raw: bytes
    body: bytes
    status: int = 0

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)

    def ndjson(self) -> list[Any]:
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


def _deep_merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _flat_settings(settings: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in (settings or {}).items():
        if isinstance(value, dict):
            out.update(_flat_settings(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return {(k if k.startswith("index.") else f"index.{k}"): v for k, v in out.items()}


def _auto_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(15)).decode()


def _bool_param(value: Any) -> bool:
    return value in (True, "true", "", "1")


class Cluster:
    """The cluster's state and its APIs as plain functions of (parameters, body) → (status, answer).
    All access goes through ``lock`` (the HTTP loop and the test's thread share it)."""

    def __init__(self, validate_sources: bool = True) -> None:
        self.validate_sources = validate_sources  # False (benchmarks): sources are stored unread until searched
        self.lock = threading.RLock()
        self.indices: dict[str, Index] = {}
        self.data_streams: dict[str, DataStream] = {}
        self.index_templates: dict[str, dict] = {}
        self.component_templates: dict[str, dict] = {}
        self.pipelines: dict[str, dict] = {}
        self.pits: dict[str, Pit] = {}
        self.request_faults: list[RequestFault] = []
        self.item_faults: list[ItemFault] = []
        self.pending_conflicts = 0
        self.item_statuses: Counter[int] = Counter()
        self._order = itertools.count()
        self.cluster_uuid = uuid.uuid4().hex[:22]

    # -- names ------------------------------------------------------------------------------------

    @staticmethod
    def check_name(name: str) -> None:
        if (
            not name
            or name != name.lower()
            or name[0] in "_-+"
            or name in (".", "..")
            or any(c in name for c in ' "*\\<|,>/?#:')
        ):
            raise EsError(
                400,
                "invalid_index_name_exception",
                f"Invalid index name [{name}], must be lowercase and must not contain the characters "
                '[\\, /, *, ?, ", <, >, |, space, ",", #, :] nor start with [_, -, +]',
            )

    def resolve(self, expression: str | None, *, ignore_unavailable: bool = False) -> list[Index]:
        """Concrete indices of a target expression (names, wildcards, data streams, ``_all``)."""
        names: list[str] = []
        for part in (expression or "_all").split(","):
            part = part.strip()
            exclude = part.startswith("-") and bool(names)
            part = part.lstrip("-") if exclude else part
            if part in ("_all", "*", ""):
                found = [n for n in self.indices if not n.startswith(".") or self.indices[n].data_stream]
            elif "*" in part:
                found = [n for n in self.indices if fnmatch.fnmatchcase(n, part)]
                for ds in self.data_streams.values():
                    if fnmatch.fnmatchcase(ds.name, part):
                        found += ds.indices
                if not part.startswith("."):
                    found = [n for n in found if not n.startswith(".") or self.indices[n].data_stream]
            elif part in self.data_streams:
                found = list(self.data_streams[part].indices)
            elif part in self.indices:
                found = [part]
            elif ignore_unavailable:
                found = []
            else:
                raise EsError(404, "index_not_found_exception", f"no such index [{part}]")
            if exclude:
                names = [n for n in names if n not in found]
            else:
                names += [n for n in found if n not in names]
        return [self.indices[n] for n in names]

    def matching_template(self, name: str) -> tuple[str, dict] | None:
        best = None
        for tname, template in self.index_templates.items():
            if not any(fnmatch.fnmatchcase(name, p) for p in template.get("index_patterns", [])):
                continue
            if best is None or template.get("priority", 0) > best[1].get("priority", 0):
                best = (tname, template)
        return best

    def _composed(self, template: dict) -> tuple[dict, dict]:
        mappings, settings = {}, {}
        for part in template.get("composed_of", []):
            body = self.component_templates.get(part, {}).get("template", {})
            mappings = _deep_merge(mappings, body.get("mappings", {}))
            settings = _deep_merge(settings, body.get("settings", {}))
        own = template.get("template", {})
        return _deep_merge(mappings, own.get("mappings", {})), _deep_merge(settings, own.get("settings", {}))

    def create_index(self, name: str, body: dict | None = None, data_stream: str | None = None) -> Index:
        if data_stream is None:
            self.check_name(name)
        if name in self.indices or name in self.data_streams:
            raise EsError(
                400,
                "resource_already_exists_exception",
                f"index [{name}/{self.indices.get(name, Index(name)).uuid}] already exists",
            )
        body = body or {}
        mappings, settings = {}, {}
        found = self.matching_template(data_stream or name)
        if found is not None:
            mappings, settings = self._composed(found[1])
        index = Index(
            name,
            mappings=_deep_merge(mappings, body.get("mappings", {})),
            settings=_flat_settings(_deep_merge(settings, body.get("settings", {}))),
            data_stream=data_stream,
        )
        self.indices[name] = index
        return index

    def create_data_stream(self, name: str) -> DataStream:
        self.check_name(name)
        if name in self.data_streams or name in self.indices:
            raise EsError(400, "resource_already_exists_exception", f"data_stream [{name}] already exists")
        found = self.matching_template(name)
        if found is None or "data_stream" not in found[1]:
            raise EsError(
                400, "illegal_argument_exception", f"no matching index template with data stream found for [{name}]"
            )
        ds = DataStream(name, found[0])
        self.data_streams[name] = ds
        self.rollover(name)
        return ds

    def rollover(self, name: str) -> tuple[str | None, str]:
        ds = self.data_streams.get(name)
        if ds is None:
            raise EsError(404, "index_not_found_exception", f"no such index [{name}]")
        ds.generation += 1
        backing = f".ds-{name}-{datetime.now(UTC):%Y.%m.%d}-{ds.generation:06d}"
        self.create_index(backing, data_stream=name)
        old = ds.indices[-1] if ds.indices else None
        ds.indices.append(backing)
        return old, backing

    def write_target(self, name: str, op: str, meta: dict) -> Index:
        """The index a write of ``op`` to ``name`` goes to, creating it (or its data stream) when absent."""
        if name in self.data_streams:
            if op != "create":
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    "only write ops with an op_type of create are allowed in data streams",
                )
            return self.indices[self.data_streams[name].indices[-1]]
        if name in self.indices:
            return self.indices[name]
        if meta.get("require_alias") in (True, "true"):
            raise EsError(
                404,
                "index_not_found_exception",
                f"no such index [{name}] and [require_alias] request flag is [true] and [" + name + "] is not an alias",
            )
        self.check_name(name)
        found = self.matching_template(name)
        if found is not None and "data_stream" in found[1]:
            if op != "create":
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    "only write ops with an op_type of create are allowed in data streams",
                )
            ds = self.create_data_stream(name)
            return self.indices[ds.indices[-1]]
        return self.create_index(name)

    # -- faults -----------------------------------------------------------------------------------

    def request_fault(self, method: str, path: str) -> RequestFault | None:
        now = time.monotonic()
        with self.lock:
            self.request_faults = [f for f in self.request_faults if f.live(now)]
            for fault in self.request_faults:
                if fault.method and fault.method.upper() != method:
                    continue
                if fault.path and not re.search(fault.path, path):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return None

    def item_fault(self, view: ItemView) -> EsError | None:
        if not self.item_faults:
            return None
        now = time.monotonic()
        self.item_faults = [f for f in self.item_faults if f.live(now)]
        for fault in self.item_faults:
            if view.op not in fault.ops:
                continue
            if fault.match is not None and not fault.match(view):
                continue
            if fault.times is not None:
                fault.times -= 1
            return EsError(fault.status, fault.error_type, fault.reason)
        return None

    # -- writes -----------------------------------------------------------------------------------

    def _store(self, index: Index, doc_id: str, raw: bytes | None, parsed: dict | None, version: int) -> Doc:
        doc = Doc(raw, parsed, index.next_seq_no, version, next(self._order))
        index.next_seq_no += 1
        index.docs[doc_id] = doc
        return doc

    @staticmethod
    def _check_seq_no(index: Index, doc_id: str, current: Doc | None, meta: dict) -> None:
        if meta.get("if_seq_no") is None and meta.get("if_primary_term") is None:
            return
        want_seq, want_term = int(meta.get("if_seq_no", -2)), int(meta.get("if_primary_term", 0))
        if current is None:
            raise EsError(
                409,
                "version_conflict_engine_exception",
                f"[{doc_id}]: version conflict, required seqNo [{want_seq}], primary term [{want_term}] but no "
                "document was found",
            )
        if (current.seq_no, current.primary_term) != (want_seq, want_term):
            raise EsError(
                409,
                "version_conflict_engine_exception",
                f"[{doc_id}]: version conflict, required seqNo [{want_seq}], primary term [{want_term}]. current "
                f"document has seqNo [{current.seq_no}] and primary term [{current.primary_term}]",
            )

    def _pipelines(self, index: Index, meta: dict, params: dict) -> list[str]:
        chosen = meta.get("pipeline") or params.get("pipeline") or index.settings.get("index.default_pipeline")
        out = [chosen] if chosen and chosen != "_none" else []
        final = index.settings.get("index.final_pipeline")
        if final and final != "_none":
            out.append(final)
        return out

    def _run_pipeline(self, pipeline_id: str, source: dict, depth: int = 0) -> dict:
        pipeline = self.pipelines.get(pipeline_id)
        if pipeline is None:
            raise EsError(400, "illegal_argument_exception", f"pipeline with id [{pipeline_id}] does not exist")
        for processor in pipeline.get("processors", []):
            ((kind, spec),) = processor.items()
            if "if" in spec:
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"processor [{kind}] has an [if] condition: painless is not run by this Elasticsearch stand-in",
                )
            if kind == "set":
                present = bool(values(source, spec["field"]))
                if present and spec.get("override", True) is False:
                    continue
                value = spec["value"] if "value" in spec else values(source, spec.get("copy_from", ""))[0]
                _set_path(source, spec["field"], _render(value, source))
            elif kind == "remove":
                for name in spec["field"] if isinstance(spec["field"], list) else [spec["field"]]:
                    if not _remove_path(source, name) and not spec.get("ignore_missing", False):
                        raise EsError(400, "illegal_argument_exception", f"field [{name}] not present as part of path")
            elif kind == "pipeline" and depth < 10:
                source = self._run_pipeline(spec["name"], source, depth + 1)
            else:
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"processor [{kind}] is not run by this Elasticsearch stand-in (it runs set, remove and pipeline)",
                )
        return source

    def write(self, op: str, target: str, doc_id: str | None, meta: dict, raw: bytes | None, params: dict) -> dict:
        """One write (a bulk item or a single-document API); the item result, or ``EsError``."""
        index = self.write_target(target, op, meta)
        if op in ("index", "create"):
            doc_id = doc_id or _auto_id()
            current = index.docs.get(doc_id)
            if op == "create" and current is not None:
                raise EsError(
                    409,
                    "version_conflict_engine_exception",
                    f"[{doc_id}]: version conflict, document already exists (current version [{current.version}])",
                )
            self._check_seq_no(index, doc_id, current, meta)
            parsed = None
            pipelines = self._pipelines(index, meta, params)
            if pipelines or index.data_stream:
                parsed = _parse_source(raw, doc_id)
                for pipeline_id in pipelines:
                    parsed = self._run_pipeline(pipeline_id, parsed)
                if index.data_stream and not values(parsed, "@timestamp"):
                    raise EsError(
                        400,
                        "document_parsing_exception",
                        "[1:1] failed to parse: data stream timestamp field [@timestamp] is missing",
                    )
            elif self.validate_sources:
                parsed = _parse_source(raw, doc_id)
            version = 1 if current is None else current.version + 1
            doc = self._store(index, doc_id, None if parsed is not None else raw, parsed, version)
            created = current is None
            return self._ok(index, doc_id, doc, "created" if created else "updated", 201 if created else 200)
        if op == "delete":
            current = index.docs.get(doc_id)
            self._check_seq_no(index, doc_id, current, meta)
            if current is None:
                seq = index.next_seq_no
                index.next_seq_no += 1
                return {
                    "_index": index.name,
                    "_id": doc_id,
                    "_version": 1,
                    "result": "not_found",
                    "_shards": SHARDS,
                    "_seq_no": seq,
                    "_primary_term": 1,
                    "status": 404,
                }
            del index.docs[doc_id]
            seq = index.next_seq_no
            index.next_seq_no += 1
            return {
                "_index": index.name,
                "_id": doc_id,
                "_version": current.version + 1,
                "result": "deleted",
                "_shards": SHARDS,
                "_seq_no": seq,
                "_primary_term": 1,
                "status": 200,
            }
        return self._update(index, doc_id, meta, raw)

    def _update(self, index: Index, doc_id: str, meta: dict, raw: bytes) -> dict:
        body = _parse_source(raw, doc_id, update=True)
        unknown = set(body) - UPDATE_KEYS
        if unknown:
            raise EsError(
                400, "x_content_parse_exception", f"[1:2] [UpdateRequest] unknown field [{sorted(unknown)[0]}]"
            )
        if "script" in body:
            raise EsError(400, "illegal_argument_exception", "scripts are not run by this Elasticsearch stand-in")
        retries = int(meta.get("retry_on_conflict", 0) or 0)
        for attempt in range(retries + 1):
            current = index.docs.get(doc_id)
            self._check_seq_no(index, doc_id, current, meta)
            if current is None:
                if "upsert" in body:
                    new = copy.deepcopy(body["upsert"])
                elif body.get("doc_as_upsert") and "doc" in body:
                    new = copy.deepcopy(body["doc"])
                else:
                    raise EsError(404, "document_missing_exception", f"[{doc_id}]: document missing")
                doc = self._store(index, doc_id, None, new, 1)
                return self._ok(index, doc_id, doc, "created", 201)
            if self.pending_conflicts > 0:  # a concurrent writer got there first
                self.pending_conflicts -= 1
                self._store(index, doc_id, current._raw, current._parsed, current.version + 1)
                if attempt < retries:
                    continue
                latest = index.docs[doc_id]
                raise EsError(
                    409,
                    "version_conflict_engine_exception",
                    f"[{doc_id}]: version conflict, required seqNo [{current.seq_no}], primary term [1]. current "
                    f"document has seqNo [{latest.seq_no}] and primary term [1]",
                )
            merged = _deep_merge(current.source, body.get("doc", {}))
            if body.get("detect_noop", True) and merged == current.source:
                return self._ok(index, doc_id, current, "noop", 200, shards={"total": 0, "successful": 0, "failed": 0})
            doc = self._store(index, doc_id, None, merged, current.version + 1)
            return self._ok(index, doc_id, doc, "updated", 200)
        raise AssertionError("unreachable")

    @staticmethod
    def _ok(index: Index, doc_id: str, doc: Doc, result: str, status: int, shards: dict | None = None) -> dict:
        return {
            "_index": index.name,
            "_id": doc_id,
            "_version": doc.version,
            "result": result,
            "_shards": shards or SHARDS,
            "_seq_no": doc.seq_no,
            "_primary_term": doc.primary_term,
            "status": status,
        }

    def bulk(self, body: bytes, default_index: str | None, params: dict) -> dict:
        started = time.perf_counter()
        actions = parse_bulk(body, default_index)
        items = []
        with self.lock:
            for op, meta, raw in actions:
                target, doc_id = meta.get("_index") or default_index, meta.get("_id")
                doc_id = None if doc_id is None else str(doc_id)
                fault = self.item_fault(ItemView(op, target, doc_id, meta, raw))
                try:
                    if fault is not None:
                        raise fault
                    result = self.write(op, target, doc_id, meta, raw, params)
                except EsError as exc:
                    result = {
                        "_index": target,
                        "_id": doc_id or _auto_id(),
                        "status": exc.status,
                        "error": {**exc.cause(), "index": target},
                    }
                self.item_statuses[result["status"]] += 1
                items.append({op: result})
        errors = any("error" in next(iter(i.values())) for i in items)
        return {"errors": errors, "took": int((time.perf_counter() - started) * 1000), "items": items}

    # -- reads ------------------------------------------------------------------------------------

    def get(self, target: str, doc_id: str) -> tuple[int, dict]:
        if target in self.data_streams:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"get is not supported on data stream [{target}]: use a backing index",
            )
        index = self.resolve(target)[0]
        doc = index.docs.get(doc_id)
        if doc is None:
            return 404, {"_index": index.name, "_id": doc_id, "found": False}
        return 200, {
            "_index": index.name,
            "_id": doc_id,
            "_version": doc.version,
            "_seq_no": doc.seq_no,
            "_primary_term": doc.primary_term,
            "found": True,
            "_source": doc.source,
        }

    def open_pit(self, target: str, keep_alive: str | None, params: dict) -> dict:
        if not keep_alive:
            raise EsError(
                400, "action_request_validation_exception", "Validation Failed: 1: [keep_alive] is not specified;"
            )
        seconds = duration_s(keep_alive)
        indices = self.resolve(target, ignore_unavailable=_bool_param(params.get("ignore_unavailable", "false")))
        pit_id = base64.urlsafe_b64encode(os.urandom(48)).decode()
        snapshot = [(i.name, dict(i.docs), i.fields()) for i in indices]
        self.pits[pit_id] = Pit(pit_id, snapshot, time.monotonic() + seconds)
        n = len(indices)
        return {"id": pit_id, "_shards": {"total": n, "successful": n, "skipped": 0, "failed": 0}}

    def close_pit(self, pit_id: str) -> tuple[int, dict]:
        pit = self.pits.pop(pit_id, None)
        if pit is None or pit.expires < time.monotonic():
            return 404, {"succeeded": False, "num_freed": 0}
        return 200, {"succeeded": True, "num_freed": len(pit.snapshot)}

    def _pit(self, spec: Any) -> Pit:
        if not isinstance(spec, dict) or "id" not in spec:
            raise EsError(400, "parsing_exception", "[pit] must be an object with an [id]")
        pit = self.pits.get(spec["id"])
        if pit is None or pit.expires < time.monotonic():
            self.pits.pop(spec["id"], None)
            err = EsError(404, "search_phase_execution_exception", "all shards failed")
            missing = {"type": "search_context_missing_exception", "reason": "No search context found for id [1]"}
            err.cause = lambda: {"type": "search_phase_execution_exception", "reason": "all shards failed"}
            err.body = lambda: {  # type: ignore[method-assign]
                "error": {
                    "root_cause": [missing],
                    "type": "search_phase_execution_exception",
                    "reason": "all shards failed",
                    "phase": "query",
                    "grouped": True,
                },
                "status": 404,
            }
            raise err
        if spec.get("keep_alive"):
            pit.expires = time.monotonic() + duration_s(spec["keep_alive"])
        return pit

    def search(self, target: str | None, body: dict, params: dict) -> dict:
        started = time.perf_counter()
        body = dict(body or {})
        for name in ("size", "from"):
            if name in params:
                body[name] = int(params[name])
        for name in ("seq_no_primary_term", "version", "track_total_hits"):
            if name in params:
                body[name] = params[name] if params[name] not in ("true", "false") else params[name] == "true"
        if "sort" in params:
            body["sort"] = params["sort"].split(",")
        if "_source" in params:
            body["_source"] = (
                params["_source"] if params["_source"] not in ("true", "false") else (params["_source"] == "true")
            )
        if "aggs" in body or "aggregations" in body:
            raise EsError(400, "illegal_argument_exception", "aggregations are not run by this Elasticsearch stand-in")
        pit = None
        if "pit" in body:
            if target:
                raise EsError(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: [indices] cannot be "
                    "used with point in time. Do not specify any index with point in time.;",
                )
            pit = self._pit(body["pit"])
            snapshot = pit.snapshot
        else:
            indices = self.resolve(target, ignore_unavailable=_bool_param(params.get("ignore_unavailable", "false")))
            snapshot = [(i.name, dict(i.docs), i.fields()) for i in indices]
        size, offset = int(body.get("size", 10)), int(body.get("from", 0))
        if size < 0 or offset < 0:
            raise EsError(400, "illegal_argument_exception", "[size] and [from] must be positive")
        if size + offset > MAX_RESULT_WINDOW:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"Result window is too large, from + size must be less "
                f"than or equal to: [{MAX_RESULT_WINDOW}] but was [{size + offset}].",
            )
        try:
            specs = parse_sort(body.get("sort"), pit=pit is not None)
            query = body.get("query")
            cache_key = json.dumps([query, body.get("sort")], sort_keys=True, default=str)
            entries = pit.cache.get(cache_key) if pit is not None else None
            if entries is None:
                entries = self._matches(snapshot, query, specs)
                if pit is not None:
                    pit.cache[cache_key] = entries
            start = 0
            if body.get("search_after") is not None:
                if not specs:
                    raise EsError(400, "illegal_argument_exception", "Cannot use [search_after] without a [sort].")
                key = sort_key(specs)
                pivot = key(after_key(specs, body["search_after"]))
                start = bisect.bisect_right(entries, pivot, key=lambda e: key(e[0]))
            page = entries[start + offset : start + offset + size]
        except QueryError as exc:
            raise EsError(400, exc.error_type, exc.reason) from None
        hits = []
        for sort_vals, name, doc_id, doc in page:
            hit: dict[str, Any] = {"_index": name, "_id": doc_id, "_score": None if specs else 1.0}
            if body.get("version"):
                hit["_version"] = doc.version
            if body.get("seq_no_primary_term"):
                hit["_seq_no"], hit["_primary_term"] = doc.seq_no, doc.primary_term
            try:
                source = filter_source(doc.source, body.get("_source"))
            except QueryError as exc:
                raise EsError(400, exc.error_type, exc.reason) from None
            if source is not None:
                hit["_source"] = source
            if specs:
                hit["sort"] = sort_vals
            hits.append(hit)
        total = len(entries)  # every match of the query, whatever the page
        out: dict[str, Any] = {"took": int((time.perf_counter() - started) * 1000), "timed_out": False}
        if pit is not None:
            out["pit_id"] = pit.id
        n = len(snapshot)
        out["_shards"] = {"total": n, "successful": n, "skipped": 0, "failed": 0}
        hits_out: dict[str, Any] = {}
        track = body.get("track_total_hits", MAX_RESULT_WINDOW)
        if track is not False:
            limit = None if track is True else int(track)
            if limit is not None and total > limit:
                hits_out["total"] = {"value": limit, "relation": "gte"}
            else:
                hits_out["total"] = {"value": total, "relation": "eq"}
        hits_out["max_score"] = None if specs or not hits else 1.0
        hits_out["hits"] = hits
        out["hits"] = hits_out
        return out

    def _matches(self, snapshot, query, specs) -> list[tuple[list[Any], str, str, Doc]]:
        entries = []
        for name, docs, fields in snapshot:
            fields = Fields(fields.date_fields, fields.numeric_fields)
            for spec in specs:
                if not spec.tiebreaker and spec.field != "_score":
                    for doc in docs.values():
                        found = values(doc.source, spec.field)
                        if found:
                            fields.learn(spec.field, found[0])
                            break
            for doc_id, doc in docs.items():
                if matches(query, doc_id, doc.source, fields):
                    entries.append((sort_values(specs, doc.source, doc.order, fields), name, doc_id, doc))
        if specs:
            key = sort_key(specs)
            entries.sort(key=lambda e: key(e[0]))
        else:
            entries.sort(key=lambda e: e[3].order)
        return entries

    def count(self, target: str | None, body: dict, params: dict) -> dict:
        indices = self.resolve(target, ignore_unavailable=_bool_param(params.get("ignore_unavailable", "false")))
        query = (body or {}).get("query")
        n = 0
        try:
            for index in indices:
                fields = index.fields()
                n += sum(matches(query, i, d.source, fields) for i, d in index.docs.items())
        except QueryError as exc:
            raise EsError(400, exc.error_type, exc.reason) from None
        return {"count": n, "_shards": {"total": len(indices), "successful": len(indices), "skipped": 0, "failed": 0}}


def _parse_source(raw: bytes | None, doc_id: str | None, update: bool = False) -> dict:
    try:
        value = json.loads(raw) if raw is not None else None
    except (ValueError, UnicodeDecodeError) as exc:
        kind = "x_content_parse_exception" if update else "document_parsing_exception"
        raise EsError(400, kind, f"[1:1] failed to parse: {exc}") from None
    if not isinstance(value, dict):
        raise EsError(400, "document_parsing_exception", f"[1:1] failed to parse: document [{doc_id}] is not an object")
    return value


def _set_path(source: dict, path: str, value: Any) -> None:
    node = source
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise EsError(400, "illegal_argument_exception", f"cannot set [{path}]: [{part}] is not an object")
    node[parts[-1]] = copy.deepcopy(value)


def _remove_path(source: dict, path: str) -> bool:
    node = source
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and parts[-1] in node:
        del node[parts[-1]]
        return True
    return False


def _render(value: Any, source: dict) -> Any:
    """Mustache field references (``{{field}}``, ``{{{field}}}``, ``{{_ingest.timestamp}}``) in a set value."""
    if not isinstance(value, str) or "{{" not in value:
        return value

    def sub(match: re.Match) -> str:
        name = match.group(1).strip()
        if name == "_ingest.timestamp":
            return datetime.now(UTC).isoformat().replace("+00:00", "Z")
        found = values(source, name)
        return "" if not found else str(found[0])

    return re.sub(r"\{\{\{?([^{}]+)\}?\}\}", sub, value)


def parse_bulk(body: bytes, default_index: str | None) -> list[tuple[str, dict, bytes | None]]:
    """``(op, metadata, source line)`` of a bulk body, as Elasticsearch's bulk parser reads it."""
    if not body.strip():
        raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: no requests added;")
    if not body.endswith(b"\n"):
        raise EsError(400, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]")
    lines = body.split(b"\n")
    actions: list[tuple[str, dict, bytes | None]] = []
    problems: list[str] = []
    i = 0
    while i < len(lines):
        line_no = i + 1
        line = lines[i].strip()
        i += 1
        if not line:
            continue  # ES skips empty action lines
        try:
            action = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            raise EsError(
                400, "x_content_parse_exception", f"[{line_no}:1] Unexpected character in action/metadata line"
            ) from None
        if not isinstance(action, dict) or len(action) != 1:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"Malformed action/metadata line [{line_no}], expected START_OBJECT or END_OBJECT but found "
                f"[{type(action).__name__.upper()}]",
            )
        op, meta = next(iter(action.items()))
        if op not in ("index", "create", "update", "delete"):
            raise EsError(
                400,
                "illegal_argument_exception",
                f"Malformed action/metadata line [{line_no}], expected field [create], [delete], [index] or "
                f"[update] but found [{op}]",
            )
        if not isinstance(meta, dict):
            raise EsError(400, "illegal_argument_exception", f"Malformed action/metadata line [{line_no}]")
        unknown = set(meta) - BULK_META
        if unknown:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"Action/metadata line [{line_no}] contains an unknown parameter [{sorted(unknown)[0]}]",
            )
        raw = None
        if op != "delete":
            if i >= len(lines) or not lines[i].strip():
                problems.append(f"{len(actions) + 1}: source is missing")
                raw = b"{}"
            else:
                raw = lines[i].rstrip(b"\r")
            i += 1
        if not (meta.get("_index") or default_index):
            problems.append(f"{len(actions) + 1}: index is missing")
        if op in ("update", "delete") and meta.get("_id") in (None, ""):
            problems.append(f"{len(actions) + 1}: id is missing")
        if op == "update" and meta.get("if_seq_no") is not None and meta.get("retry_on_conflict"):
            problems.append(f"{len(actions) + 1}: compare and write operations can not be retried")
        actions.append((op, meta, raw))
    if problems:
        raise EsError(400, "action_request_validation_exception", "Validation Failed: " + ";".join(problems) + ";")
    if not actions:
        raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: no requests added;")
    return actions


# -- HTTP ----------------------------------------------------------------------------------------------

Route = tuple[frozenset[str], re.Pattern, str]
SEG = r"(?P<{}>[^/]+)"


def _route(methods: str, pattern: str, handler: str) -> Route:
    regex = "^" + re.sub(r"\{(\w+)\}", lambda m: SEG.format(m.group(1)), pattern) + "$"
    return frozenset(methods.split("|")), re.compile(regex), handler


ROUTES: list[Route] = [
    _route("GET|HEAD", "/", "root"),
    _route("GET", "/_license", "license"),
    _route("GET", "/_cluster/health", "health"),
    _route("POST|PUT", "/_bulk", "bulk"),
    _route("GET|POST", "/_search", "search"),
    _route("GET|POST", "/_count", "count"),
    _route("DELETE", "/_pit", "close_pit"),
    _route("GET|POST", "/_mget", "mget"),
    _route("GET|POST", "/_refresh", "refresh"),
    _route("GET", "/_index_template", "get_stored"),
    _route("PUT|POST|GET|HEAD|DELETE", "/_index_template/{name}", "stored"),
    _route("GET", "/_component_template", "get_stored"),
    _route("PUT|POST|GET|HEAD|DELETE", "/_component_template/{name}", "stored"),
    _route("GET", "/_ingest/pipeline", "get_stored"),
    _route("PUT|GET|DELETE", "/_ingest/pipeline/{name}", "stored"),
    _route("GET", "/_data_stream", "data_stream"),
    _route("PUT|GET|DELETE", "/_data_stream/{name}", "data_stream"),
    _route("POST|PUT", "/{index}/_bulk", "bulk"),
    _route("GET|POST", "/{index}/_search", "search"),
    _route("GET|POST", "/{index}/_count", "count"),
    _route("POST", "/{index}/_pit", "open_pit"),
    _route("GET|POST", "/{index}/_mget", "mget"),
    _route("GET|POST", "/{index}/_refresh", "refresh"),
    _route("POST", "/{index}/_rollover", "rollover"),
    _route("GET", "/{index}/_mapping", "mapping"),
    _route("GET|HEAD", "/{index}/_doc/{id}", "get_doc"),
    _route("GET", "/{index}/_source/{id}", "get_source"),
    _route("PUT|POST", "/{index}/_doc/{id}", "write_doc"),
    _route("POST", "/{index}/_doc", "write_doc"),
    _route("PUT|POST", "/{index}/_create/{id}", "create_doc"),
    _route("POST", "/{index}/_update/{id}", "update_doc"),
    _route("DELETE", "/{index}/_doc/{id}", "delete_doc"),
    _route("PUT|GET|HEAD|DELETE", "/{index}", "index"),
]
STORES = {"_index_template": "index_templates", "_component_template": "component_templates", "_ingest": "pipelines"}
STORE_KEYS = {"index_templates": "index_templates", "component_templates": "component_templates"}


class ElasticsearchPeer:
    """The HTTP side: routing, bodies, auth, compression, faults, capture; a background thread and loop."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context=None,
        basic_auth: tuple[str, str] | None = None,
        api_key: str | None = None,
        capture: int = 10_000,
        max_content_length: int = 100 * 1024 * 1024,
        compress_responses: bool = True,
        version: str = VERSION,
        validate_sources: bool = True,
    ) -> None:
        self.host, self.port, self.ssl_context = host, port, ssl_context
        self.cluster = Cluster(validate_sources)
        self.requests: deque[Captured] = deque(maxlen=capture or None) if capture else deque(maxlen=0)
        self.max_content_length = max_content_length
        self.compress_responses = compress_responses
        self.version = version
        self.delay_s = 0.0
        self._auth = set()
        if basic_auth:
            self._auth.add("Basic " + base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode())
        if api_key:
            self._auth.add(f"ApiKey {api_key}")
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}"

    def start(self) -> ElasticsearchPeer:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="es-peer", daemon=True)
        self._thread.start()
        self.up()
        return self

    def _call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def up(self) -> None:
        """Listen (again, on the same port after ``down``); the cluster's state is kept."""
        self._call(self._listen())

    def down(self) -> None:
        """Stop listening and drop every connection: clients get connection refused."""
        self._call(self._close())

    async def _listen(self) -> None:
        app = web.Application(client_max_size=self.max_content_length + 1)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, auto_decompress=False, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def stop(self) -> None:
        if self.loop is None:
            return
        self.down()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
        self.loop = None

    def __enter__(self) -> ElasticsearchPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting faults -------------------------------------------------------------------------

    def fail_requests(
        self,
        status: int | None = 503,
        *,
        times: int | None = 1,
        seconds: float | None = None,
        method: str | None = None,
        path: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        disconnect: str | None = None,
        product_header: bool = True,
    ) -> None:
        """The next ``times`` requests (or all for ``seconds``) whose method and path (a regex searched in
        the path) match answer ``status`` with an ES error body (or ``body``), without doing anything; or,
        with ``disconnect="before"``/``"after"``, the connection is dropped before / after the request is
        carried out (the answer is lost)."""
        if disconnect not in (None, "before", "after"):
            raise ValueError("disconnect is 'before' or 'after'")
        fault = RequestFault(
            status,
            None if seconds is not None and times == 1 else times,
            None if seconds is None else time.monotonic() + seconds,
            method,
            path,
            body,
            headers or {},
            disconnect,
            product_header,
        )
        with self.cluster.lock:
            self.cluster.request_faults.append(fault)

    def fail_items(
        self,
        status: int = 429,
        *,
        times: int | None = 1,
        seconds: float | None = None,
        ops: tuple[str, ...] = ("index", "create", "update", "delete"),
        match: Callable[[ItemView], bool] | None = None,
        error_type: str | None = None,
        reason: str | None = None,
    ) -> None:
        """The next ``times`` bulk items (or all for ``seconds``) of ``ops`` that ``match`` picks fail with
        ``status`` and an Elasticsearch error of that status; they are not carried out."""
        default_type, default_reason = FAULT_REASONS.get(status, ("exception", "injected by the test"))
        fault = ItemFault(
            status,
            None if seconds is not None and times == 1 else times,
            None if seconds is None else time.monotonic() + seconds,
            ops,
            match,
            error_type or default_type,
            reason or default_reason,
        )
        with self.cluster.lock:
            self.cluster.item_faults.append(fault)

    def conflict_updates(self, times: int = 1) -> None:
        """The next ``times`` update attempts find that another writer changed the document (its seq_no moves
        on): ``retry_on_conflict`` retries absorb them, otherwise the item gets 409."""
        with self.cluster.lock:
            self.cluster.pending_conflicts += times

    def clear_faults(self) -> None:
        with self.cluster.lock:
            self.cluster.request_faults.clear()
            self.cluster.item_faults.clear()
            self.cluster.pending_conflicts = 0

    # -- inspection -------------------------------------------------------------------------------

    def hits(self, target: str = "*") -> list[dict]:
        """Every stored document of ``target`` in write order: ``_index``, ``_id``, ``_seq_no``, ``_version``,
        ``_source``."""
        with self.cluster.lock:
            indices = self.cluster.resolve(target, ignore_unavailable=True)
            found = [(d.order, i.name, doc_id, d) for i in indices for doc_id, d in i.docs.items()]
            return [
                {
                    "_index": name,
                    "_id": doc_id,
                    "_seq_no": d.seq_no,
                    "_primary_term": d.primary_term,
                    "_version": d.version,
                    "_source": copy.deepcopy(d.source),
                }
                for _, name, doc_id, d in sorted(found, key=lambda x: x[0])
            ]

    def sources(self, target: str = "*") -> list[dict]:
        return [h["_source"] for h in self.hits(target)]

    def count(self, target: str = "*") -> int:
        with self.cluster.lock:
            return sum(len(i.docs) for i in self.cluster.resolve(target, ignore_unavailable=True))

    def bulk_requests(self) -> list[Captured]:
        return [r for r in list(self.requests) if r.path.endswith("/_bulk")]

    # -- handling ---------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method, raw_path = request.method, request.raw_path.split("?", 1)[0]
        path = "/" + "/".join(unquote(s) for s in raw_path.strip("/").split("/")) if raw_path.strip("/") else "/"
        params = {k: v for k, v in request.query.items()}
        captured, compat = None, None
        try:
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise EsError(413, *FAULT_REASONS[413]) from None
            body = self._decode(request, raw)
            captured = Captured(method, path, list(request.query.items()), dict(request.headers), raw, body)
            self.requests.append(captured)  # status 0 until answered
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self._auth and request.headers.get(hdrs.AUTHORIZATION) not in self._auth:
                raise EsError(
                    401,
                    "security_exception",
                    f"missing authentication credentials for REST request [{request.path_qs}]",
                    {"WWW-Authenticate": 'Basic realm="security", charset="UTF-8", ApiKey'},
                )
            compat = self._compat(request)
            fault = self.cluster.request_fault(method, path)
            if fault is not None and fault.disconnect == "before":
                return self._disconnect(request, captured)
            if fault is not None and fault.disconnect is None:
                return self._fault_response(request, fault, captured, compat)
            self._check_content_type(request, body)
            status, answer = await asyncio.to_thread(self._dispatch, method, path, params, body)
            if fault is not None:  # disconnect after
                return self._disconnect(request, captured)
        except EsError as exc:
            status, answer = exc.status, exc.body()
            extra = exc.headers
        else:
            extra = {}
        if captured is not None:
            captured.status = status
        return self._respond(request, status, answer, params, compat, extra)

    def _disconnect(self, request: web.Request, captured: Captured) -> web.StreamResponse:
        captured.status = -1
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError

    def _decode(self, request: web.Request, raw: bytes) -> bytes:
        encoding = request.headers.get(hdrs.CONTENT_ENCODING, "").lower().strip()
        if not encoding or encoding == "identity" or not raw:
            return raw
        try:
            if encoding == "gzip":
                return gzip.decompress(raw)
            if encoding == "deflate":
                return zlib.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise EsError(400, "illegal_argument_exception", f"cannot decompress the request body: {exc}") from None
        raise EsError(400, "illegal_argument_exception", f"unsupported Content-Encoding [{encoding}]")

    @staticmethod
    def _compat(request: web.Request) -> int | None:
        found = None
        for name in (hdrs.ACCEPT, hdrs.CONTENT_TYPE):
            value = request.headers.get(name, "")
            match = re.search(r"compatible-with=(\d+)", value)
            if match:
                version = int(match.group(1))
                if version not in (8, 9):
                    raise EsError(
                        400,
                        "media_type_header_exception",
                        f"Invalid media-type value on headers [{name}]: A compatible version is required on both "
                        f"Content-Type and Accept headers if either one has requested a compatible version and "
                        f"the compatible versions must be 8 or 9, but found [{version}]",
                    )
                found = version
        return found

    @staticmethod
    def _check_content_type(request: web.Request, body: bytes) -> None:
        if not body:
            return
        value = request.headers.get(hdrs.CONTENT_TYPE)
        if value is None:
            raise _plain_error(406, "Content-Type header is missing")
        mime = value.split(";")[0].strip().lower()
        if mime not in NDJSON_TYPES:
            raise _plain_error(406, f"Content-Type header [{value}] is not supported")

    def _fault_response(self, request, fault: RequestFault, captured: Captured, compat) -> web.StreamResponse:
        status = fault.status or 503
        captured.status = status
        if isinstance(fault.body, bytes | str):
            response = web.Response(status=status, body=fault.body, headers=fault.headers)
            if fault.product_header:
                response.headers.update(PRODUCT)
            return response
        answer = (
            fault.body
            if fault.body is not None
            else EsError(status, *FAULT_REASONS.get(status, ("exception", "injected by the test"))).body()
        )
        response = self._respond(request, status, answer, {}, compat, fault.headers)
        if not fault.product_header:
            response.headers.pop("X-Elastic-Product", None)
        return response

    def _respond(self, request, status: int, answer: Any, params: dict, compat: int | None, extra: dict):
        headers = dict(PRODUCT)
        headers.update(extra)
        if request.method == "HEAD":
            return web.Response(status=status, headers=headers)
        answer = filter_path(answer, params.get("filter_path"))
        content_type = f"application/vnd.elasticsearch+json;compatible-with={compat}" if compat else "application/json"
        body = json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode()
        headers[hdrs.CONTENT_TYPE] = content_type
        response = web.Response(status=status, body=body, headers=headers)
        if self.compress_responses and "gzip" in request.headers.get(hdrs.ACCEPT_ENCODING, ""):
            response.enable_compression(web.ContentCoding.gzip)
        return response

    # -- dispatch (runs on a worker thread; the cluster lock orders it) ---------------------------

    def _dispatch(self, method: str, path: str, params: dict, body: bytes) -> tuple[int, Any]:
        allowed: set[str] = set()
        for methods, regex, name in ROUTES:
            match = regex.match(path)
            if match is None:
                continue
            if method not in methods:
                allowed |= methods
                continue
            with self.cluster.lock:
                return getattr(self, f"_api_{name}")(method, path, params, body, **match.groupdict())
        if allowed:
            raise _plain_error(
                405,
                f"Incorrect HTTP method for uri [{path}] and method [{method}], allowed: {sorted(allowed)}",
            )
        raise _plain_error(400, f"no handler found for uri [{path}] and method [{method}]")

    @staticmethod
    def _json(body: bytes, required: bool = False) -> Any:
        if not body.strip():
            if required:
                raise EsError(400, "parse_exception", "request body is required")
            return {}
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EsError(400, "x_content_parse_exception", f"[1:1] {exc}") from None

    def _api_root(self, method, path, params, body):
        return 200, {
            "name": "es-peer",
            "cluster_name": "logwarden-test",
            "cluster_uuid": self.cluster.cluster_uuid,
            "version": {
                "number": self.version,
                "build_flavor": "default",
                "build_type": "docker",
                "build_hash": "0" * 40,
                "build_date": "2026-08-20T00:00:00.000Z",
                "build_snapshot": False,
                "lucene_version": "10.2.2",
                "minimum_wire_compatibility_version": "8.19.0",
                "minimum_index_compatibility_version": "8.0.0",
            },
            "tagline": "You Know, for Search",
        }

    def _api_license(self, method, path, params, body):
        return 200, {
            "license": {
                "status": "active",
                "uid": "00000000-0000-0000-0000-000000000000",
                "type": "basic",
                "issue_date": "2026-01-01T00:00:00.000Z",
                "issue_date_in_millis": 1767225600000,
                "max_nodes": 1000,
                "max_resource_units": None,
                "issued_to": "logwarden-test",
                "issuer": "elasticsearch",
                "start_date_in_millis": -1,
            }
        }

    def _api_health(self, method, path, params, body):
        return 200, {
            "cluster_name": "logwarden-test",
            "status": "green",
            "timed_out": False,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            "active_primary_shards": len(self.cluster.indices),
            "active_shards": len(self.cluster.indices),
            "unassigned_shards": 0,
        }

    def _api_bulk(self, method, path, params, body, index=None):
        return 200, self.cluster.bulk(body, index, params)

    def _api_search(self, method, path, params, body, index=None):
        return 200, self.cluster.search(index, self._json(body), params)

    def _api_count(self, method, path, params, body, index=None):
        return 200, self.cluster.count(index, self._json(body), params)

    def _api_open_pit(self, method, path, params, body, index):
        return 200, self.cluster.open_pit(index, params.get("keep_alive"), params)

    def _api_close_pit(self, method, path, params, body):
        pit_id = self._json(body, required=True).get("id")
        if not pit_id:
            raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: no pit ids specified;")
        return self.cluster.close_pit(pit_id)

    def _api_refresh(self, method, path, params, body, index=None):
        n = len(self.cluster.resolve(index))
        return 200, {"_shards": {"total": n * 2, "successful": n, "failed": 0}}

    def _api_get_stored(self, method, path, params, body):
        store_name = STORES[path.strip("/").split("/")[0]]
        store = getattr(self.cluster, store_name)
        return self._stored_list(store_name, store, list(store))

    def _stored_list(self, store_name: str, store: dict, names: list[str]):
        if store_name == "pipelines":
            return 200, {n: store[n] for n in names}
        key = STORE_KEYS[store_name]
        inner = key[:-1]
        return 200, {key: [{"name": n, inner: store[n]} for n in names]}

    def _api_stored(self, method, path, params, body, name):
        store_name = STORES[path.strip("/").split("/")[0]]
        store = getattr(self.cluster, store_name)
        if method in ("PUT", "POST"):
            spec = self._json(body, required=True)
            if store_name == "index_templates" and not spec.get("index_patterns"):
                raise EsError(
                    400, "action_request_validation_exception", "Validation Failed: 1: index patterns are missing;"
                )
            if store_name == "pipelines" and not isinstance(spec.get("processors"), list):
                raise EsError(400, "parse_exception", "[processors] required property is missing")
            if params.get("create") == "true" and name in store:
                raise EsError(400, "illegal_argument_exception", f"[{name}] already exists")
            store[name] = spec
            return 200, {"acknowledged": True}
        names = [n for n in store if fnmatch.fnmatchcase(n, name)] if "*" in name else [n for n in [name] if n in store]
        if not names:
            kind = {
                "pipelines": "pipeline",
                "index_templates": "index template",
                "component_templates": "component template",
            }[store_name]
            if method == "HEAD":
                return 404, {}
            if store_name == "pipelines" and method == "GET":
                return 404, {}
            raise EsError(404, "resource_not_found_exception", f"{kind} matching [{name}] not found")
        if method == "DELETE":
            for n in names:
                del store[n]
            return 200, {"acknowledged": True}
        return self._stored_list(store_name, store, names)

    def _api_data_stream(self, method, path, params, body, name="*"):
        cluster = self.cluster
        if method == "PUT":
            cluster.create_data_stream(name)
            return 200, {"acknowledged": True}
        found = [ds for ds in cluster.data_streams.values() if fnmatch.fnmatchcase(ds.name, name)]
        if not found and "*" not in name:
            raise EsError(404, "index_not_found_exception", f"no such index [{name}]")
        if method == "DELETE":
            for ds in found:
                for backing in ds.indices:
                    cluster.indices.pop(backing, None)
                del cluster.data_streams[ds.name]
            return 200, {"acknowledged": True}
        return 200, {
            "data_streams": [
                {
                    "name": ds.name,
                    "timestamp_field": {"name": "@timestamp"},
                    "indices": [{"index_name": n, "index_uuid": cluster.indices[n].uuid} for n in ds.indices],
                    "generation": ds.generation,
                    "status": "GREEN",
                    "template": ds.template,
                    "hidden": False,
                    "system": False,
                }
                for ds in found
            ]
        }

    def _api_rollover(self, method, path, params, body, index):
        old, new = self.cluster.rollover(index)
        return 200, {
            "acknowledged": True,
            "shards_acknowledged": True,
            "old_index": old,
            "new_index": new,
            "rolled_over": True,
            "dry_run": False,
            "lazy": False,
            "conditions": {},
        }

    def _api_mapping(self, method, path, params, body, index):
        return 200, {i.name: {"mappings": i.mappings} for i in self.cluster.resolve(index)}

    def _api_index(self, method, path, params, body, index):
        cluster = self.cluster
        if method == "PUT":
            cluster.create_index(index, self._json(body))
            return 200, {"acknowledged": True, "shards_acknowledged": True, "index": index}
        if method == "HEAD":
            try:
                return (200 if cluster.resolve(index) else 404), {}
            except EsError:
                return 404, {}
        indices = cluster.resolve(index)
        if method == "DELETE":
            for i in indices:
                if i.data_stream:
                    raise EsError(
                        400,
                        "illegal_argument_exception",
                        f"index [{i.name}] is the write index for data stream [{i.data_stream}] and cannot be deleted",
                    )
                del cluster.indices[i.name]
            return 200, {"acknowledged": True}
        return 200, {
            i.name: {
                "aliases": {},
                "mappings": i.mappings,
                "settings": {"index": {k[len("index.") :]: v for k, v in i.settings.items()}},
                **({"data_stream": i.data_stream} if i.data_stream else {}),
            }
            for i in indices
        }

    def _api_get_doc(self, method, path, params, body, index, id):
        status, answer = self.cluster.get(index, id)
        if status == 200 and "_source" in params:
            answer["_source"] = filter_source(answer["_source"], params["_source"])
        return status, answer

    def _api_mget(self, method, path, params, body, index=None):
        spec = self._json(body, required=True)
        wanted = spec.get("docs") or [{"_id": i} for i in spec.get("ids", [])]
        if not wanted:
            raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: no documents to get;")
        docs = []
        for item in wanted:
            target = item.get("_index") or index
            if not target:
                raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: index is missing;")
            try:
                _, answer = self.cluster.get(target, str(item["_id"]))
            except EsError as exc:
                answer = {"_index": target, "_id": str(item["_id"]), "error": exc.cause()}
            docs.append(answer)
        return 200, {"docs": docs}

    def _api_get_source(self, method, path, params, body, index, id):
        status, answer = self.cluster.get(index, id)
        if status != 200:
            raise EsError(404, "resource_not_found_exception", f"Document not found [{index}]/[{id}]")
        return 200, answer["_source"]

    def _single(self, op: str, index: str, doc_id: str | None, params: dict, body: bytes) -> tuple[int, dict]:
        meta = {
            k: params[k]
            for k in ("if_seq_no", "if_primary_term", "retry_on_conflict", "pipeline", "require_alias")
            if k in params
        }
        if op != "delete" and not body.strip():
            raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: source is missing;")
        if op == "update" and meta.get("if_seq_no") is not None and meta.get("retry_on_conflict"):
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: compare and write operations can not be retried;",
            )
        raw = body.strip() if op != "delete" else None
        result = self.cluster.write(op, index, doc_id, meta, raw, params)
        status = result.pop("status")
        return status, result

    def _api_write_doc(self, method, path, params, body, index, id=None):
        op = "create" if params.get("op_type") == "create" else "index"
        return self._single(op, index, id, params, body)

    def _api_create_doc(self, method, path, params, body, index, id):
        return self._single("create", index, id, params, body)

    def _api_update_doc(self, method, path, params, body, index, id):
        status, result = self._single("update", index, id, params, body)
        return status, result

    def _api_delete_doc(self, method, path, params, body, index, id):
        return self._single("delete", index, id, params, body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="An Elasticsearch stand-in on loopback (for benchmarks).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--capture", type=int, default=0, help="requests kept for inspection")
    parser.add_argument("--no-validate", action="store_true", help="store sources unread (faster)")
    args = parser.parse_args(argv)
    peer = ElasticsearchPeer(
        host=args.host, port=args.port, capture=args.capture, validate_sources=not args.no_validate
    ).start()
    print(json.dumps({"url": peer.url}), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        peer.stop()


if __name__ == "__main__":
    main()
