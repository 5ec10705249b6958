"""The timer schedule monitor (the trigger's ``useMonitor``, on by default) as the real host keeps it.

Sources (Azure/azure-webjobs-sdk-extensions, src/WebJobs.Extensions/Extensions/Timers/):

- ``Scheduling/StorageScheduleMonitorV2.cs``: one blob per timer,
  ``timers/{hostId}/{timerName}/status`` in ``azure-webjobs-hosts``, holding the JSON of a
  ``ScheduleStatus`` (``Last``, ``Next``, ``LastUpdated``), written by Newtonsoft.Json with ISO dates;
  404 on read means "no status yet"; a failed write is logged and ignored (best effort).
- ``Scheduling/ScheduleMonitor.cs`` ``CheckPastDueAsync``: with no status, write one
  (``Next`` = next occurrence after now, ``LastUpdated`` = now) and it is not past due. With a
  status, recompute the expected ``Next`` from ``Last`` (or ``LastUpdated`` if the timer never
  fired); if the stored ``Next`` differs, the schedule changed: recompute from now when the expected
  occurrence is already past, write the status with ``Last`` reset, and use that. Past due when
  ``now > Next``. ``GetSafeStatusAsync`` turns dates within a year of ``DateTime.MinValue`` into the
  default value.
- ``Scheduling/TimerSchedule.cs`` ``Create``: a cron schedule with more than one occurrence in the
  next minute turns ``UseMonitor`` off (sub-minute schedules keep no status).

Dates: the host runs in UTC on Azure and writes local (= UTC) times with an offset, e.g.
``2030-01-01T02:00:00.0012345+00:00``; ``DateTime.MinValue`` is ``0001-01-01T00:00:00+00:00``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

from .ncrontab import CronSchedule

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

__all__ = [
    "NEVER",
    "ScheduleStatus",
    "StorageScheduleMonitor",
    "format_dotnet_date",
    "monitor_applies",
    "next_or_max",
    "parse_dotnet_date",
    "status_blob",
]

logger = logging.getLogger(__name__)

# ScheduleMonitor.DefaultDateTime: DateTime.MinValue in the host's (UTC) zone; anything within a
# year of it counts as unset (DefaultDateTimeThreshold).
NEVER = datetime(1, 1, 1, tzinfo=UTC)
_UNSET_BELOW = datetime(2, 1, 1, tzinfo=UTC)


def status_blob(host_id: str, timer_name: str) -> str:
    return f"timers/{host_id}/{timer_name}/status"


def format_dotnet_date(value: datetime) -> str:
    """Newtonsoft.Json's ISO form of a local DateTime in UTC: ``yyyy-MM-ddTHH:mm:ss[.FFFFFFF]+00:00``."""
    value = value.astimezone(UTC)
    # strftime("%Y") does not pad year 1 (DateTime.MinValue) to four digits.
    text = (f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
            f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}")
    if value.microsecond:
        text += "." + f"{value.microsecond:06d}".rstrip("0")
    return text + "+00:00"


def parse_dotnet_date(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass(frozen=True)
class ScheduleStatus:
    """ScheduleStatus.cs: the last occurrence run, the next one expected, and when this was computed."""

    last: datetime = NEVER
    next: datetime = NEVER
    last_updated: datetime = NEVER

    def to_json(self) -> dict[str, str]:
        return {"Last": format_dotnet_date(self.last), "Next": format_dotnet_date(self.next),
                "LastUpdated": format_dotnet_date(self.last_updated)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScheduleStatus:
        def read(key: str) -> datetime:
            value = data.get(key)
            return parse_dotnet_date(value) if isinstance(value, str) and value else NEVER

        return cls(last=read("Last"), next=read("Next"), last_updated=read("LastUpdated"))

    def safe(self) -> ScheduleStatus:
        """GetSafeStatusAsync: near-MinValue dates become the default."""
        return ScheduleStatus(*(NEVER if d < _UNSET_BELOW else d for d in (self.last, self.next, self.last_updated)))


def monitor_applies(schedule: CronSchedule, now: datetime) -> bool:
    """TimerSchedule.Create: more than one occurrence within the next minute switches the monitor off."""
    first = schedule.next_occurrence(now)
    if first is None:
        return True
    second = schedule.next_occurrence(first)
    return second is None or second > now + timedelta(minutes=1)


class StorageScheduleMonitor:
    """StorageScheduleMonitorV2 over ``azure-webjobs-hosts``."""

    def __init__(self, container: ContainerClient, host_id: str) -> None:
        self._container = container
        self.host_id = host_id

    def get_status(self, timer_name: str) -> ScheduleStatus | None:
        blob = self._container.get_blob_client(status_blob(self.host_id, timer_name))
        try:
            text = blob.download_blob().readall().decode("utf-8")
        except ResourceNotFoundError:
            return None  # no status recorded yet
        return ScheduleStatus.from_json(json.loads(text))

    def get_safe_status(self, timer_name: str) -> ScheduleStatus | None:
        status = self.get_status(timer_name)
        return None if status is None else status.safe()

    def update_status(self, timer_name: str, status: ScheduleStatus) -> None:
        blob = self._container.get_blob_client(status_blob(self.host_id, timer_name))
        body = json.dumps(status.to_json(), separators=(",", ":"))
        try:
            blob.upload_blob(body.encode("utf-8"), overwrite=True)
        except ResourceNotFoundError:
            # The container does not exist yet (a host that never took a lock): create it and retry once.
            try:
                self._container.create_container()
                blob.upload_blob(body.encode("utf-8"), overwrite=True)
            except Exception as exc:
                logger.error("Function '%s' failed to update the timer trigger status: %s", timer_name, exc)
        except Exception as exc:  # best effort, as the real monitor
            logger.error("Function '%s' failed to update the timer trigger status: %s", timer_name, exc)

    def check_past_due(self, timer_name: str, now: datetime, schedule: CronSchedule,
                       last_status: ScheduleStatus | None) -> tuple[timedelta, ScheduleStatus]:
        """ScheduleMonitor.CheckPastDueAsync: how far past due (zero if not), and the status now stored."""
        if last_status is None:
            status = ScheduleStatus(last=NEVER, next=next_or_max(schedule, now), last_updated=now)
            self.update_status(timer_name, status)
        else:
            status = last_status
            if status.last > _UNSET_BELOW:
                expected, last_updated = next_or_max(schedule, status.last), status.last
            elif status.last_updated > _UNSET_BELOW:
                expected, last_updated = next_or_max(schedule, status.last_updated), status.last_updated
            else:
                expected, last_updated = next_or_max(schedule, now), now
            if status.next != expected:
                # The schedule changed since the status was written: an occurrence that is already
                # past under the new schedule does not count as missed.
                if now > expected:
                    expected, last_updated = next_or_max(schedule, now), now
                status = replace(status, last=NEVER, next=expected, last_updated=last_updated)
                self.update_status(timer_name, status)
        late = now - status.next
        return (late if late > timedelta(0) else timedelta(0)), status


_FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)  # DateTime.MaxValue, as NCrontab answers


def next_or_max(schedule: CronSchedule, after: datetime) -> datetime:
    """The next occurrence strictly after ``after``; NCrontab's DateTime.MaxValue when there is none."""
    occurrence = schedule.next_occurrence(after)
    return occurrence if occurrence is not None else _FAR_FUTURE
