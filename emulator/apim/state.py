"""Persistent emulator state in one SQLite file, so operations survive a restart.

Everything a restart must keep lives here: services (with their configuration), operations, the
clock offset, faults, settings, role tables, the request log and the seed (for ``/_emulator/reset``).
Each mutation is its own committed transaction, so even a SIGKILL loses at most the request in flight.
The store serialises its own SQL (one lock, held only for the statements); the engine decides which
changes must not interleave (per-service locks).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .entity import Entity
from .resources import render_service

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS services (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS operations (
    id TEXT PRIMARY KEY, service TEXT NOT NULL, status TEXT NOT NULL, doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS operations_status ON operations (status);
CREATE TABLE IF NOT EXISTS requests (seq INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entities (
    service TEXT NOT NULL, path TEXT NOT NULL, kind TEXT NOT NULL, parent TEXT NOT NULL, rpath TEXT NOT NULL,
    name TEXT NOT NULL, akey TEXT, hidden INTEGER NOT NULL, seq INTEGER NOT NULL, etag INTEGER NOT NULL,
    doc TEXT NOT NULL, PRIMARY KEY (service, path)
) WITHOUT ROWID;
"""
# Columns derived from the documents, for list pages and due operations without decoding every row.
# Added (and filled in) on open when a state file from an older emulator lacks them.
DERIVED_COLUMNS = {
    "services": {"subscription": "TEXT", "resource_group": "TEXT", "resource": "TEXT"},
    "operations": {"due": "REAL"},
}
INDEXES = """
CREATE INDEX IF NOT EXISTS services_by_subscription ON services (subscription, name);
CREATE INDEX IF NOT EXISTS services_by_group ON services (subscription, resource_group, name);
CREATE INDEX IF NOT EXISTS operations_due ON operations (status, due);
CREATE INDEX IF NOT EXISTS entities_children ON entities (service, parent, kind, hidden, seq);
CREATE INDEX IF NOT EXISTS entities_akey ON entities (service, kind, akey);
"""
ENTITY_COLUMNS = "path, kind, rpath, name, akey, hidden, seq, etag, doc"
_UNKNOWN: Any = object()


class Store:
    """Thread-safe: one connection, one lock held only for the SQL itself (JSON work is done outside it).

    Small key/value documents (settings, faults, roles, clock offset ...) are cached as JSON text, so a
    request reads them without SQL; services keep their rendered ARM body next to the record, so a list
    page is a query and a string join.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._kv: dict[str, str | None] = {}  # key -> JSON text (None: known to be absent)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._migrate()
        self._db.executescript(INDEXES)
        row = self._db.execute("SELECT MAX(MAX(etag), MAX(seq)) FROM entities").fetchone()
        self._version = int(row[0] or 0) if row is not None else 0

    def _migrate(self) -> None:
        for table, columns in DERIVED_COLUMNS.items():
            existing = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            missing = {name: kind for name, kind in columns.items() if name not in existing}
            if not missing:
                continue
            logger.info("adding %s to %s in %s", ", ".join(missing), table, self.path)
            with self.transaction():
                for name, kind in missing.items():
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
                if table == "services":
                    for (doc,) in self._db.execute("SELECT doc FROM services").fetchall():
                        self.put_service(json.loads(doc))
                else:
                    for (doc,) in self._db.execute("SELECT doc FROM operations").fetchall():
                        self.put_operation(json.loads(doc))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def is_empty(self) -> bool:
        return not self.has("seed")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes that must land together (an operation and its service); other threads wait."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                self._kv.clear()  # puts made inside the transaction are void
                raise
            self._db.execute("COMMIT")

    def clear(self) -> None:
        with self.transaction():
            for table in ("kv", "services", "operations", "requests", "entities"):
                self._db.execute(f"DELETE FROM {table}")
            self._kv.clear()

    # -- key/value -----------------------------------------------------------------------------
    def _text(self, key: str) -> str | None:
        text = self._kv.get(key, _UNKNOWN)  # a hit needs no lock (one dict read)
        if text is not _UNKNOWN:
            return text
        with self._lock:
            if key not in self._kv:
                row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
                self._kv[key] = None if row is None else str(row[0])
            return self._kv[key]

    def has(self, key: str) -> bool:
        return self._text(key) is not None

    def get(self, key: str, default: Any = None) -> Any:
        """A fresh copy of the stored value (callers may change it and ``put`` it back)."""
        text = self._text(key)
        return default if text is None else json.loads(text)

    def put(self, key: str, value: Any) -> None:
        text = json.dumps(value)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, text))
            self._kv[key] = text

    # -- services ------------------------------------------------------------------------------
    def service(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT doc FROM services WHERE name = ?", (name.lower(),)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def services(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT doc FROM services ORDER BY name").fetchall()
        return [json.loads(r[0]) for r in rows]

    def service_page(
        self, subscription: str, resource_group: str | None, offset: int, limit: int
    ) -> tuple[list[str], bool]:
        """Rendered ARM bodies (JSON text) of one list page, in name order, and whether more follow."""
        sql = "SELECT resource FROM services WHERE subscription = ?"
        args: list[Any] = [subscription.lower()]
        if resource_group is not None:
            sql += " AND resource_group = ?"
            args.append(resource_group.lower())
        sql += " ORDER BY name LIMIT ? OFFSET ?"
        args += [limit + 1, offset]
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [str(r[0]) for r in rows[:limit]], len(rows) > limit

    def put_service(self, svc: dict[str, Any]) -> None:
        doc, resource = json.dumps(svc), json.dumps(render_service(svc))
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO services (name, subscription, resource_group, resource, doc) "
                "VALUES (?, ?, ?, ?, ?)",
                (svc["name"].lower(), svc["subscriptionId"].lower(), svc["resourceGroup"].lower(), resource, doc),
            )

    def delete_services(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM services")
            self._db.execute("DELETE FROM entities")

    # -- configuration entities -------------------------------------------------------------------
    def next_version(self, count: int = 1) -> int:
        """The first of ``count`` fresh entity versions (ETags, creation order): increasing, never reused.

        Microseconds of the wall clock, or the last one + 1: a restart continues above what was handed
        out, deleted rows included, as SQL Server's rowversion does for APIM.
        """
        with self._lock:
            first = max(self._version + 1, time.time_ns() // 1000)
            self._version = first + count - 1
            return first

    @staticmethod
    def _entity(row: tuple[Any, ...]) -> Entity:
        path, kind, rpath, name, akey, hidden, seq, etag, doc = row
        return Entity(str(path), str(kind), str(rpath), str(name), json.loads(doc), int(etag), int(seq),
                      bool(hidden), akey)

    def entity(self, service: str, path: str) -> Entity | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {ENTITY_COLUMNS} FROM entities WHERE service = ? AND path = ?", (service.lower(), path)
            ).fetchone()
        return None if row is None else self._entity(row)

    def entity_children(
        self, service: str, parent: str, kind: str, *, hidden: bool | None = False, offset: int = 0,
        limit: int | None = None,
    ) -> list[Entity]:
        """Children of one kind under ``parent``, in creation order (``hidden``: None = all)."""
        sql = f"SELECT {ENTITY_COLUMNS} FROM entities WHERE service = ? AND parent = ? AND kind = ?"
        args: list[Any] = [service.lower(), parent, kind]
        if hidden is not None:
            sql += " AND hidden = ?"
            args.append(int(hidden))
        sql += " ORDER BY seq LIMIT ? OFFSET ?"
        args += [-1 if limit is None else limit, offset]
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [self._entity(r) for r in rows]

    def entity_count(self, service: str, parent: str, kind: str, *, hidden: bool | None = False) -> int:
        sql = "SELECT COUNT(*) FROM entities WHERE service = ? AND parent = ? AND kind = ?"
        args: list[Any] = [service.lower(), parent, kind]
        if hidden is not None:
            sql += " AND hidden = ?"
            args.append(int(hidden))
        with self._lock:
            return int(self._db.execute(sql, args).fetchone()[0])

    def entities_by_akey(self, service: str, kinds: tuple[str, ...], akey: str) -> list[Entity]:
        marks = ", ".join("?" for _ in kinds)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {ENTITY_COLUMNS} FROM entities WHERE service = ? AND kind IN ({marks}) AND akey = ? "
                "ORDER BY seq",
                (service.lower(), *kinds, akey),
            ).fetchall()
        return [self._entity(r) for r in rows]

    def entities_of_kinds(self, service: str, kinds: tuple[str, ...], *, containing: str | None = None) -> list[Entity]:
        """Every entity of these kinds (whose stored document contains ``containing``, if given)."""
        marks = ", ".join("?" for _ in kinds)
        sql = f"SELECT {ENTITY_COLUMNS} FROM entities WHERE service = ? AND kind IN ({marks})"
        args: list[Any] = [service.lower(), *kinds]
        if containing is not None:
            sql += " AND instr(lower(doc), ?) > 0"
            args.append(containing.lower())
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        return [self._entity(r) for r in rows]

    def entities(self, service: str) -> list[Entity]:
        """The whole configuration of a service, in creation order."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {ENTITY_COLUMNS} FROM entities WHERE service = ? ORDER BY seq", (service.lower(),)
            ).fetchall()
        return [self._entity(r) for r in rows]

    def put_entity(self, service: str, entity: Entity) -> None:
        self.put_entities(service, [entity])

    @staticmethod
    def entity_rows(entities: list[Entity]) -> list[tuple[Any, ...]]:
        """Entities as table rows (without the service), to write the same configuration to many services."""
        return [
            (e.path, e.kind, e.parent, e.rpath, e.name, e.akey, int(e.hidden), e.seq, e.etag, json.dumps(e.props))
            for e in entities
        ]

    def put_entities(self, service: str, entities: list[Entity] | list[tuple[Any, ...]]) -> None:
        """Insert or replace entities (or rows from ``entity_rows``) of one service."""
        svc = service.lower()
        rows = [
            (svc, *(row if isinstance(row, tuple) else self.entity_rows([row])[0]))
            for row in entities
        ]
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO entities (service, path, kind, parent, rpath, name, akey, hidden, seq, etag, "
                "doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def delete_entity_tree(self, service: str, path: str) -> int:
        """Delete an entity and everything below it; how many rows went."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM entities WHERE service = ? AND (path = ? OR (path > ? AND path < ?))",
                (service.lower(), path, path + "/", path + "0"),  # '0' follows '/': the subtree's range
            )
            return int(cursor.rowcount)

    def entity_tree(self, service: str, path: str) -> list[Entity]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {ENTITY_COLUMNS} FROM entities WHERE service = ? AND (path = ? OR (path > ? AND path < ?)) "
                "ORDER BY seq",
                (service.lower(), path, path + "/", path + "0"),
            ).fetchall()
        return [self._entity(r) for r in rows]

    def entities_with_prefix(self, service: str, prefix: str) -> list[Entity]:
        """Entities whose path starts with ``prefix`` (an API's other revisions: ``apis/x;rev=``)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {ENTITY_COLUMNS} FROM entities WHERE service = ? AND path >= ? AND path < ? ORDER BY seq",
                (service.lower(), prefix, prefix + "\U0010ffff"),
            ).fetchall()
        return [self._entity(r) for r in rows]

    def delete_service_entities(self, service: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM entities WHERE service = ?", (service.lower(),))

    # -- operations ----------------------------------------------------------------------------
    def operation(self, op_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT doc FROM operations WHERE id = ?", (op_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def operations(self, *, status: str | None = None, service: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT doc FROM operations WHERE 1=1", []
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        if service is not None:
            sql += " AND service = ?"
            args.append(service.lower())
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY rowid", args).fetchall()
        return [json.loads(r[0]) for r in rows]

    def due_operations(self, now: float, service: str | None = None) -> list[str]:
        """Ids of running operations whose end time has come (oldest first)."""
        sql = "SELECT id FROM operations WHERE status = 'Running' AND due <= ?"
        args: list[Any] = [now]
        if service is not None:
            sql += " AND service = ?"
            args.append(service.lower())
        with self._lock:
            return [str(r[0]) for r in self._db.execute(sql + " ORDER BY due, rowid", args)]

    def next_due(self) -> float | None:
        """When the next running operation is due (emulator clock), or None."""
        with self._lock:
            row = self._db.execute("SELECT MIN(due) FROM operations WHERE status = 'Running'").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def put_operation(self, op: dict[str, Any]) -> None:
        due = float(op["startedAt"]) + float(op["duration"]) if op["status"] == "Running" else None
        doc = json.dumps(op)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO operations (id, service, status, due, doc) VALUES (?, ?, ?, ?, ?)",
                (op["id"], op["service"].lower(), op["status"], due, doc),
            )

    def delete_operations(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM operations")

    # -- request log ---------------------------------------------------------------------------
    def log_request(self, entry: dict[str, Any]) -> None:
        doc = json.dumps(entry)
        with self._lock:
            self._db.execute("INSERT INTO requests (doc) VALUES (?)", (doc,))

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT doc, seq FROM requests ORDER BY seq").fetchall()
        return [json.loads(r[0]) | {"seq": r[1]} for r in rows]

    def clear_requests(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM requests")


class Clock:
    """Wall-clock time plus an offset tests can move forward (persisted in the store).

    Used for operation completion and backup expiry. Token lifetimes are checked against the real
    clock instead, because Azurite (which sees the same tokens) cannot be moved.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def offset(self) -> float:
        return float(self._store.get("clockOffset", 0.0))

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> float:
        self._store.put("clockOffset", self.offset + seconds)
        return self.now()

    def reset(self) -> None:
        self._store.put("clockOffset", 0.0)


def iso(epoch: float) -> str:
    """ARM's timestamp form: ``2022-08-02T08:25:11.1869777Z`` (7 fractional digits)."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def parse_iso(text: str) -> float:
    """Inverse of ``iso`` (also accepts fewer fractional digits or none)."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    if "." in value:
        head, _, rest = value.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits) :]
        value = f"{head}.{digits[:6].ljust(6, '0')}{tz}"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
