"""A host killed in the windows issue 18 names, in its own process (``--crash-at``), and a second host that carries on.

- right after a backup's ``Succeeded`` was saved, before its manifest: the follow-ups were saved with the
  state, so the redelivered message writes the manifest;
- between the webhook's answer and saving the "announced" flag: the announcement is sent again (at least
  once), with the same event ID, so a receiver drops the repeat.

No in-process host runs in this module: the subprocess hosts are the only consumers of the queues.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from dr_core.context import get_context
from dr_core.kernel.phases import JobState
from emulator.funchost import FunctionsHostProcess
from emulator.stack import LocalAzure

from .conftest import E2E, PROD, PROJECT_ROOT, Webhook, eventually, make_harness

pytestmark = pytest.mark.e2e

CONTAINER = "apim-backups"


@pytest.fixture
def bare(stack: LocalAzure, webhook: Webhook) -> Iterator[E2E]:
    """Clean state and settings, no host: each test starts the processes it needs."""
    yield make_harness(stack, None, webhook)


def _post_backup(host: FunctionsHostProcess) -> str:
    assert host.http_url
    response = requests.post(host.http_url + "/api/backups", json={"instance": "prod"}, timeout=60,
                             headers={"x-functions-key": next(iter(host.function_keys.values()))})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _killed_at(bare: E2E, workdir: Path, crash_at: str) -> str:
    """A host that dies at ``crash_at`` while it works on a new backup of prod; the backup's job ID."""
    crashing = FunctionsHostProcess(PROJECT_ROOT, bare.settings(), queue_lease=3, workdir=workdir,
                                    crash_at=[crash_at])
    crashing.start()
    try:
        job_id = _post_backup(crashing)
        assert crashing.wait(timeout=90) == 137, "\n".join(crashing.lines[-30:])
    finally:
        crashing.stop()
    return job_id


def _survivor(bare: E2E, workdir: Path) -> FunctionsHostProcess:
    survivor = FunctionsHostProcess(PROJECT_ROOT, bare.settings(), queue_lease=3, workdir=workdir)
    survivor.start()
    return survivor


def test_a_host_killed_after_succeeded_was_saved_leaves_follow_ups_the_next_host_finishes(bare: E2E, tmp_path):
    job_id = _killed_at(bare, tmp_path / "first", "before:dr_core.backup.manifest:ManifestRecorder.after")
    ended = bare.job(job_id)
    manifest = ended.blob_name + ".manifest.json"
    assert ended.state is JobState.SUCCEEDED and "ManifestRecorder" in ended.follow_ups
    assert get_context().backups.get_json(CONTAINER, manifest) is None

    survivor = _survivor(bare, tmp_path / "second")
    try:
        done = eventually(lambda: not (j := bare.job(job_id)).follow_ups and j, timeout=90, interval=0.5)
    finally:
        survivor.stop()
    written = get_context().backups.get_json(CONTAINER, manifest)
    assert written is not None and written["jobId"] == job_id
    assert done.state is JobState.SUCCEEDED and len(bare.posts(PROD)) == 1


def test_a_host_killed_between_the_webhook_and_the_announced_flag_repeats_the_announcement_with_one_id(
        bare: E2E, tmp_path):
    bare.admin.fail_next_operation(PROD, code="BackupFailed", message=(
        f"Backup failed: the system-assigned managed identity of API Management service '{PROD}' is not authorized "
        "to access storage account 'apimdrbackups' (403 AuthorizationPermissionMismatch)."))
    job_id = _killed_at(bare, tmp_path / "first", "after:dr_core.azure.notifier:WebhookNotifier.announce")
    first = bare.job(job_id)
    assert first.state is JobState.FAILED and not first.announced

    survivor = _survivor(bare, tmp_path / "second")
    try:
        eventually(lambda: bare.job(job_id).announced, timeout=90, interval=0.5)
    finally:
        survivor.stop()
    deliveries = [(h, b) for h, b in zip(bare.webhook.headers, bare.webhook.received, strict=True)
                  if b.get("apimDr", {}).get("jobId") == job_id]
    assert len(deliveries) == 2, "at least once: the killed host's delivery, then the survivor's"
    ids = {h["ce-id"] for h, _ in deliveries} | {b["apimDr"]["eventId"] for _, b in deliveries}
    assert len(ids) == 1, ids
    # A receiver that drops repeats by ID shows the failure once.
    seen: dict[str, dict] = {}
    for headers, body in deliveries:
        seen.setdefault(headers["ce-id"], body)
    assert len(seen) == 1 and "Storage Blob Data Contributor" in next(iter(seen.values()))["text"]
