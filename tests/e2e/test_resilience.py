"""The job machinery's resilience end to end (issues 18 and 21), through the host stand-in, Azurite behind the blob
front, the APIM emulator and the official SDKs; ARM's faults are the emulator's (``set_fault``).

- a poll answered ``409 ServiceLocked`` (or refused) no longer ends a job the operation did not end;
- a backup blob no job labelled is found and adopted by the watchdog;
- an operation failing for a transient reason gets new attempts (a new operation each, on the same job);
  a permanent one fails at once; a job is announced once, when it finally fails, with every attempt's error;
- the ``APIMDR_RPO`` and ``APIMDR_RETENTION`` lines a timer run writes from its pool threads reach the host.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from dr_core.context import get_context
from dr_core.jobs.job import AttemptOutcome, Job
from dr_core.kernel.phases import JobState

from .conftest import E2E, PREMIUM, PROD, eventually

pytestmark = pytest.mark.e2e

CONTAINER = "apim-backups"
DAY = 86400
# (status, code, message) of ARM answers the emulator is told to give.
INTERNAL = (500, "InternalServerError", "Encountered an internal server error.")
LOCKED = (409, "ServiceLocked",
          f"The API Service {PROD} is transitioning at this time. Please try the request again later.")


@pytest.fixture
def e2e(e2e: E2E) -> E2E:
    """prod alone, new attempts after one second (the default is two minutes)."""
    e2e.configure([{"resourceId": e2e.rid(PROD), "alias": "prod"}], APIM_DR_ATTEMPT_BACKOFF_SECONDS="1")
    return e2e


def inject(e2e: E2E, kind: str, answer: tuple[int, str, str], *, on: str, count: int | None) -> None:
    """The emulator answers ``count`` matching requests of prod (None: until cleared) with ``answer``:
    ``http`` instead of handling a request, ``op_failure`` as the end of an operation it accepted."""
    status, code, message = answer
    e2e.admin.set_fault(kind, on=on, service=PROD, count=count, status=status, code=code, message=message)


def container(e2e: E2E) -> ContainerClient:
    assert e2e.stack.azurite is not None
    conn = e2e.stack.azurite.connection_string(e2e.stack.backup_account)
    return BlobServiceClient.from_connection_string(conn).get_container_client(CONTAINER)


def start_backup(e2e: E2E) -> str:
    response = e2e.http("POST", "/api/backups", json={"instance": "prod"})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def settled(e2e: E2E, job_id: str, timeout: float = 120) -> Job:
    """The job once it has ended and its follow-ups (manifest, RPO check, ...) have run."""
    (job,) = e2e.wait_settled([job_id], timeout=timeout)
    return job


def announcements(e2e: E2E, job_id: str) -> list[dict[str, Any]]:
    return [b for b in e2e.webhook.received if b.get("apimDr", {}).get("jobId") == job_id]


def catalogued(e2e: E2E) -> list[str]:
    response = e2e.http("GET", "/api/backups", params={"service": "prod"})
    assert response.status_code == 200, response.text
    return [b["blobName"] for b in response.json()["backups"]]


def operations(e2e: E2E) -> list[dict[str, Any]]:
    return [op for op in e2e.admin.operations(PROD) if op["kind"] == "backup"]


# -- issue 18: a job's end agrees with the operation's end ----------------------------------------------------

def test_a_poll_answered_service_locked_does_not_fail_a_backup_that_completes(e2e: E2E):
    inject(e2e, "http", LOCKED, on="poll", count=2)
    job_id = start_backup(e2e)
    job = settled(e2e, job_id)
    assert job.state is JobState.SUCCEEDED, (job.error_code, job.error_message)
    assert len(e2e.posts(PROD)) == 1 and len(operations(e2e)) == 1
    assert container(e2e).get_blob_client(job.blob_name).get_blob_tags()["apimdr_job"] == job_id
    assert catalogued(e2e) == [job.blob_name]
    assert announcements(e2e, job_id) == []


def test_polls_refused_until_after_the_end_let_the_instance_and_the_blob_decide(e2e: E2E):
    """Every poll answers ServiceLocked, past the operation's end: the idle instance and the written blob say it
    succeeded."""
    inject(e2e, "http", LOCKED, on="poll", count=None)
    job_id = start_backup(e2e)
    job = settled(e2e, job_id)
    e2e.admin.clear_faults()
    assert job.state is JobState.SUCCEEDED, (job.error_code, job.error_message)
    assert job.polls >= 3 and catalogued(e2e) == [job.blob_name]
    assert get_context().backups.get_json(CONTAINER, job.blob_name + ".manifest.json") is not None


def test_a_backup_finished_after_its_job_failed_is_adopted_by_the_watchdog(e2e: E2E):
    """ARM refuses the job's poll (403): the job fails, the operation runs on and writes its blob, unlabelled.
    The watchdog's next run finds it: polled again, labelled, adopted, its manifest written."""
    assert e2e.host is not None
    e2e.admin.set_fault("http", on="poll", service=PROD, count=1, status=403, code="AuthorizationFailed",
                        message="The client does not have authorization to perform action "
                                "'Microsoft.ApiManagement/service/operationresults/read'.")
    job_id = start_backup(e2e)
    (failed,) = e2e.wait_terminal([job_id])
    assert failed.state is JobState.FAILED and failed.error_code == "AuthorizationFailed" and failed.unsettled
    assert len(announcements(e2e, job_id)) == 1
    # The operation ends on its own and writes the backup, which no job has labelled: invisible to the catalog.
    eventually(lambda: container(e2e).get_blob_client(failed.blob_name).exists(), timeout=30)
    assert catalogued(e2e) == []

    record = e2e.host.fire_timer("requeue_stalled_jobs")
    assert record.succeeded, record.error
    adopted = eventually(lambda: (j := e2e.job(job_id)).state is JobState.SUCCEEDED and not j.follow_ups and j,
                         timeout=60)
    assert adopted.error_code == "AuthorizationFailed"  # what happened to the job stays on record
    assert catalogued(e2e) == [failed.blob_name]
    assert get_context().backups.get_json(CONTAINER, failed.blob_name + ".manifest.json") is not None
    assert len(e2e.posts(PROD)) == 1 and len(announcements(e2e, job_id)) == 1
    assert e2e.host.fire_timer("requeue_stalled_jobs").succeeded
    assert e2e.job(job_id).state is JobState.SUCCEEDED


# -- issue 21: a failed backup tries again --------------------------------------------------------------------

def test_an_operation_failing_twice_with_an_internal_error_then_succeeding(e2e: E2E):
    """One job, three operations (a POST and a blob name each), no announcement; the job shows every attempt."""
    inject(e2e, "op_failure", INTERNAL, on="backup", count=2)
    job_id = start_backup(e2e)
    job = settled(e2e, job_id)
    assert job.state is JobState.SUCCEEDED, (job.error_code, job.error_message)
    ops = operations(e2e)
    assert len(ops) == 3 and len(e2e.posts(PROD)) == 3
    assert [op["status"] for op in ops].count("Succeeded") == 1
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.FAILED, AttemptOutcome.FAILED,
                                                AttemptOutcome.SUCCEEDED]
    assert [a.error_code for a in job.attempts] == ["InternalServerError", "InternalServerError", None]
    names = [a.blob_name for a in job.attempts]
    assert len(set(names)) == 3 and {op["parameters"]["backupName"] for op in ops} == set(names)
    assert job.blob_name == names[-1] and catalogued(e2e) == [names[-1]]
    assert announcements(e2e, job_id) == []
    view = e2e.http("GET", f"/api/operations/{job_id}").json()
    assert view["attempt"] == 3 and view["maxAttempts"] == 3
    assert [(a["number"], a["outcome"], (a["error"] or {}).get("kind")) for a in view["attempts"]] == [
        (1, "failed", "transient"), (2, "failed", "transient"), (3, "succeeded", None)]


def test_an_operation_failing_every_attempt_is_announced_once_with_every_error(e2e: E2E):
    inject(e2e, "op_failure", INTERNAL, on="backup", count=3)
    job_id = start_backup(e2e)
    job = settled(e2e, job_id)
    assert job.state is JobState.FAILED and job.error_code == "InternalServerError"
    assert len(operations(e2e)) == 3 and len(job.attempts) == 3
    (announced,) = announcements(e2e, job_id)
    assert [a["error"]["code"] for a in announced["apimDr"]["attempts"]] == ["InternalServerError"] * 3
    assert "Attempts: 3 of 3" in announced["text"] and "new attempts" in announced["text"]
    assert catalogued(e2e) == []
    # Later messages for the ended job announce nothing more.
    assert e2e.host is not None and e2e.host.fire_timer("requeue_stalled_jobs").succeeded
    assert len(announcements(e2e, job_id)) == 1


def test_a_permanent_failure_fails_at_once(e2e: E2E):
    e2e.admin.fail_next_operation(PROD, code="BackupFailed", message=(
        f"Backup failed: the system-assigned managed identity of API Management service '{PROD}' is not authorized "
        "to access storage account 'apimdrbackups' (403 AuthorizationPermissionMismatch)."))
    job_id = start_backup(e2e)
    job = settled(e2e, job_id)
    assert job.state is JobState.FAILED and job.error_code == "BackupFailed"
    assert len(operations(e2e)) == 1 and len(job.attempts) == 1 and job.attempts[0].transient is False
    (announced,) = announcements(e2e, job_id)
    assert "Storage Blob Data Contributor" in announced["text"]


def test_max_attempts_per_instance(e2e: E2E):
    e2e.configure([{"resourceId": e2e.rid(PROD), "alias": "prod", "maxAttempts": 1}],
                  APIM_DR_ATTEMPT_BACKOFF_SECONDS="1")
    inject(e2e, "op_failure", INTERNAL, on="backup", count=1)
    job = settled(e2e, start_backup(e2e))
    assert job.state is JobState.FAILED and len(operations(e2e)) == 1 and job.max_attempts == 1


# -- issue 18: logs from pool threads reach Azure ------------------------------------------------------------

def _lines(messages: list[str], prefix: str) -> list[dict[str, Any]]:
    return [json.loads(m[len(prefix):]) for m in messages if m.startswith(prefix)]


def test_a_timers_rpo_and_retention_lines_are_kept_with_its_invocation(e2e: E2E):
    """check_rpo and prune_backups work on several instances in pool threads; the host keeps their lines only if
    those threads carry the invocation ID (the real worker drops them otherwise, and so does the stand-in)."""
    assert e2e.host is not None
    e2e.configure([{"resourceId": e2e.rid(PROD), "alias": "prod", "keepLast": 1, "maxAgeDays": 1},
                   {"resourceId": e2e.rid(PREMIUM), "keepLast": 1, "maxAgeDays": 1}])
    older = settled(e2e, start_backup(e2e))
    e2e.admin.advance_clock(3 * DAY)
    newer = settled(e2e, start_backup(e2e))
    assert older.state is newer.state is JobState.SUCCEEDED

    dropped_before = len(e2e.host.dropped_logs)
    rpo = e2e.host.fire_timer("check_rpo")
    assert rpo.succeeded, rpo.error
    retention = e2e.host.fire_timer("prune_backups")
    assert retention.succeeded, retention.error
    dropped = [d.message for d in e2e.host.dropped_logs[dropped_before:]]
    assert not [m for m in dropped if m.startswith(("APIMDR_RPO ", "APIMDR_RETENTION "))], dropped

    rpo_lines = _lines([r.message for r in rpo.logs], "APIMDR_RPO ")
    # prod's state was recorded by the check after its backups; premium, never backed up, is new to the monitor.
    assert [(line["serviceName"], line["state"]) for line in rpo_lines] == [(PREMIUM, "at-risk")]
    assert any(r.thread.startswith("rpo") for r in rpo.logs if r.message.startswith("APIMDR_RPO ")), \
        "the lines come from the monitor's pool threads"
    retention_lines = _lines([r.message for r in retention.logs], "APIMDR_RETENTION ")
    deleted = [line for line in retention_lines if line.get("outcome") == "deleted"]
    assert [line["blobName"] for line in deleted] == [older.blob_name]
    assert any(line.get("outcome") == "summary" for line in retention_lines)
