"""GET /api/dashboard through the Api, on fakes: the page, its headers, and errors that stay JSON."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from dr_core.api.http import ApiResponse, guarded
from dr_core.catalog.naming import backup_blob_name
from dr_core.catalog.tags import backup_tags
from dr_core.jobs.ids import JobKind
from dr_core.jobs.job import Job, Trigger
from dr_core.kernel.errors import AzureUnavailableError
from dr_core.kernel.phases import JobState
from dr_core.posture.dashboard import page_headers
from tests.unit.fakes import T0, World, rid, world

PROD, DEV, STANDBY = "apim-prod", "apim-dev", "apim-dr"
_ids = itertools.count(1)


def add_backup(w: World, service: str = PROD, *, age: timedelta, sku: str = "Standard") -> str:
    created = T0 - age
    name = backup_blob_name(service, created)
    w.backups.add("apim-backups", name, created=created,
                  tags=backup_tags(service_name=service, sku=sku, created=created, job_id="backup-x", size=10))
    return name


def add_job(w: World, kind: JobKind, state: JobState, *, service: str = PROD, ended: datetime,
            source: str | None = None, code: str | None = "BackupFailed") -> Job:
    job = Job(job_id=f"{kind.value}-{ended:%Y%m%dT%H%M%SZ}-{service}-{next(_ids):08x}", kind=kind,
              instance=rid(service), service_name=service, state=state, trigger=Trigger.SCHEDULE, slot=ended,
              created_at=ended, updated_at=ended, deadline=ended + timedelta(hours=2), finished_at=ended,
              source_instance=rid(source) if source else None)
    if state in (JobState.FAILED, JobState.TIMED_OUT):
        job.error_code, job.error_message, job.remediation = code, f"{kind.value} broke", "Do the thing."
    return w.store.put(job)


# -- GET /api/dashboard --------------------------------------------------------------------------------
def test_dashboard_answers_the_page_with_its_headers() -> None:
    w = world()
    add_backup(w, age=timedelta(hours=3))
    add_job(w, JobKind.BACKUP, JobState.FAILED, service=DEV, ended=T0 - timedelta(hours=1), code="<b>Odd</b>")
    response = guarded(lambda: w.ctx.api().dashboard())
    assert response.status == 200 and response.html is not None
    assert response.mimetype == "text/html" and response.headers == page_headers()
    body = response.content().decode("utf-8")
    assert body.startswith("<!doctype html>") and "apim-prod" in body and "&lt;b&gt;Odd&lt;/b&gt;" in body
    assert "What to do:</span> <bdi>Do the thing.</bdi>" in body


def test_a_page_with_an_unencodable_character_still_encodes() -> None:
    assert ApiResponse.page("a\ud800b", {}).content() == b"a?b"


def test_dashboard_errors_stay_json() -> None:
    w = world()
    w.ctx.resolver = lambda: (_ for _ in ()).throw(AzureUnavailableError("down"))  # type: ignore[method-assign]
    response = guarded(lambda: w.ctx.api().dashboard())
    assert response.status == 503 and response.html is None and response.mimetype == "application/json"
    assert isinstance(response.body, dict) and response.body["error"]["code"] == "AzureUnavailable"
