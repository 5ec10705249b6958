"""Hosts in their own processes: a worker killed mid-step, the identity path end to end, and the CLI alone.

No in-process host runs in this module, so the subprocess hosts are the only consumers of the queue.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
from azure.storage.blob import BlobServiceClient

from dr_core.kernel.phases import JobState
from emulator.funchost import FunctionsHostProcess
from emulator.stack import LocalAzure

from .conftest import E2E, PROD, PROJECT_ROOT, Webhook, eventually, make_harness

pytestmark = pytest.mark.e2e


@pytest.fixture
def bare(stack: LocalAzure, webhook: Webhook) -> Iterator[E2E]:
    """Clean state and settings, no host: each test starts the processes it needs."""
    yield make_harness(stack, None, webhook)


def _post_backup(host: FunctionsHostProcess, instance: str = "prod") -> requests.Response:
    assert host.http_url
    return requests.post(host.http_url + "/api/backups", json={"instance": instance}, timeout=60,
                         headers={"x-functions-key": next(iter(host.function_keys.values()))})


def test_worker_killed_between_post_and_record_starts_exactly_one_backup(bare: E2E, tmp_path):
    settings = bare.settings()
    crashing = FunctionsHostProcess(PROJECT_ROOT, settings, queue_lease=3, workdir=tmp_path / "first",
                                    crash_at=["after:dr_core.azure.arm:ApimOperations.begin_backup"])
    crashing.start()
    try:
        response = _post_backup(crashing)
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        assert crashing.wait(timeout=60) == 137, "\n".join(crashing.lines[-20:])
    finally:
        crashing.stop()
    # The POST reached ARM, the Location was never recorded.
    assert len(bare.posts(PROD)) == 1
    job = bare.job(job_id)
    assert job.state is JobState.STARTING and job.operation_url is None

    survivor = FunctionsHostProcess(PROJECT_ROOT, settings, queue_lease=3, workdir=tmp_path / "second")
    survivor.start()
    try:
        (done,) = bare.wait_terminal([job_id], timeout=120)
    finally:
        survivor.stop()
    assert done.state is JobState.SUCCEEDED, done.error_message
    assert len(bare.posts(PROD)) == 1, "a redelivered start must not send a second POST .../backup"
    assert bare.stack.azurite is not None
    conn = bare.stack.azurite.connection_string(bare.stack.backup_account)
    blob = BlobServiceClient.from_connection_string(conn).get_blob_client("apim-backups", done.blob_name)
    assert blob.get_blob_tags()["apimdr_job"] == job_id


def test_identity_mode_end_to_end(bare: E2E, tmp_path):
    """App storage through identity-based connections (tokens from the emulator, Azurite --oauth basic)."""
    settings = bare.stack.app_settings(
        [{"resourceId": bare.rid(PROD), "alias": "prod"}], storage="identity",
        extra={"APIM_DR_MAX_POLL_DELAY_SECONDS": "2", "APIM_DR_START_LEASE_SECONDS": "2"})
    assert "AzureWebJobsStorage" not in settings
    host = FunctionsHostProcess(PROJECT_ROOT, settings, queue_lease=10, workdir=tmp_path / "identity")
    host.start()
    try:
        response = _post_backup(host)
        assert response.status_code == 202, response.text
        http_url = host.http_url
        assert http_url
        status_path = response.headers["Location"].split(http_url, 1)[1]

        def finished() -> dict | None:
            body = requests.get(http_url + status_path, timeout=30,
                                headers={"x-functions-key": next(iter(host.function_keys.values()))}).json()
            return body if body["state"] in ("Succeeded", "Failed", "TimedOut") else None

        body = eventually(finished, timeout=120, interval=1)
    finally:
        host.stop()
    assert body["state"] == "Succeeded", body
    assert len(bare.posts(PROD)) == 1
    # Every ARM call carried a token of the Function App's user-assigned identity.
    principals = {r.get("principal") for r in bare.admin.requests() if "/service/" in r["path"]}
    uami = bare.stack._seed["functionApp"]["userAssignedIdentities"][0]["principalId"]
    assert principals == {uami}


def test_cli_backup_start_wait_without_function_app(bare: E2E):
    """The CLI moves the job itself when no Function App consumes the queue."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIM_DR_", "AzureWebJobsStorage"))}
    env.update(bare.settings())
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "dr_core", "--json", "backup", "start", "--instance", "prod",
                             "--wait", "--takeover-after", "0"], cwd=PROJECT_ROOT, env=env, text=True,
                            capture_output=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    operation = json.loads(result.stdout)["operation"]
    assert operation["state"] == "Succeeded" and operation["backup"]["sizeBytes"] > 0
    assert len(bare.posts(PROD)) == 1
    assert time.monotonic() - started < 120


def test_cli_progress_is_plain_lines_when_piped(bare: E2E):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIM_DR_", "AzureWebJobsStorage"))}
    env.update(bare.settings())
    result = subprocess.run([sys.executable, "-m", "dr_core", "backup", "start", "--instance", "prod", "--wait",
                             "--takeover-after", "0"], cwd=PROJECT_ROOT, env=env, text=True,
                            capture_output=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "\r" not in result.stdout and "\033[" not in result.stdout
    assert any("Running" in line and "elapsed" in line for line in lines)
    assert "Succeeded" in lines[-1]
