"""Issue 11, RPO monitor and status on local Azure: the timer, the follower, GET /api/status and the CLI.

Backups age on the one clock the app and the APIM emulator share (``e2e.admin.advance_clock``);
announcements arrive at the test's webhook receiver.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from typing import Any

import pytest

from dr_core.jobs.job import Job
from dr_core.kernel.phases import JobState
from dr_core.posture.rpo import LOG_PREFIX

from .conftest import E2E, PROD, PROJECT_ROOT, STANDBY, eventually
from .test_real_azure_rules import closed_port, no_traceback

pytestmark = pytest.mark.e2e

HOUR = 3600
UPPER_CASE_RID = "(the instance's resource ID in upper case)"


def take_backup(e2e: E2E) -> Job:
    response = e2e.http("POST", "/api/backups", json={"instance": "prod"})
    assert response.status_code == 202, response.text
    (job,) = e2e.wait_settled([response.json()["id"]])  # its RPO check (a follower) has run too
    assert job.state is JobState.SUCCEEDED, job
    return job


def fire_rpo_timer(e2e: E2E) -> None:
    assert e2e.host is not None
    record = e2e.host.fire_timer("check_rpo")
    assert record.outcome == "success", record


def events(e2e: E2E, kind: str) -> list[dict[str, Any]]:
    return [a for a in e2e.webhook.received if a.get("apimDr", {}).get("event") == kind]


def prod_status(e2e: E2E) -> dict[str, Any]:
    response = e2e.http("GET", "/api/status")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["problems"] == []
    (view,) = [v for v in body["instances"] if v["serviceName"] == PROD]
    return view


def cli_in_process(*argv: str) -> tuple[int, str]:
    """The CLI on this process's context (its clock is linked to the emulator's, which a subprocess's is not)."""
    from dr_core.cli import main

    out = io.StringIO()
    return main(list(argv), stdout=out), out.getvalue()


def cli_subprocess(e2e: E2E, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIM_DR_", "AzureWebJobsStorage"))}
    env.update(e2e.settings(None, **extra))
    return subprocess.run([sys.executable, "-m", "dr_core", *args], cwd=PROJECT_ROOT, env=env, text=True,
                          capture_output=True, timeout=180)


def test_ok_at_risk_breached_and_recovered_each_announced_once(e2e: E2E, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="apim_dr.rpo")
    first = take_backup(e2e)
    fire_rpo_timer(e2e)
    view = prod_status(e2e)
    assert view["rpo"]["state"] == "ok" and view["rpo"]["targetHours"] == 26
    assert view["rpo"]["newestRestorable"]["blobName"] == first.blob_name
    assert [b["blobName"] for b in view["backups"]] == [first.blob_name] and view["backups"][0]["restorable"]
    assert view["standby"]["instance"] == e2e.rid(STANDBY) and view["standby"]["sync"] is False
    assert view["openFailures"] == [] and view["lastDrill"] is None

    e2e.admin.advance_clock(22 * HOUR)
    fire_rpo_timer(e2e)
    assert prod_status(e2e)["rpo"]["state"] == "at-risk"
    assert events(e2e, "rpo-breached") == []

    e2e.admin.advance_clock(5 * HOUR)
    fire_rpo_timer(e2e)
    view = prod_status(e2e)
    assert view["rpo"]["state"] == "breached" and view["rpo"]["newestRestorable"]["ageHours"] >= 27
    (breach,) = events(e2e, "rpo-breached")
    assert breach["apimDr"]["instance"] == e2e.rid(PROD) and breach["apimDr"]["targetHours"] == 26
    assert "RPO breached for apim-contoso-prod" in breach["text"] and breach["apimDr"]["remediation"]
    code, text = cli_in_process("status")
    assert code == 1 and "breached" in text

    fire_rpo_timer(e2e)  # still breached: nothing new
    assert len(events(e2e, "rpo-breached")) == 1

    second = take_backup(e2e)  # the follower re-checks at once: no timer needed for the recovery
    eventually(lambda: len(events(e2e, "rpo-recovered")) == 1)
    fire_rpo_timer(e2e)
    assert len(events(e2e, "rpo-recovered")) == 1 and len(events(e2e, "rpo-breached")) == 1
    view = prod_status(e2e)
    assert view["rpo"]["state"] == "ok" and view["rpo"]["newestRestorable"]["blobName"] == second.blob_name
    assert [b["blobName"] for b in view["backups"]] == [second.blob_name, first.blob_name]
    code, text = cli_in_process("status", "--json")
    assert code == 0 and json.loads(text)["instances"][0]["rpo"]["state"] == "ok"

    lines = [json.loads(r.getMessage()[len(LOG_PREFIX):]) for r in caplog.records
             if r.getMessage().startswith(LOG_PREFIX) and PROD in r.getMessage()]
    assert [(line["previous"], line["state"]) for line in lines] == [
        (None, "ok"), ("ok", "at-risk"), ("at-risk", "breached"), ("breached", "ok")]


def test_open_failures_until_a_backup_succeeds_and_the_cli_table(e2e: E2E):
    e2e.admin.fail_next_operation(PROD, code="BackupFailed", message="storage account not reachable (access)")
    response = e2e.http("POST", "/api/backups", json={"instance": "prod"})
    (failed,) = e2e.wait_terminal([response.json()["id"]])
    assert failed.state is JobState.FAILED
    (open_failure,) = prod_status(e2e)["openFailures"]
    assert open_failure["jobId"] == failed.job_id and open_failure["errorCode"] == "BackupFailed"
    assert "Storage Blob Data Contributor" in open_failure["remediation"]

    e2e.admin.advance_clock(60)  # the next on-demand job gets its own slot
    take_backup(e2e)
    assert prod_status(e2e)["openFailures"] == []
    cli = cli_subprocess(e2e, "status")
    assert cli.returncode == 0, cli.stdout + cli.stderr
    header, row = cli.stdout.splitlines()[:2]
    assert header.startswith("instance") and "open failures" in header
    assert row.split()[:3] == ["prod", f"({PROD})", "ok"] and row.split()[-1] == "0"
    no_traceback(cli.stdout, cli.stderr)


def test_unreadable_catalog_is_unknown_not_breached(e2e: E2E):
    take_backup(e2e)
    fire_rpo_timer(e2e)
    e2e.configure(APIM_DR_BACKUP_BLOB_ENDPOINT=f"https://127.0.0.1:{closed_port()}/apimdrbackups")
    fire_rpo_timer(e2e)
    view = prod_status(e2e)
    assert view["rpo"]["state"] == "unknown" and "could not be read" in view["rpo"]["reason"]
    assert view["rpo"]["newestRestorable"] is not None, "the last known backup is kept"
    assert events(e2e, "rpo-breached") == [] and events(e2e, "rpo-recovered") == []
    code, text = cli_in_process("status")
    assert code == 6 and "unknown" in text


@pytest.mark.parametrize(("params", "status"), [
    ({"service": ""}, 400), ({"service": "x" * 401}, 400), ({"service": "x" * 20000}, 414),
    ({"service": "/subscriptions/x"}, 400),
    ({"service": "nope"}, 404), ({"service": STANDBY}, 404), ({"service": "<script>alert(1)</script>"}, 404),
    ({"service": "prod\r\nX-Injected: 1"}, 404), ({"service": "%00"}, 404),
    ({"service": "prod"}, 200), ({"service": UPPER_CASE_RID}, 200), ({}, 200),
])
def test_status_endpoint_inputs(e2e: E2E, params: dict[str, str], status: int):
    if params.get("service") == UPPER_CASE_RID:
        params = {"service": e2e.rid(PROD).upper()}
    response = e2e.http("GET", "/api/status", params=params)
    assert response.status_code == status, response.text
    if status == 414:
        return  # the host refuses a URL that long before the app sees it
    body = response.json()
    if status == 200:
        assert [v["serviceName"] for v in body["instances"]] == [PROD]
    else:
        assert body["error"]["code"] in ("BadRequest", "NotFound") and len(response.text) < 2000
        assert "X-Injected" not in response.headers


def test_status_needs_the_function_key(e2e: E2E):
    assert e2e.http("GET", "/api/status", key=False).status_code == 401
