"""Schedule monitor, host ID, clocks and option limits without Azurite (an in-memory container)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError

from emulator.funchost import ClockFile, FileClock, ManualClock, ScheduleStatus, SingletonOptions, host_id
from emulator.funchost.hostjson import HostJson, parse_timespan
from emulator.funchost.ncrontab import parse_timer_schedule
from emulator.funchost.schedule_monitor import (
    NEVER,
    StorageScheduleMonitor,
    format_dotnet_date,
    monitor_applies,
    parse_dotnet_date,
)
from emulator.funchost.timers import TimerFiring, timer_request


class _Blob:
    def __init__(self, store: dict[str, bytes], name: str) -> None:
        self._store, self._name = store, name

    def download_blob(self) -> Any:
        if self._name not in self._store:
            raise ResourceNotFoundError("BlobNotFound")
        data = self._store[self._name]

        class _Downloader:
            def readall(self) -> bytes:
                return data

        return _Downloader()

    def upload_blob(self, data: bytes, overwrite: bool = False) -> None:
        self._store[self._name] = data


class MemoryContainer:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def get_blob_client(self, name: str) -> _Blob:
        return _Blob(self.blobs, name)

    def create_container(self) -> None:
        pass


def at(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2030, 1, day, hour, minute, tzinfo=UTC)


DAILY_2AM = parse_timer_schedule("0 0 2 * * *")
HOURLY = parse_timer_schedule("0 0 * * * *")


def monitor() -> tuple[StorageScheduleMonitor, MemoryContainer]:
    container = MemoryContainer()
    return StorageScheduleMonitor(container, "myapp"), container  # type: ignore[arg-type]


def test_status_blob_json_is_what_newtonsoft_writes() -> None:
    status = ScheduleStatus(last=datetime(2030, 1, 1, 2, 0, 0, 1234, tzinfo=UTC), next=at(2, day=2),
                            last_updated=NEVER)
    assert status.to_json() == {"Last": "2030-01-01T02:00:00.001234+00:00", "Next": "2030-01-02T02:00:00+00:00",
                                "LastUpdated": "0001-01-01T00:00:00+00:00"}
    assert ScheduleStatus.from_json(status.to_json()) == status
    # What the real host writes (seven fraction digits) reads too.
    assert parse_dotnet_date("2030-01-01T02:00:00.0012345+00:00") == datetime(2030, 1, 1, 2, 0, 0, 1234, tzinfo=UTC)
    assert format_dotnet_date(NEVER) == "0001-01-01T00:00:00+00:00"


def test_a_new_timer_writes_its_first_status_and_is_not_past_due() -> None:
    mon, container = monitor()
    late, status = mon.check_past_due("Host.Functions.t", at(1, 50), DAILY_2AM, None)
    assert late == timedelta(0)
    assert status == ScheduleStatus(last=NEVER, next=at(2), last_updated=at(1, 50))
    stored = json.loads(container.blobs["timers/myapp/Host.Functions.t/status"])
    assert stored == {"Last": "0001-01-01T00:00:00+00:00", "Next": "2030-01-01T02:00:00+00:00",
                      "LastUpdated": "2030-01-01T01:50:00+00:00"}


def test_past_due_is_measured_from_the_one_stored_next_however_many_were_missed() -> None:
    mon, _ = monitor()
    fired = ScheduleStatus(last=at(1), next=at(2), last_updated=at(1))
    late, status = mon.check_past_due("t", at(4, 30), HOURLY, fired)
    assert late == timedelta(hours=2, minutes=30) and status is fired  # 02:00, 03:00, 04:00 missed: one verdict
    late, _ = mon.check_past_due("t", at(1, 30), HOURLY, fired)
    assert late == timedelta(0)


def test_a_timer_that_never_fired_checks_from_last_updated() -> None:
    mon, _ = monitor()
    never_fired = ScheduleStatus(last=NEVER, next=at(2), last_updated=at(1, 50))
    late, status = mon.check_past_due("t", at(2, 30), DAILY_2AM, never_fired)
    assert late == timedelta(minutes=30) and status == never_fired


def test_a_changed_schedule_is_recomputed_instead_of_past_due() -> None:
    mon, container = monitor()
    old = ScheduleStatus(last=at(2), next=at(2, day=2), last_updated=at(2))  # written under "daily at 02:00"
    late, status = mon.check_past_due("t", at(9, day=2), HOURLY, old)
    assert late == timedelta(0)
    assert status == ScheduleStatus(last=NEVER, next=at(10, day=2), last_updated=at(9, day=2))
    assert json.loads(container.blobs["timers/myapp/t/status"])["Next"] == "2030-01-02T10:00:00+00:00"


def test_safe_status_treats_near_min_values_as_unset() -> None:
    status = ScheduleStatus(last=datetime(1, 6, 1, tzinfo=UTC), next=at(2), last_updated=NEVER).safe()
    assert status.last == NEVER and status.next == at(2)


def test_sub_minute_schedules_keep_no_status() -> None:
    now = at(1)
    assert monitor_applies(DAILY_2AM, now) and monitor_applies(parse_timer_schedule("0 * * * * *"), now)
    assert not monitor_applies(parse_timer_schedule("*/10 * * * * *"), now)


def test_timer_request_is_what_the_worker_decodes_from_timer_info() -> None:
    status = ScheduleStatus(last=at(1), next=at(2), last_updated=at(1))
    request = timer_request(TimerFiring(past_due=True, schedule_status=status, reason="r"))
    assert request.past_due is True and request.schedule == {"AdjustForDST": True}
    assert request.schedule_status == status.to_json()
    assert timer_request(TimerFiring(past_due=False, schedule_status=None, reason="r")).schedule_status == {}


def test_host_id_rules() -> None:
    assert host_id({"AzureFunctionsJobHost__id": "Configured-ID"}, "/app") == "Configured-ID"
    long_name = "Contoso-APIM-DR-Functions-Production-West-Europe"
    assert host_id({"WEBSITE_SITE_NAME": long_name}, "/app") == "contoso-apim-dr-functions-produc"
    assert host_id({"WEBSITE_SITE_NAME": "app-name-------------------------x"}, "/a") == "app-name"
    assert host_id({"WEBSITE_SITE_NAME": "app", "WEBSITE_SLOT_NAME": "Staging"}, "/a") == "app-staging"
    local = host_id({}, "/some/project")
    assert local == host_id({}, "/some/project") != host_id({}, "/other/project")
    assert len(local) <= 32 and local == local.lower()


def test_singleton_options_limits() -> None:
    defaults = HostJson.from_dict({}).singleton
    assert defaults == SingletonOptions(listener_lock_period=60.0, listener_lock_recovery_polling_interval=60.0)
    with pytest.raises(ValueError, match="listenerLockPeriod"):
        SingletonOptions.from_section({"listenerLockPeriod": "00:00:10"}, parse_timespan)
    with pytest.raises(ValueError, match="listenerLockRecoveryPollingInterval"):
        SingletonOptions.from_section({"listenerLockRecoveryPollingInterval": "00:00:05"}, parse_timespan)


def test_new_batch_threshold_defaults_to_half_a_batch_per_processor() -> None:
    section = {"extensions": {"queues": {"batchSize": 8}}}
    assert HostJson.from_dict(section, processor_count=2).queues.new_batch_threshold == 8
    assert HostJson.from_dict(section).queues.new_batch_threshold == 4
    with pytest.raises(ValueError, match="newBatchThreshold"):
        HostJson.from_dict({"extensions": {"queues": {"newBatchThreshold": -1}}})


def test_manual_clock_wakes_waiters_when_moved() -> None:
    clock = ManualClock(at(1))
    stop = threading.Event()
    woke: list[datetime] = []
    waiter = threading.Thread(target=lambda: woke.append(clock.now()) if clock.wait_until(at(2), stop) else None)
    waiter.start()
    time.sleep(0.2)
    assert woke == []
    clock.advance(timedelta(hours=1))
    waiter.join(2)
    assert woke and woke[0] >= at(2)
    stop.set()
    assert clock.wait_until(at(3), stop) is False  # a set stop event ends the wait


def test_clock_file_moves_a_file_clock(tmp_path: Path) -> None:
    writer = ClockFile(tmp_path / "clock.json", at(1))
    reader = FileClock(tmp_path / "clock.json")
    try:
        assert abs((reader.now() - at(1)).total_seconds()) < 1
        writer.set(at(5))
        assert abs((reader.now() - at(5)).total_seconds()) < 1
    finally:
        reader.close()
