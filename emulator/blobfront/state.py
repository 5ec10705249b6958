"""What the front knows beyond Azurite: immutability settings, the clock offset, the role table, the log.

Everything is in memory and guarded by one lock; the admin API and the proxy threads share it.

Immutability settings (Azure's two features, see emulator/README.md):

- container-level WORM: a time-based retention policy on a container (``retentionDays``, ``locked``,
  ``allowProtectedAppendWrites``) and/or a container legal hold (one or more tags);
- version-level WORM: an account default policy (``retentionDays``, measured from each blob's creation)
  and blob-level policies (``until``, ``mode``) and legal holds, set by the admin API (Azurite has no
  versions; they apply to the blob as it is).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from .rbac import Assignment, parse_role_table

LOG_LIMIT = 10_000
CREATED_LIMIT = 100_000


@dataclass
class ContainerPolicy:
    retention_days: int
    locked: bool = False
    allow_protected_append_writes: bool = False


@dataclass
class ContainerSettings:
    policy: ContainerPolicy | None = None
    legal_hold_tags: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.policy is None and not self.legal_hold_tags


@dataclass
class BlobSettings:
    until: float | None = None  # epoch seconds; None: no blob-level policy
    mode: str = "Unlocked"
    legal_hold: bool = False

    @property
    def empty(self) -> bool:
        return self.until is None and not self.legal_hold


@dataclass
class AccountPolicy:
    retention_days: int
    locked: bool = False


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


class FrontState:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clock_offset = 0.0
        # (real time of the change, offset from then on): maps Azurite's real-clock stamps onto the front's clock.
        self._offsets: list[tuple[float, float]] = [(float("-inf"), 0.0)]
        self._created: OrderedDict[tuple[str, str, str], tuple[str, float]] = OrderedDict()
        self.accounts: dict[str, AccountPolicy] = {}
        self.containers: dict[tuple[str, str], ContainerSettings] = {}
        self.blobs: dict[tuple[str, str, str], BlobSettings] = {}
        self.roles: dict[str, tuple[Assignment, ...]] | None = None
        self.roles_source: Any = None
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self._blob_locks: dict[tuple[str, str, str], threading.Lock] = {}
        # Accounts whose endpoint does not answer (admin fault: a regional storage outage).
        self.outages: set[str] = set()

    def is_down(self, account: str) -> bool:
        return account in self.outages

    # -- clock -----------------------------------------------------------------------------------
    def now(self) -> float:
        """The front's clock: real time plus the offset the tests set (retention is measured on it)."""
        return time.time() + self.clock_offset

    def set_offset(self, offset: float) -> None:
        with self.lock:
            self.clock_offset = offset
            self._offsets.append((time.time(), offset))

    def front_time(self, real: float, *, key: tuple[str, str, str] | None = None, stamp: str | None = None) -> float:
        """A real-clock instant (Azurite's creation or modification time) on the front's clock.

        A blob created through the front carries the offset in force when it was created (Azurite's
        HTTP dates have whole seconds, too coarse to place it against an offset change). Otherwise the
        offset set last before ``real`` is used.
        """
        with self.lock:
            if key is not None and stamp is not None:
                recorded = self._created.get(key)
                if recorded is not None and recorded[0] == stamp:
                    return real + recorded[1]
            index = bisect.bisect_right(self._offsets, (real, float("inf"))) - 1
            return real + self._offsets[max(index, 0)][1]

    def record_creation(self, key: tuple[str, str, str], stamp: str, offset: float) -> None:
        """A create through the front answered with ``Last-Modified: stamp`` while ``offset`` was in force."""
        with self.lock:
            self._created[key] = (stamp, offset)
            self._created.move_to_end(key)
            while len(self._created) > CREATED_LIMIT:
                self._created.popitem(last=False)

    # -- settings --------------------------------------------------------------------------------
    def container(self, account: str, container: str) -> ContainerSettings | None:
        with self.lock:
            return self.containers.get((account, container))

    def blob(self, account: str, container: str, blob: str) -> BlobSettings | None:
        with self.lock:
            return self.blobs.get((account, container, blob))

    def account(self, account: str) -> AccountPolicy | None:
        with self.lock:
            return self.accounts.get(account)

    def listing_affected(self, account: str, container: str) -> bool:
        """Whether List Blobs of this container has immutability to report (account default or blob-level)."""
        with self.lock:
            return account in self.accounts or any(a == account and c == container for a, c, _ in self.blobs)

    def may_protect(self, account: str, container: str, blob: str | None) -> bool:
        """Whether any setting could make a blob of this container immutable (else no lookup is needed)."""
        with self.lock:
            if account in self.accounts or (account, container) in self.containers:
                return True
            return blob is not None and (account, container, blob) in self.blobs

    def update_container(self, account: str, container: str, **changes: Any) -> ContainerSettings:
        with self.lock:
            settings = self.containers.setdefault((account, container), ContainerSettings())
            for key, value in changes.items():
                setattr(settings, key, value)
            if settings.empty:
                del self.containers[(account, container)]
            return settings

    def update_blob(self, account: str, container: str, blob: str, **changes: Any) -> BlobSettings:
        with self.lock:
            settings = self.blobs.setdefault((account, container, blob), BlobSettings())
            for key, value in changes.items():
                setattr(settings, key, value)
            if settings.empty:
                del self.blobs[(account, container, blob)]
            return settings

    def forget_blob(self, account: str, container: str, blob: str) -> None:
        """The blob was deleted: its blob-level settings go with it (as a version's policy does)."""
        with self.lock:
            self.blobs.pop((account, container, blob), None)

    def forget_container(self, account: str, container: str) -> None:
        with self.lock:
            self.containers.pop((account, container), None)
            for key in [k for k in self.blobs if k[0] == account and k[1] == container]:
                del self.blobs[key]

    def set_roles(self, table: Any) -> None:
        parsed = parse_role_table(table)  # raises RoleTableError before anything changes
        with self.lock:
            self.roles = parsed
            self.roles_source = table

    def blob_lock(self, account: str, container: str, blob: str) -> threading.Lock:
        """Serialises check-then-write on one blob, so two creators of a new name cannot both win."""
        with self.lock:
            return self._blob_locks.setdefault((account, container, blob), threading.Lock())

    def reset(self) -> None:
        with self.lock:
            self.clock_offset = 0.0
            self._offsets = [(float("-inf"), 0.0)]
            self._created.clear()
            self.accounts.clear()
            self.containers.clear()
            self.blobs.clear()
            self.roles = None
            self.roles_source = None
            self.log.clear()
            self.outages.clear()

    # -- log -------------------------------------------------------------------------------------
    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.log.append(entry)

    def requests(self, *, method: str | None = None, path_contains: str | None = None,
                 decision: str | None = None, operation: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            entries = list(self.log)
        return [
            e for e in entries
            if (method is None or e["method"] == method.upper())
            and (path_contains is None or path_contains in e["path"])
            and (decision is None or e["decision"] == decision)
            and (operation is None or e["operation"] == operation)
        ]

    # -- view ------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "clock": {"offsetSeconds": self.clock_offset, "now": iso(self.now())},
                "accounts": {name: asdict(p) for name, p in self.accounts.items()},
                "containers": [
                    {"account": a, "container": c,
                     "policy": asdict(s.policy) if s.policy else None, "legalHoldTags": list(s.legal_hold_tags)}
                    for (a, c), s in self.containers.items()
                ],
                "blobs": [
                    {"account": a, "container": c, "blob": b,
                     "until": iso(s.until) if s.until is not None else None,
                     "mode": s.mode if s.until is not None else None, "legalHold": s.legal_hold}
                    for (a, c, b), s in self.blobs.items()
                ],
                "roles": self.roles_source,
                "outages": sorted(self.outages),
                "requestCount": len(self.log),
            }
