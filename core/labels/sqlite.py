"""SQLite label store: the default. WAL journal, full fsync on commit, one connection behind a lock.

Safe from many threads of one process; other processes (``logwarden labels export`` while the server
runs) can read and write the same file, waiting up to ``timeout`` seconds for a writer. A new file
is created readable by its owner only: labels hold analysts' names and comments.

Writes are all or nothing: every row is built and checked (text that SQLite cannot store, such as a
lone surrogate, is a ``LabelError`` naming the field) before the transaction starts, and a write that
fails for any reason rolls back, so the connection is never left inside a transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from logwarden.core.errors import LogWardenError
from logwarden.core.labels.label import Label, LabelError, utc_timestamp
from logwarden.core.labels.store import LabelStore, Retracted, Submitted, check_limit

SCHEMA_VERSION = 2
COLUMNS = (
    "target",
    "verdict",
    "source",
    "analyst",
    "session_key",
    "template_id",
    "event_id",
    "message",
    "model_version",
    "predicted",
    "reason",
    "comment",
    "keys",
    "reason_code",
    "external_id",
    "attributes",
    "created_at",
    "retracted_at",
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL, verdict TEXT NOT NULL, source TEXT NOT NULL, analyst TEXT NOT NULL,
    session_key TEXT NOT NULL, template_id TEXT, event_id TEXT, message TEXT, model_version TEXT NOT NULL,
    predicted TEXT, reason TEXT NOT NULL, comment TEXT NOT NULL, keys TEXT, created_at TEXT NOT NULL,
    reason_code TEXT, external_id TEXT, attributes TEXT, retracted_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS labels_external ON labels (external_id)
    WHERE external_id IS NOT NULL AND retracted_at IS NULL;
CREATE INDEX IF NOT EXISTS labels_source ON labels (source, id);
CREATE INDEX IF NOT EXISTS labels_created ON labels (created_at);
"""
# Upgrades, applied in order to a store of an older schema (``PRAGMA user_version``) before SCHEMA.
MIGRATIONS = {
    # 1 -> 2: the model's reason code beside its reason text (labels stored before it have none, so
    # recalibration counts their false positives as ones K decides); the caller's external id, origin
    # attributes (JSON) and the retraction time.
    2: "".join(
        f"ALTER TABLE labels ADD COLUMN {column} TEXT;"
        for column in ("reason_code", "external_id", "attributes", "retracted_at")
    ),
}


class SqliteLabelStore(LabelStore):
    """Labels in one SQLite file (``":memory:"`` for a throw-away store). ``create=False`` refuses to
    make a new file, for tools that only read an existing store."""

    def __init__(self, path: str | Path, *, create: bool = True, timeout: float = 10.0) -> None:
        self.path = str(path)
        memory = self.path == ":memory:"
        if not memory and not os.path.exists(self.path):
            if not create:
                raise LogWardenError(f"label database not found: {self.path}")
            try:
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            except OSError as exc:
                raise LogWardenError(f"cannot create label database {self.path}: {exc.strerror}") from exc
        self._lock = threading.Lock()
        try:
            self._db: sqlite3.Connection | None = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise LogWardenError(
                    f"label database {self.path} has schema {version}; this LogWarden reads up to {SCHEMA_VERSION}"
                )
            if not memory:
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate(version)
        except sqlite3.DatabaseError as exc:
            raise LogWardenError(f"cannot open label database {self.path}: {exc}") from exc

    def _migrate(self, version: int) -> None:
        """Create the schema, or upgrade an older store to it (one transaction)."""
        db = self._conn()
        exists = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'labels'").fetchone()
        steps = [MIGRATIONS[v] for v in range(max(version, 1) + 1, SCHEMA_VERSION + 1)] if exists else []
        db.executescript("BEGIN;" + "".join(steps) + SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")

    def submit(self, labels: Iterable[Label]) -> list[Submitted]:
        labels = list(labels)
        rows = [_row(label) for label in labels]  # all validated before anything is written
        with self._write() as db:
            return [self._submit_one(db, label, row) for label, row in zip(labels, rows, strict=True)]

    def _submit_one(self, db: sqlite3.Connection, label: Label, row: tuple) -> Submitted:
        replaced = None
        if label.external_id is not None:
            found = db.execute(
                f"SELECT id, {', '.join(COLUMNS)} FROM labels WHERE external_id = ? AND retracted_at IS NULL",
                (label.external_id,),
            ).fetchone()
            if found is not None:
                stored = _label(found)
                if stored.content == label.content:
                    return Submitted(int(found[0]), duplicate=True)
                replaced = int(found[0])
                db.execute("UPDATE labels SET retracted_at = ? WHERE id = ?", (utc_timestamp(), replaced))
        sql = f"INSERT INTO labels ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        return Submitted(int(db.execute(sql, row).lastrowid or 0), replaced=replaced)

    def retract(self, label_ids: Iterable[int] = (), external_ids: Iterable[str] = ()) -> list[Retracted]:
        wanted = [("id", str(i), int(i)) for i in label_ids] + [("external_id", e, e) for e in external_ids]
        out: list[Retracted] = []
        with self._write() as db:
            for column, shown, value in wanted:
                found = db.execute(
                    f"SELECT id, {', '.join(COLUMNS)} FROM labels WHERE {column} = ? AND retracted_at IS NULL",
                    (value,),
                ).fetchone()
                if found is None:
                    out.append(Retracted(shown, False, f"no live label with {column} {shown!r}"))
                    continue
                db.execute("UPDATE labels SET retracted_at = ? WHERE id = ?", (utc_timestamp(), found[0]))
                out.append(Retracted(shown, True, label=_label(found)))
        return out

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction, committed on success; never left open, whatever fails."""
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise LogWardenError(f"cannot write labels to {self.path}: {exc}") from exc
            finally:
                if db.in_transaction:  # anything failed before COMMIT: never leave the transaction open
                    db.execute("ROLLBACK")

    def query(
        self,
        *,
        source: str | None = None,
        since: datetime | str | None = None,
        model_version: str | None = None,
        after_id: int = 0,
        limit: int = 100,
        newest_first: bool = True,
        include_retracted: bool = False,
    ) -> list[Label]:
        where, args = ["id > ?"], [after_id]
        for column, value in (("source", source), ("model_version", model_version)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("created_at >= ?")
            args.append(utc_timestamp(since))
        if not include_retracted:
            where.append("retracted_at IS NULL")
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT id, {', '.join(COLUMNS)} FROM labels WHERE {' AND '.join(where)} ORDER BY id {order} LIMIT ?"
        rows = self._read(sql, (*args, check_limit(limit)))
        return [_label(row) for row in rows]

    def count(self, source: str | None = None) -> int:
        if source is None:
            return int(self._read("SELECT COUNT(*) FROM labels WHERE retracted_at IS NULL", ())[0][0])
        sql = "SELECT COUNT(*) FROM labels WHERE source = ? AND retracted_at IS NULL"
        return int(self._read(sql, (source,))[0][0])

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise LogWardenError(f"label store {self.path} is closed")
        return self._db

    def _read(self, sql: str, args: tuple) -> list[tuple]:
        with self._lock:
            try:
                return self._conn().execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise LogWardenError(f"cannot read labels from {self.path}: {exc}") from exc


def _row(label: Label) -> tuple:
    data = label.to_dict()
    data["keys"] = None if label.keys is None else json.dumps(list(label.keys))
    data["attributes"] = None if label.attributes is None else json.dumps(label.attributes, sort_keys=True)
    data["created_at"] = label.created_at or utc_timestamp()
    for column in COLUMNS:
        value = data[column]
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise LabelError(column, f"not valid Unicode: a lone surrogate at character {exc.start}") from None
    return tuple(data[c] for c in COLUMNS)


def _label(row: tuple) -> Label:
    data = dict(zip(("id", *COLUMNS), row, strict=True))
    data["keys"] = None if data["keys"] is None else json.loads(data["keys"])
    data["attributes"] = None if data["attributes"] is None else json.loads(data["attributes"])
    return Label(**data)
