"""Shared set-up for the standby sync and drill unit tests: worlds, backups with manifests, driving jobs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dr_core.backup.manifest import MANIFEST_FORMAT, manifest_blob_name
from dr_core.catalog.naming import backup_blob_name
from dr_core.catalog.tags import backup_tags
from dr_core.jobs.ids import JobKind
from dr_core.jobs.job import Job, Trigger
from dr_core.jobs.messages import WorkMessage
from dr_core.kernel.phases import JobState
from dr_core.ports import ConfigurationSummary, PollResult
from tests.unit.fakes import SUB, T0, World, rid, settings, world

PROD, STANDBY, DRILL, DEV = "apim-prod", "apim-dr", "apim-drill", "apim-dev"
CONTAINER = "apim-backups"
PROD_CONFIG = ConfigurationSummary(("customers-api", "echo-api", "orders-api"), ("partners", "starter"),
                                   ("orders-backend-url",))
RESOURCE = {"sku": {"name": "Standard", "capacity": 1}, "location": "West Europe"}


def continuity_world(*, sync: bool = True, drill: bool = True, every: int = 7, discover: bool = False,
                     **extra: str) -> World:
    entry: dict[str, Any] = {"resourceId": rid(PROD), "alias": "prod", "standby": rid(STANDBY), "standbySync": sync}
    if drill:
        entry |= {"drillTarget": rid(DRILL), "drillEveryDays": every}
    if discover:
        extra["APIM_DR_DISCOVERY_SUBSCRIPTIONS"] = SUB
    w = world(settings([entry, rid(DEV)], **extra))
    for name in (PROD, STANDBY, DRILL, DEV):
        w.arm.add_service(name)
    w.arm.configurations[PROD] = PROD_CONFIG
    return w


def add_backup(w: World, *, age: timedelta = timedelta(hours=2), manifest: ConfigurationSummary | None = PROD_CONFIG,
               service: str = PROD, sku: str = "Standard") -> str:
    """A labelled backup of ``service`` ``age`` old, with a manifest unless ``manifest`` is None."""
    created = T0 - age
    name = backup_blob_name(service, created)
    w.backups.add(CONTAINER, name, created=created,
                  tags=backup_tags(service_name=service, sku=sku, created=created, job_id="backup-x", size=10))
    if manifest is not None:
        w.backups.put_json(CONTAINER, manifest_blob_name(name), {"format": MANIFEST_FORMAT, "version": 1,
                                                                 **manifest.to_json()})
    return name


def succeed_backup(w: World) -> Job:
    """A backup of the primary that the worker sees succeed (blob written by "APIM"), followers included."""
    instance = w.ctx.settings.instances[0]
    now = w.clock.now().replace(microsecond=0)
    job = Job.new_backup(w.ctx.settings, instance, now, trigger=Trigger.SCHEDULE, now=now)
    job.begin_start(now)
    job.record_started(now, location="https://management.example/op/backup", delay=5)
    w.store.put(job)
    w.backups.add(CONTAINER, job.blob_name, created=now)
    w.arm.poll_answers.append(PollResult("succeeded", 0, resource=RESOURCE))
    w.ctx.worker().handle(WorkMessage("poll", job=job.job_id, seq=job.poll_seq).encode())
    saved = w.store.rows[job.job_id]
    assert saved.state is JobState.SUCCEEDED, saved.error_message
    return saved


def restore_jobs(w: World, trigger: str | None = None) -> list[Job]:
    return [j for j in w.store.rows.values()
            if j.kind is JobKind.RESTORE and (trigger is None or j.trigger == trigger)]


def drive_restore(w: World, job_id: str, *, outcome: PollResult | None = None, seconds: float = 600) -> Job:
    """Take a Planned restore through start and one poll; ``seconds`` pass in between."""
    worker = w.ctx.worker()
    worker.handle(WorkMessage("start", job=job_id).encode())
    w.clock.advance(seconds)
    running = w.store.rows[job_id]
    assert running.state is JobState.RUNNING, running.state
    w.arm.poll_answers.append(outcome or PollResult("succeeded", 0, resource=RESOURCE))
    worker.handle(WorkMessage("poll", job=job_id, seq=running.poll_seq).encode())
    return w.store.rows[job_id]
