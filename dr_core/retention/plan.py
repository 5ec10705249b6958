"""Which backups of one instance retention deletes, and why: a pure decision, no I/O.

A backup is deleted only when **all** of these hold: it is not among the instance's ``keepLast``
newest; it is not the newest *restorable* one; it is older than ``maxAgeDays``; and no unfinished
restore job reads it. The first rule that keeps a backup is named as its reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from dr_core.catalog.entry import CatalogEntry
from dr_core.kernel.clock import iso_or_none

__all__ = ["Action", "Decision", "Reason", "plan_instance"]

_DAY = 86400.0


class Action(StrEnum):
    KEEP = "keep"
    DELETE = "delete"


class Reason(StrEnum):
    """Why a backup is kept or deleted; the first rule that keeps it is named."""

    KEEP_LAST = "keep-last"
    NEWEST_RESTORABLE = "newest-restorable"
    WITHIN_MAX_AGE = "within-max-age"
    IN_USE = "in-use-by-restore"
    PAST_MAX_AGE = "past-max-age"


@dataclass(frozen=True)
class Decision:
    entry: CatalogEntry
    action: Action
    reason: Reason
    why: str
    age_days: float


def plan_instance(entries: Iterable[CatalogEntry], *, keep_last: int, max_age_days: int, now: datetime,
                  in_use: Mapping[tuple[str, str], str] | None = None) -> list[Decision]:
    """Keep or delete each backup of one instance, newest first, with the reason (pure: no I/O).

    ``in_use`` maps ``(container, blob name)`` to the unfinished restore job that reads it.
    """
    ordered = sorted(entries, key=lambda e: (e.created, e.blob_name), reverse=True)
    newest_restorable = next((e for e in ordered if e.restorable(now=now)[0]), None)
    max_age = timedelta(days=max_age_days)
    in_use = in_use or {}
    decisions: list[Decision] = []
    for index, entry in enumerate(ordered):
        age = now - entry.created
        days = age.total_seconds() / _DAY

        def keep(reason: Reason, why: str, entry: CatalogEntry = entry, days: float = days) -> Decision:
            return Decision(entry, Action.KEEP, reason, why, days)

        if index < keep_last:
            decisions.append(keep(Reason.KEEP_LAST, f"one of the newest {keep_last} (keepLast)"))
        elif entry is newest_restorable:
            decisions.append(keep(Reason.NEWEST_RESTORABLE,
                                  f"the newest restorable backup (expires {iso_or_none(entry.expires) or 'never'})"))
        elif age <= max_age:
            decisions.append(keep(Reason.WITHIN_MAX_AGE, f"{days:.1f} days old, within maxAgeDays {max_age_days}"))
        elif (entry.container, entry.blob_name) in in_use:
            decisions.append(keep(Reason.IN_USE,
                                  f"read by unfinished restore {in_use[(entry.container, entry.blob_name)]}"))
        else:
            able, why_not = entry.restorable(now=now)
            if not able:
                restorable = f"not restorable: {why_not}"
            else:
                assert newest_restorable is not None  # this one is restorable, so a newest one exists
                restorable = f"a newer backup is restorable ({newest_restorable.blob_name})"
            why = (f"{days:.1f} days old, past maxAgeDays {max_age_days}; not among the newest {keep_last}; "
                   f"{restorable}")
            decisions.append(Decision(entry, Action.DELETE, Reason.PAST_MAX_AGE, why, days))
    return decisions
