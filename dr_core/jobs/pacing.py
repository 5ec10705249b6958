"""ARM's read budget, shared by every host instance: how many reads apim-dr may make now, per subscription.

ARM throttles per region, subscription, principal and operation type with a token bucket (Azure
Resource Manager "request limits and throttling", 2024: reads 250 at once, refilled 25 per second;
../shared/reference/apim-arm.md §4.3). A configuration snapshot of a large instance makes thousands
of reads; if every worker read as fast as it could, a fleet's snapshots would meet a wall of 429s
and starve the polls and drills that share the bucket. So reads are taken from a bucket apim-dr
keeps itself, one record per subscription in the records table, taken with a conditional write:
one bucket for all host instances (scale-out does not multiply the budget), refilled at
``APIM_DR_SNAPSHOT_READS_PER_SECOND`` (default 20 of ARM's 25, the rest left for everyone else).

A caller that is granted nothing is told how long to wait and resumes later from the queue; nobody
sleeps in an invocation. ARM's own 429 (other readers share its bucket) is still honoured by the
caller, with ``Retry-After``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from dr_core.kernel.clock import iso_or_none
from dr_core.kernel.wire import JsonObject
from dr_core.ports import RecordConflictError, RecordKind, RecordStore
from dr_core.records import Records, Versioned, moment, number

__all__ = ["BudgetGrant", "BudgetRecord", "ReadBudget", "TokenBucket"]

logger = logging.getLogger(__name__)

ARM_READ_BURST = 250  # ARM's read bucket per subscription and principal
_RESERVE = 50  # of the burst never taken by apim-dr's bulk reads: polls and people read too
_ATTEMPTS = 5  # conditional writes lost to other instances before this taker gives up for now
# Item writes (a snapshot restore's PUTs and DELETEs) share ARM's write bucket (200, then 10 per second) with
# backup and restore POSTs: they may spend half of it, so a restore never starves a fleet's backups.
_WRITE_CAPACITY, _WRITES_PER_SECOND = 100.0, 5.0


@dataclass(frozen=True)
class TokenBucket:
    """A token bucket: ``capacity`` tokens at most, refilled at ``rate`` per second. Pure."""

    capacity: float
    rate: float

    def level(self, tokens: float, since: datetime | None, now: datetime) -> float:
        """The tokens there are at ``now``, ``tokens`` having been there at ``since`` (None: a full bucket)."""
        if since is None:
            return self.capacity
        elapsed = max(0.0, (now - since).total_seconds())  # another instance's clock may be ahead
        return min(self.capacity, tokens + elapsed * self.rate)

    def wait_for(self, tokens: float, wanted: float = 1.0) -> float:
        """Seconds until ``wanted`` tokens are there, from ``tokens`` now."""
        return max(0.0, (wanted - tokens) / self.rate)


@dataclass(frozen=True)
class BudgetRecord:
    """``{"tokens", "at"}``: the bucket's level at ``at``; one per subscription."""

    KIND: ClassVar[RecordKind] = RecordKind.ARM_BUDGET

    tokens: float
    at: datetime | None

    def to_json(self) -> JsonObject:
        return {"tokens": round(self.tokens, 3), "at": iso_or_none(self.at)}

    @classmethod
    def from_json(cls, key: str, data: Mapping[str, Any]) -> BudgetRecord:
        tokens = number(data.get("tokens"))
        return cls(float(tokens) if tokens is not None and tokens >= 0 else 0.0, moment(data.get("at")))


@dataclass(frozen=True)
class BudgetGrant:
    granted: int
    retry_after: float  # when granted is 0: seconds until a read may be taken


class ReadBudget:
    """Takes ARM reads from the shared bucket of a subscription."""

    def __init__(self, store: RecordStore, *, reads_per_second: float, capacity: float = ARM_READ_BURST - _RESERVE,
                 key_prefix: str = "") -> None:
        self._records = Records(store, BudgetRecord)
        self._bucket = TokenBucket(capacity=capacity, rate=reads_per_second)
        self._prefix = key_prefix

    @classmethod
    def for_writes(cls, store: RecordStore) -> ReadBudget:
        """The same kind of bucket for item writes (its own record per subscription)."""
        return cls(store, reads_per_second=_WRITES_PER_SECOND, capacity=_WRITE_CAPACITY, key_prefix="writes-")

    def take(self, subscription_id: str, wanted: int, *, now: datetime) -> BudgetGrant:
        """Up to ``wanted`` reads for ``subscription_id``, now; none and a wait when the bucket is empty."""
        if wanted <= 0:
            return BudgetGrant(0, 0.0)
        key = self._prefix + subscription_id.lower()
        for _ in range(_ATTEMPTS):
            current = self._records.get(key)
            level = self._bucket.level(current.value.tokens if current else 0.0,
                                       current.value.at if current else None, now)
            granted = min(wanted, math.floor(level))
            if granted <= 0:
                return BudgetGrant(0, max(0.1, self._bucket.wait_for(level)))
            try:
                self._records.put(Versioned(key, BudgetRecord(level - granted, now),
                                            current.etag if current else None))
            except RecordConflictError:
                continue  # another instance took some: look again
            return BudgetGrant(granted, 0.0)
        logger.info("ARM read budget of %s contested %d times; trying again shortly", key, _ATTEMPTS)
        return BudgetGrant(0, 1.0)
