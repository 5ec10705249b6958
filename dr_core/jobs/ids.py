"""Job IDs: ``{kind}-{yyyyMMddTHHmmssZ}-{service}-{8 hex}``, made and validated in one place.

The kind and the slot (the schedule moment the job belongs to) can be read back from an ID, so a
job is found with a point read and a job ID from an HTTP path or a queue message is checked first.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum

from dr_core.kernel.ids import ApimResourceId

__all__ = ["JobKind", "make_job_id", "parse_job_id"]


class JobKind(StrEnum):
    """What a job does. A new kind adds a member here and a handler in the worker (:mod:`.worker`)."""

    BACKUP = "backup"
    RESTORE = "restore"
    SNAPSHOT = "snapshot"  # a configuration snapshot: many paced ARM reads, one document (dr_core/snapshots)
    CONFIG_RESTORE = "config-restore"  # a snapshot restored item by item (dr_core/snapshots/restoring.py)


_KINDS = "|".join(re.escape(kind.value) for kind in JobKind)
_JOB_ID_RE = re.compile(
    rf"^(?P<kind>{_KINDS})-(?P<slot>\d{{8}}T\d{{6}}Z)-(?P<service>[A-Za-z0-9-]{{1,50}})-(?P<h>[0-9a-f]{{8}})$"
)
_MAX_JOB_ID = 100


def make_job_id(kind: JobKind, instance: ApimResourceId, slot: datetime, *, unique: bool = False) -> str:
    """The job of ``instance`` in ``slot``.

    By default the same inputs always give the same ID (idempotent planning: a re-fired timer
    or a double-clicked backup finds its job). ``unique`` mixes in a random nonce, for jobs
    that must never meet an earlier one (restores: a refused request must not block the next).
    """
    slot = slot.astimezone(UTC).replace(microsecond=0)
    nonce = f"|{uuid.uuid4().hex}" if unique else ""
    digest = hashlib.sha256(f"{kind.value}|{instance.key}{nonce}".encode()).hexdigest()[:8]
    return f"{kind.value}-{slot:%Y%m%dT%H%M%SZ}-{instance.service_name}-{digest}"


def parse_job_id(job_id: object) -> tuple[JobKind, datetime]:
    """Validate a job ID (it may come from an HTTP path or a queue message) and return its kind and slot.

    :raises ValueError: if it is not a job ID apim-dr makes.
    """
    if not isinstance(job_id, str) or len(job_id) > _MAX_JOB_ID:
        raise ValueError("not a job ID")
    match = _JOB_ID_RE.match(job_id)
    if not match:
        kinds = "|".join(kind.value for kind in JobKind)
        raise ValueError(f"not a job ID: expected {{{kinds}}}-{{yyyyMMddTHHmmssZ}}-{{service}}-{{8 hex}}")
    try:
        slot = datetime.strptime(match.group("slot"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError as e:
        raise ValueError("not a job ID: its time stamp is not a date") from e
    return JobKind(match.group("kind")), slot
