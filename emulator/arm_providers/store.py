"""Stand-in ARM resources in the emulator state: one document, ``armResources``, keyed by lower-case id.

A record is ``{"id", "type", "name", "resourceGroup", "subscriptionId", "parent", "properties", "etag",
"busyUntil"}``; ``busyUntil`` (emulator clock) is when a long-running change finishes. Changes take the
engine's shared-document lock.
"""

from __future__ import annotations

import re
import threading
import uuid
from typing import Any

from emulator.apim.errors import ArmError
from emulator.apim.state import Store

STATE_KEY = "armResources"
OPERATIONS_KEY = "armOperations"
# Characters ARM refuses in resource names (and control characters).
INVALID_NAME_CHARS = re.compile(r"[<>%&:\\?/#*\x00-\x1f\x7f]")
MAX_NAME = 260


def check_name(name: str, what: str) -> None:
    if not name or len(name) > MAX_NAME or INVALID_NAME_CHARS.search(name) or name.endswith((".", " ")):
        raise ArmError(
            400,
            "InvalidResourceName",
            f"The {what} name '{name[:300]}' is invalid: 1-{MAX_NAME} characters, none of < > % & : \\ ? / # * "
            "or control characters, not ending in '.' or a space.",
        )


class ResourceStore:
    def __init__(self, store: Store, lock: threading.RLock) -> None:
        self._store = store
        self._lock = lock

    def _all(self) -> dict[str, Any]:
        return dict(self._store.get(STATE_KEY) or {})

    def get(self, resource_id: str) -> dict[str, Any] | None:
        found = self._all().get(resource_id.lower())
        return None if found is None else dict(found)

    def children(self, parent_id: str, type_name: str | None = None) -> list[dict[str, Any]]:
        parent = parent_id.lower()
        return [
            dict(r)
            for key, r in sorted(self._all().items())
            if (r.get("parent") or "").lower() == parent
            and (type_name is None or r["type"].lower() == type_name.lower())
        ]

    def put(self, record: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            current = self._all()
            record["etag"] = str(uuid.uuid4())
            current[record["id"].lower()] = record
            self._store.put(STATE_KEY, current)
        return record

    def delete(self, resource_id: str) -> bool:
        with self._lock:
            current = self._all()
            found = current.pop(resource_id.lower(), None)
            self._store.put(STATE_KEY, current)
            return found is not None

    def reset(self) -> None:
        with self._lock:
            self._store.put(STATE_KEY, {})
            self._store.put(OPERATIONS_KEY, {})

    def all(self) -> list[dict[str, Any]]:
        return list(self._all().values())

    # -- asynchronous operations (Azure-AsyncOperation monitors) -------------------------------
    def add_operation(self, op: dict[str, Any]) -> None:
        with self._lock:
            ops = dict(self._store.get(OPERATIONS_KEY) or {})
            ops[op["id"]] = op
            self._store.put(OPERATIONS_KEY, ops)

    def operation(self, op_id: str) -> dict[str, Any] | None:
        found = (self._store.get(OPERATIONS_KEY) or {}).get(op_id)
        return None if found is None else dict(found)
