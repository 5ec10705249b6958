"""Standby sync and restore drills end to end: host stand-in + Azurite + APIM emulator + official SDKs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from dr_core.backup.manifest import manifest_blob_name
from dr_core.context import get_context
from dr_core.jobs.ids import JobKind
from dr_core.jobs.job import Job
from dr_core.kernel.phases import JobState
from dr_core.ports import RecordKind
from dr_core.records import record_key
from dr_core.standby.record import StandbyRecord

from .conftest import E2E, PROD, PROJECT_ROOT, STANDBY, eventually

pytestmark = pytest.mark.e2e

DRILL = "apim-contoso-drill"
CONFIG_KEYS = ("apis", "products", "subscriptions", "users", "namedValues")


def configuration(e2e: E2E, name: str) -> dict[str, Any]:
    config = e2e.admin.service(name)["configuration"]
    return {k: config.get(k) for k in CONFIG_KEYS}


def names(config: dict[str, Any], collection: str) -> list[str]:
    return sorted(item["id"] for item in config[collection])


def take_backup(e2e: E2E) -> Job:
    response = e2e.http("POST", "/api/backups", json={"instance": "prod"})
    assert response.status_code == 202, response.text
    # Settled: all its followers have run (the manifest is only the first; the standby sync and its
    # announcement, the RPO check and the drill check come after it).
    (job,) = e2e.wait_settled([response.json()["id"]])
    assert job.state is JobState.SUCCEEDED, job.error_message
    manifest_of(e2e, job)
    return job


def restores(e2e: E2E, trigger: str) -> list[Job]:
    return [j for j in e2e.all_jobs() if j.kind is JobKind.RESTORE and j.trigger == trigger]


def backup_container(e2e: E2E) -> Any:
    assert e2e.stack.azurite is not None
    conn = e2e.stack.azurite.connection_string(e2e.stack.backup_account)
    return BlobServiceClient.from_connection_string(conn).get_container_client("apim-backups")


def manifest_of(e2e: E2E, backup: Job) -> dict[str, Any]:
    """The backup's manifest, once its follower (which runs right after the job's end) has written it."""
    blob = backup_container(e2e).get_blob_client(manifest_blob_name(backup.blob_name))
    eventually(blob.exists)
    return dict(json.loads(blob.download_blob().readall()))


def drills(e2e: E2E, **params: str) -> list[dict[str, Any]]:
    response = e2e.http("GET", "/api/drills", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["drills"])


def drill_ended(e2e: E2E, job_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        found = [d for d in drills(e2e) if d["jobId"] == job_id]
        return found[0] if found and found[0]["state"] != "running" else None

    return dict(eventually(ended, timeout=90))


def drill_events(e2e: E2E) -> list[dict[str, Any]]:
    return [m for m in e2e.webhook.received if m.get("apimDr", {}).get("event") == "drill-failed"]


def test_a_backup_of_a_synced_primary_is_restored_into_its_standby(e2e: E2E):
    e2e.configure([{"resourceId": e2e.rid(PROD), "alias": "prod", "standby": e2e.rid(STANDBY), "standbySync": True}])
    assert configuration(e2e, STANDBY) != configuration(e2e, PROD)
    backup = take_backup(e2e)
    at_backup = configuration(e2e, PROD)
    # The manifest: what the source held when the backup succeeded, read through the list endpoints.
    manifest = manifest_of(e2e, backup)
    assert manifest["apis"] == names(at_backup, "apis") and manifest["namedValues"] == names(at_backup, "namedValues")

    (sync,) = eventually(lambda: restores(e2e, "standby-sync"))
    assert sync.instance == e2e.rid(STANDBY) and sync.blob_name == backup.blob_name
    (done,) = e2e.wait_terminal([sync.job_id])
    assert done.state is JobState.SUCCEEDED, done.error_message
    assert configuration(e2e, STANDBY) == at_backup

    def synced() -> dict[str, Any] | None:
        record = get_context().records.get_record(RecordKind.STANDBY, record_key(e2e.rid(STANDBY)))
        return record.data if record is not None and record.data.get("state") == "Succeeded" else None

    data = eventually(synced)
    assert data["jobId"] == sync.job_id and data["primary"] == e2e.rid(PROD)
    assert data["lastSucceeded"]["backup"] == backup.blob_name and data["error"] is None
    view = StandbyRecord.from_json("", data).view_json(get_context().clock.now())
    assert view["lagHours"] is not None and 0 <= view["lagHours"] < 1
    # The catch-up finds nothing to do: the standby has the newest backup.
    assert e2e.host is not None and e2e.host.fire_timer("sync_standbys").succeeded
    assert len(restores(e2e, "standby-sync")) == 1


def test_standby_sync_into_a_primary_is_refused(e2e: E2E):
    # The standby of one primary is itself protected through discovery: settings cannot see it, the run-time check does.
    e2e.configure([{"resourceId": e2e.rid(PROD), "alias": "prod", "standby": e2e.rid(STANDBY), "standbySync": True}],
                  APIM_DR_DISCOVERY_SUBSCRIPTIONS=e2e.stack.subscription_id)
    e2e.admin.update_service(STANDBY, tags={"apim-dr:backup": "true"})
    before = configuration(e2e, STANDBY)
    take_backup(e2e)

    def refused() -> dict[str, Any] | None:
        record = get_context().records.get_record(RecordKind.STANDBY, record_key(e2e.rid(STANDBY)))
        return record.data if record is not None and record.data.get("state") == "Refused" else None

    data = eventually(refused)
    assert data["error"]["code"] == "StandbyIsPrimary"
    assert restores(e2e, "standby-sync") == [] and e2e.posts(STANDBY, "restore") == []
    assert configuration(e2e, STANDBY) == before
    events = [m for m in e2e.webhook.received if m.get("apimDr", {}).get("event") == "standby-sync-refused"]
    assert len(events) == 1 and STANDBY in events[0]["text"]


def test_a_scheduled_drill_restores_and_verifies_against_the_backup_time_configuration(e2e: E2E):
    e2e.configure([{"resourceId": e2e.rid(PROD), "alias": "prod", "standby": e2e.rid(STANDBY),
                    "drillTarget": e2e.rid(DRILL), "drillEveryDays": 7}])
    take_backup(e2e)
    at_backup = configuration(e2e, PROD)
    # The primary changes after its backup: the drill still compares with the backup's source at backup time.
    e2e.admin.update_service(PROD, configuration={**at_backup, "apis": at_backup["apis"][:1]})
    assert configuration(e2e, DRILL) != at_backup

    assert e2e.host is not None and e2e.host.fire_timer("run_drills").succeeded
    (started,) = drills(e2e, service="prod")
    assert started["state"] == "running" and started["target"] == e2e.rid(DRILL)
    result = drill_ended(e2e, started["jobId"])
    assert result["state"] == "passed", result
    assert result["rtoSeconds"] > 0 and result["rpoHoursAtDrill"] >= 0 and result["error"] is None
    verification = result["verification"]
    for collection in ("apis", "products", "namedValues"):
        assert verification[collection]["expected"] == names(at_backup, collection)
        assert verification[collection]["found"] == verification[collection]["expected"]
    assert configuration(e2e, DRILL) == at_backup
    assert e2e.job(started["jobId"]).trigger == "drill" and e2e.posts(PROD, "restore") == []
    # Not due again for seven days.
    assert e2e.host.fire_timer("run_drills").succeeded
    assert len(drills(e2e)) == 1 and drill_events(e2e) == []


def test_a_drill_that_does_not_match_fails_and_is_announced_once(e2e: E2E):
    e2e.configure([{"resourceId": e2e.rid(PROD), "alias": "prod", "drillTarget": e2e.rid(DRILL)}])
    backup = take_backup(e2e)
    # Make what the drill instance gets differ from what the backup's source held: the manifest claims an
    # API that the backup does not contain (as if a restore lost it).
    manifest = manifest_of(e2e, backup)
    blob = backup_container(e2e).get_blob_client(manifest_blob_name(backup.blob_name))
    blob.upload_blob(json.dumps({**manifest, "apis": [*manifest["apis"], "ghost-api"]}), overwrite=True)

    response = e2e.http("POST", "/api/drills", json={"instance": "prod"})
    assert response.status_code == 202, response.text
    job_id = response.json()["drill"]["jobId"]
    assert response.headers["Location"].endswith(f"/api/operations/{job_id}")
    result = drill_ended(e2e, job_id)
    assert result["state"] == "failed" and result["error"]["code"] == "DrillVerificationFailed"
    assert result["verification"]["apis"]["missing"] == ["ghost-api"] and result["rtoSeconds"] > 0
    (event,) = eventually(lambda: drill_events(e2e))
    assert event["apimDr"]["jobId"] == job_id and "ghost-api" in event["text"]
    assert e2e.host is not None and e2e.host.fire_timer("run_drills").succeeded
    assert len(drill_events(e2e)) == 1


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), [
    ("GET", "/api/drills", {"params": {"service": "x" * 1000}}, 400),
    ("GET", "/api/drills", {"params": {"service": "no-such-instance"}}, 404),
    ("GET", "/api/drills", {"params": {"service": "/subscriptions/../../etc/passwd"}}, 400),
    ("POST", "/api/drills", {"data": b"not json"}, 400),
    ("POST", "/api/drills", {"json": {"instance": "prod", "extra": 1}}, 400),
    ("POST", "/api/drills", {"json": {"instance": ["prod"]}}, 400),
    ("POST", "/api/drills", {"data": b"{" * 70_000}, 413),
    ("POST", "/api/drills", {"json": {"instance": "apim-contoso-dr"}}, 404),
])
def test_the_drills_endpoint_refuses_bad_input(e2e: E2E, method: str, path: str, kwargs: dict[str, Any],
                                               status: int):
    e2e.configure([{"resourceId": e2e.rid(PROD), "alias": "prod", "standby": e2e.rid(STANDBY),
                    "drillTarget": e2e.rid(DRILL)}])
    response = e2e.http(method, path, **kwargs)
    assert response.status_code == status, response.text
    assert "error" in response.json() and "Traceback" not in response.text
    assert e2e.posts(DRILL, "restore") == []


def test_the_drills_endpoint_needs_a_function_key(e2e: E2E):
    assert e2e.http("GET", "/api/drills", key=False).status_code == 401
    assert e2e.http("POST", "/api/drills", key=False, json={"instance": "prod"}).status_code == 401


def test_cli_drill_start_and_history_without_the_function_app(e2e: E2E):
    instances = [{"resourceId": e2e.rid(PROD), "alias": "prod", "drillTarget": e2e.rid(DRILL)}]
    e2e.configure(instances)
    take_backup(e2e)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIM_DR_", "AzureWebJobsStorage"))}
    env.update(e2e.settings(instances))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dr_core", *args], cwd=PROJECT_ROOT, env=env, text=True,
                              capture_output=True, timeout=180)

    done = cli("--json", "drill", "start", "--instance", "prod", "--wait", "--takeover-after", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["drill"]["state"] == "passed"
    listed = cli("drills", "--service", "prod", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)["drills"][0]["state"] == "passed"
    assert cli("drills", "--service", "x" * 1000).returncode == 2
    assert cli("drill", "start", "--instance", "nope").returncode == 5
