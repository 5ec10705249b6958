"""Persistent emulator state in one SQLite file, so operations survive a restart.

Everything a restart must keep lives here: services (with their configuration), operations, the
clock offset, faults, settings, role tables, the request log and the seed (for ``/_emulator/reset``).
Each mutation is its own committed transaction, so even a SIGKILL loses at most the request in flight.
The store is not thread-safe by itself; the engine serialises access with one lock.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS services (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS operations (
    id TEXT PRIMARY KEY, service TEXT NOT NULL, status TEXT NOT NULL, doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS operations_status ON operations (status);
CREATE TABLE IF NOT EXISTS requests (seq INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL);
"""


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # One connection shared by the server threads; callers hold the engine lock.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def is_empty(self) -> bool:
        return self.get("seed") is None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes that must land together (an operation and its service). Not re-entrant."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def clear(self) -> None:
        with self.transaction():
            for table in ("kv", "services", "operations", "requests"):
                self._db.execute(f"DELETE FROM {table}")

    # -- key/value -----------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # -- services ------------------------------------------------------------------------------
    def service(self, name: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT doc FROM services WHERE name = ?", (name.lower(),)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def services(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self._db.execute("SELECT doc FROM services ORDER BY name")]

    def put_service(self, svc: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO services (name, doc) VALUES (?, ?)", (svc["name"].lower(), json.dumps(svc))
        )

    def delete_services(self) -> None:
        self._db.execute("DELETE FROM services")

    # -- operations ----------------------------------------------------------------------------
    def operation(self, op_id: str) -> dict[str, Any] | None:
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
        return [json.loads(r[0]) for r in self._db.execute(sql + " ORDER BY rowid", args)]

    def put_operation(self, op: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO operations (id, service, status, doc) VALUES (?, ?, ?, ?)",
            (op["id"], op["service"].lower(), op["status"], json.dumps(op)),
        )

    def delete_operations(self) -> None:
        self._db.execute("DELETE FROM operations")

    # -- request log ---------------------------------------------------------------------------
    def log_request(self, entry: dict[str, Any]) -> None:
        self._db.execute("INSERT INTO requests (doc) VALUES (?)", (json.dumps(entry),))

    def requests(self) -> list[dict[str, Any]]:
        return [
            json.loads(r[0]) | {"seq": r[1]} for r in self._db.execute("SELECT doc, seq FROM requests ORDER BY seq")
        ]

    def clear_requests(self) -> None:
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
