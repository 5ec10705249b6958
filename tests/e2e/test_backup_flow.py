"""Scheduled and on-demand backups end to end: host stand-in + Azurite + APIM emulator + official SDKs."""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import BlobServiceClient

from dr_core.azure.queues import send_messages
from dr_core.context import get_context
from dr_core.jobs.messages import WorkMessage
from dr_core.kernel.phases import JobState

from .conftest import E2E, PREMIUM, PROD, V2, eventually

pytestmark = pytest.mark.e2e


def backup_container(e2e: E2E):
    assert e2e.stack.azurite is not None
    conn = e2e.stack.azurite.connection_string(e2e.stack.backup_account)
    return BlobServiceClient.from_connection_string(conn).get_container_client("apim-backups")


def test_timer_tick_over_three_instances(e2e: E2E):
    """One instance succeeds, one is busy at first and succeeds after its retry, one can't back up."""
    assert e2e.host is not None and e2e.stack.apim is not None
    e2e.configure([e2e.rid(PROD), e2e.rid(PREMIUM), e2e.rid(V2)])
    # Make the Premium instance busy: an operation someone else started is still running.
    e2e.admin.set_op_duration(4, service=PREMIUM)
    from azure.identity import ManagedIdentityCredential
    from azure.mgmt.apimanagement import ApiManagementClient
    from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters

    client = ApiManagementClient(ManagedIdentityCredential(client_id=e2e.stack.function_app_client_id),
                                 e2e.stack.subscription_id, base_url=e2e.stack.apim.arm_url)
    client.api_management_service.begin_backup(
        "rg-apim-prod", PREMIUM, ApiManagementServiceBackupRestoreParameters(
            storage_account=e2e.stack.backup_account, container_name="other-team", backup_name="manual",
            access_type="SystemAssignedManagedIdentity"), polling=False)

    record = e2e.host.fire_timer("plan_scheduled_backups")
    assert record.outcome == "success", record
    jobs = {j.service_name: j for j in e2e.all_jobs()}
    assert set(jobs) == {PROD, PREMIUM, V2}
    done = {j.service_name: j for j in e2e.wait_terminal([j.job_id for j in jobs.values()])}

    prod, premium, v2 = done[PROD], done[PREMIUM], done[V2]
    assert prod.state is JobState.SUCCEEDED and premium.state is JobState.SUCCEEDED
    assert premium.start_attempts >= 2, "the busy instance should have been retried after ServiceLocked"
    assert v2.state is JobState.FAILED and v2.error_code == "MethodNotAllowedInPricingTier"
    assert "Developer, Basic, Standard and Premium" in (v2.remediation or "")

    container = backup_container(e2e)
    for job in (prod, premium):
        blob = container.get_blob_client(job.blob_name)
        props = blob.get_blob_properties()
        assert props.size > 0 and job.blob_size == props.size
        md = props.metadata
        assert md["source_resource_id"] == job.instance and md["job_id"] == job.job_id
        assert md["sku_name"] == job.sku and md["api_version"] == "2024-05-01"
        created = datetime.fromisoformat(md["created"].replace("Z", "+00:00"))
        assert datetime.fromisoformat(md["expires"].replace("Z", "+00:00")) - created == timedelta(days=30)
        tags = blob.get_blob_tags()
        assert tags["apimdr_service"] == job.service_name and tags["apimdr_state"] == "succeeded"
        # The blob is a real APIM-emulator snapshot of that instance.
        snapshot = json.loads(blob.download_blob().readall())
        assert job.service_name in json.dumps(snapshot)
    assert prod.sku == "Standard" and premium.sku == "Premium" and prod.region

    # Exactly one POST per job (the busy one: the refused attempt plus the accepted one).
    assert len(e2e.posts(PROD)) == 1
    assert len(e2e.posts(V2)) == 1
    assert len([r for r in e2e.posts(PREMIUM) if r["status"] == 202]) == 2  # the manual one and ours

    # The failure is announced once, with remediation, and not again on later messages.
    time.sleep(2)
    send_messages(get_context().clients.work_queue(), [(WorkMessage("start", job=v2.job_id), 0)])
    e2e.host.drain(timeout=20)
    announcements = [a for a in e2e.webhook.received if a["apimDr"]["jobId"] == v2.job_id]
    assert len(announcements) == 1
    assert announcements[0]["apimDr"]["remediation"] and "MethodNotAllowedInPricingTier" in announcements[0]["text"]
    assert not [a for a in e2e.webhook.received if a["apimDr"]["jobId"] in (prod.job_id, premium.job_id)]


def test_timer_refiring_for_the_same_slot_creates_nothing(e2e: E2E):
    assert e2e.host is not None
    e2e.configure([e2e.rid(PROD)])
    e2e.host.fire_timer("plan_scheduled_backups")
    first = e2e.all_jobs()
    e2e.host.fire_timer("plan_scheduled_backups")
    assert [j.job_id for j in e2e.all_jobs()] == [j.job_id for j in first]
    e2e.wait_terminal([j.job_id for j in first])
    assert len(e2e.posts(PROD)) == 1


def test_duplicated_messages_send_one_post(e2e: E2E):
    response = e2e.http("POST", "/api/backups", json={"instance": "prod"})
    assert response.status_code == 202
    job_id = response.json()["id"]
    queue = get_context().clients.work_queue()
    send_messages(queue, [(WorkMessage("start", job=job_id), 0)] * 4)
    eventually(lambda: e2e.job(job_id).state is not JobState.PLANNED)
    job = e2e.job(job_id)
    send_messages(queue, [(WorkMessage("poll", job=job_id, seq=max(job.poll_seq, 1)), 0)] * 3)
    (done,) = e2e.wait_terminal([job_id])
    assert done.state is JobState.SUCCEEDED
    assert len(e2e.posts(PROD)) == 1


def test_status_endpoint_reports_the_job(e2e: E2E):
    response = e2e.http("POST", "/api/backups", json={"instance": e2e.rid(PROD)})
    assert response.status_code == 202
    location = response.headers["Location"]
    assert location.endswith(f"/api/operations/{response.json()['id']}")
    assert int(response.headers["Retry-After"]) >= 1
    e2e.wait_terminal([response.json()["id"]])
    assert e2e.host is not None
    status = e2e.http("GET", location.split(e2e.host.http_url, 1)[1])
    assert status.status_code == 200
    body = status.json()
    assert body["state"] == "Succeeded" and body["kind"] == "backup"
    assert body["durationSeconds"] is not None and body["backup"]["blobName"].endswith(".apimbackup")
    assert body["error"] is None and body["startedAt"] and body["finishedAt"]


def test_polls_per_backup_are_bounded(e2e: E2E):
    """One GET per invocation, spaced by Retry-After: within one of ceil(duration / Retry-After) + 1.

    The queue adds pickup latency (host.json maxPollingInterval, 2 s, with the idle back-off), so
    Retry-After is kept large against it, as in production (60 s against at most 2 s).
    """
    duration, retry_after, max_pickup = 20.0, 10.0, 5.0
    e2e.configure(APIM_DR_MAX_POLL_DELAY_SECONDS="60")
    e2e.admin.set_retry_after(retry_after)
    e2e.admin.set_op_duration(duration, service=PROD)
    job_id = e2e.http("POST", "/api/backups", json={"instance": "prod"}).json()["id"]
    (job,) = e2e.wait_terminal([job_id], timeout=90)
    assert job.state is JobState.SUCCEEDED
    polls = [r for r in e2e.admin.requests(method="GET") if "/operationresults/" in r["path"]]
    bound = math.ceil(duration / retry_after) + 1
    assert job.polls == len(polls)
    assert abs(job.polls - bound) <= 1, f"{job.polls} polls for a {duration} s operation (bound {bound})"
    # Never sooner than Retry-After, never much later than Retry-After plus the queue's pickup latency.
    post = next(r for r in e2e.posts(PROD))
    times = [datetime.fromisoformat(r["time"].replace("Z", "+00:00")) for r in [post, *polls]]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert all(retry_after - 0.5 <= gap <= retry_after + max_pickup + 1.5 for gap in gaps), gaps


def test_a_job_past_its_deadline_times_out_and_is_announced(e2e: E2E):
    e2e.admin.set_op_duration(600, service=PROD)
    job_id = e2e.http("POST", "/api/backups", json={"instance": "prod"}).json()["id"]
    eventually(lambda: e2e.job(job_id).state is JobState.RUNNING)
    store = get_context().jobs
    job = store.get(job_id)
    assert job is not None
    job.deadline = datetime.now(UTC) - timedelta(seconds=1)
    store.update(job)
    (done,) = e2e.wait_terminal([job_id], timeout=30)
    assert done.state is JobState.TIMED_OUT and done.error_code == "TimedOut"
    assert "did not finish" in (done.error_message or "") and done.remediation
    eventually(lambda: [a for a in e2e.webhook.received if a["apimDr"]["jobId"] == job_id])
    assert len([a for a in e2e.webhook.received if a["apimDr"]["jobId"] == job_id]) == 1


def test_throttling_and_server_errors_are_waited_out(e2e: E2E):
    e2e.admin.throttle(on="backup_start", count=1, retry_after=1)
    e2e.admin.set_fault(kind="http", on="poll", status=500, count=2)
    job_id = e2e.http("POST", "/api/backups", json={"instance": "prod"}).json()["id"]
    (job,) = e2e.wait_terminal([job_id])
    assert job.state is JobState.SUCCEEDED
    assert len([r for r in e2e.posts(PROD) if r["status"] == 202]) == 1


@pytest.mark.parametrize(("body", "status", "fragment"), [
    (b"", 400, "empty"),
    (b"not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (b'{"instance": 42}', 400, "instance"),
    (b'{"instance": ""}', 400, "instance"),
    (b'{"instance": "prod", "extra": 1}', 400, "unknown fields"),
    (b'{"instance": "../../etc/passwd"}', 404, "not a protected instance"),
    (b'{"instance": "/subscriptions/x/resourceGroups/y"}', 400, "instance"),
    (json.dumps({"instance": "\u0000\u202e" * 100}).encode(), 404, "not a protected instance"),
    (json.dumps({"instance": "a" * 5000}).encode(), 400, "too long"),
    (b'{"instance": "' + b"x" * 70_000 + b'"}', 413, "at most"),
    (b'{"instance": {"$ne": null}}', 400, "instance"),
])
def test_bad_backup_requests_get_clear_4xx(e2e: E2E, body: bytes, status: int, fragment: str):
    response = e2e.http("POST", "/api/backups", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert fragment.lower() in error["message"].lower()
    assert e2e.all_jobs() == []


@pytest.mark.parametrize(("path", "status"), [
    ("/api/operations/not-a-job", 400),
    ("/api/operations/backup-20261122T020000Z-apim-x-00000000", 404),
    ("/api/operations/" + "b" * 300, 400),
    ("/api/operations/backup-20261122T020000Z-..%2F..-00000000", 400),
])
def test_bad_operation_ids(e2e: E2E, path: str, status: int):
    response = e2e.http("GET", path)
    assert response.status_code == status
    assert "error" in response.json()


def test_function_key_is_required(e2e: E2E):
    assert e2e.http("POST", "/api/backups", key=False, json={"instance": "prod"}).status_code == 401
    assert e2e.http("GET", "/api/operations/x", key=False).status_code == 401


def test_bad_settings_are_named_and_lose_nothing(e2e: E2E):
    assert e2e.host is not None
    e2e.configure(APIM_DR_INSTANCES="{broken", APIM_DR_BACKUP_CONTAINER="Bad_Container")
    response = e2e.http("POST", "/api/backups", json={"instance": "prod"})
    assert response.status_code == 503
    message = response.json()["error"]["message"]
    assert "APIM_DR_INSTANCES" in message and "APIM_DR_BACKUP_CONTAINER" in message
    record = e2e.host.fire_timer("plan_scheduled_backups")
    assert record.outcome != "success" and "APIM_DR_INSTANCES" in (record.error or "")
    assert e2e.all_jobs() == []

    # One bad entry among good ones: the good one is still planned and backed up.
    e2e.configure([e2e.rid(PROD), "/subscriptions/nope/resourceGroups/x/providers/Microsoft.ApiManagement/service/y"])
    record = e2e.host.fire_timer("plan_scheduled_backups")
    assert record.outcome == "success"
    (job,) = e2e.all_jobs()
    assert job.service_name == PROD
    e2e.wait_terminal([job.job_id])


def test_no_secret_in_logs_rows_or_responses(e2e: E2E, caplog: pytest.LogCaptureFixture):
    key = e2e.stack._seed["storageAccounts"][0]["key"]
    hook_token = "s3cr3t-hook-token"
    e2e.configure([e2e.rid(PROD), e2e.rid(V2)], APIM_DR_STORAGE_ACCESS_TYPE="AccessKey",
                  APIM_DR_BACKUP_STORAGE_KEY=key, APIM_DR_WEBHOOK_URL=e2e.webhook.url + "?token=" + hook_token)
    # Everything at INFO and above, and our own code even at DEBUG. (urllib3 prints request lines,
    # webhook query strings included, at DEBUG: production runs at Information.)
    caplog.set_level(logging.INFO)
    for name in ("dr_core", "apim_dr", "triggers", "azure"):
        caplog.set_level(logging.DEBUG, logger=name)
    assert e2e.host is not None
    e2e.host.fire_timer("plan_scheduled_backups")
    jobs = e2e.wait_terminal([j.job_id for j in e2e.all_jobs()])
    assert {j.state for j in jobs} == {JobState.SUCCEEDED, JobState.FAILED}
    texts = [caplog.text, json.dumps([j.as_dict() for j in jobs], default=str)]
    texts += [e2e.http("GET", f"/api/operations/{j.job_id}").text for j in jobs]
    texts += [json.dumps(a) for a in e2e.webhook.received]
    for text in texts:
        for line in text.splitlines():
            assert key not in line and hook_token not in line, line[:300]
    # The key did reach ARM (AccessKey mode works), only there.
    assert any(r["status"] == 202 for r in e2e.posts(PROD))

