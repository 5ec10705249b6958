"""The webhook gets the announcement unchanged (Slack/Teams read "text") and its CloudEvents attributes as
headers; every delivery of one announcement carries one ID."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dr_core.azure.notifier import WebhookNotifier
from dr_core.jobs.events import announcement, announcement_id
from dr_core.jobs.job import Job, Trigger
from dr_core.kernel.errors import ArmError
from dr_core.kernel.events import Event, event_id
from emulator.webhook import Webhook
from tests.unit.fakes import T0, settings


@pytest.fixture
def hook() -> Iterator[Webhook]:
    webhook = Webhook()
    yield webhook
    webhook.stop()


def _failed() -> Job:
    cfg = settings()
    job = Job.new_backup(cfg, cfg.instances[0], T0, trigger=Trigger.SCHEDULE, now=T0)
    job.begin_start(T0)
    job.fail(T0, ArmError("BackupFailed", "identity not authorized", 400))
    return job


def test_a_job_announcement_carries_its_id_in_the_body_and_as_cloudevents_headers(hook: Webhook) -> None:
    job = _failed()
    notifier = WebhookNotifier(hook.url)
    notifier.announce(job)
    notifier.announce(job)  # a repeat, as after a host killed before the flag was saved
    assert hook.received == [announcement(job)] * 2
    ids = {h["ce-id"] for h in hook.headers}
    assert ids == {announcement_id(job)} == {b["apimDr"]["eventId"] for b in hook.received}
    first = hook.headers[0]
    assert (first["ce-specversion"], first["ce-source"], first["ce-type"]) == ("1.0", "/apim-dr",
                                                                             "apim-dr.backup.failed")
    assert first["ce-time"] == "2026-11-30T02:00:00Z" and first["content-type"].startswith("application/json")


def test_an_event_announcement_carries_its_own_id(hook: Webhook) -> None:
    ident = event_id("drill-failed", "restore-1")
    WebhookNotifier(hook.url).announce_event(Event("drill-failed", "apim-dr: drill failed", {"jobId": "r"},
                                                   event_id=ident))
    (body,), (headers,) = hook.received, hook.headers
    assert body == {"text": "apim-dr: drill failed", "apimDr": {"event": "drill-failed", "eventId": ident,
                                                                 "jobId": "r"}}
    assert headers["ce-id"] == ident and headers["ce-type"] == "apim-dr.drill-failed"
