"""Incident restore end to end: HTTP restore with preflight, the catalog, concurrency, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta

import pytest
from azure.storage.blob import BlobServiceClient, CorsRule

from dr_core.kernel.phases import JobState

from .conftest import CONSUMPTION, DEV, E2E, PREMIUM, PROD, PROJECT_ROOT, STANDBY, V2, eventually

pytestmark = pytest.mark.e2e

CONFIG_KEYS = ("apis", "products", "subscriptions", "users", "namedValues")


def configuration(e2e: E2E, name: str) -> dict:
    service = e2e.admin.service(name)
    config = service.get("configuration", service)
    return {k: config.get(k) for k in CONFIG_KEYS}


def take_backup(e2e: E2E, instance: str = "prod") -> dict:
    response = e2e.http("POST", "/api/backups", json={"instance": instance})
    assert response.status_code == 202, response.text
    (job,) = e2e.wait_terminal([response.json()["id"]])
    assert job.state is JobState.SUCCEEDED, job.error_message
    return response.json()


def restore_posts(e2e: E2E) -> list[dict]:
    return [r for r in e2e.admin.requests(method="POST") if r["path"].rstrip("/").endswith("/restore")]


def backup_container(e2e: E2E):
    assert e2e.stack.azurite is not None
    conn = e2e.stack.azurite.connection_string(e2e.stack.backup_account)
    return BlobServiceClient.from_connection_string(conn).get_container_client("apim-backups")


def test_restore_latest_backup_of_primary_into_standby(e2e: E2E):
    take_backup(e2e)
    at_backup = configuration(e2e, PROD)
    assert configuration(e2e, STANDBY) != at_backup
    # Change the primary after the backup: the standby must get the backup-time configuration.
    e2e.admin.update_service(PROD, configuration={**at_backup, "apis": at_backup["apis"][:1]})
    hostnames_before = e2e.admin.service(STANDBY).get("hostnameConfigurations")

    response = e2e.http("POST", "/api/restores", json={"target": STANDBY})
    assert response.status_code == 202, response.text
    assert response.headers["Location"].endswith(f"/api/operations/{response.json()['operation']['id']}")
    checks = {c["name"]: c["outcome"] for c in response.json()["plan"]["preflight"]}
    assert set(checks.values()) <= {"pass", "warn"} and len(checks) == 9
    (job,) = e2e.wait_terminal([response.json()["operation"]["id"]])
    assert job.state is JobState.SUCCEEDED, job.error_message
    status = e2e.http("GET", f"/api/operations/{job.job_id}").json()
    assert status["state"] == "Succeeded" and status["kind"] == "restore" and status["sourceInstance"].endswith(PROD)
    assert configuration(e2e, STANDBY) == at_backup
    assert e2e.admin.service(STANDBY).get("hostnameConfigurations") == hostnames_before
    assert len(restore_posts(e2e)) == 1


def test_catalog_lists_backups_with_restorability(e2e: E2E):
    take_backup(e2e)
    response = e2e.http("GET", "/api/backups", params={"service": "prod"})
    assert response.status_code == 200
    (entry,) = response.json()["backups"]
    assert entry["restorable"] is True and entry["sku"] == "Standard" and entry["sizeBytes"] > 0
    created = datetime.fromisoformat(entry["createdAt"].replace("Z", "+00:00"))
    assert datetime.fromisoformat(entry["expiresAt"].replace("Z", "+00:00")) - created == timedelta(days=30)
    assert e2e.http("GET", "/api/backups").status_code == 400
    assert e2e.http("GET", "/api/backups", params={"service": "nope"}).status_code == 404


def _age_backup(e2e: E2E, blob_name: str, *, days: float) -> None:
    """Age every backup by moving the one clock the app and the emulator share."""
    assert backup_container(e2e).get_blob_client(blob_name).exists()
    e2e.admin.advance_clock(days * 86400)


REFUSALS = ["backup-missing", "backup-expired", "backup-expiring", "tier-mismatch", "tier-cannot-restore",
            "target-busy", "target-without-identity", "cors", "restore-in-progress", "target-is-primary"]


@pytest.mark.parametrize("case", REFUSALS)
def test_each_preflight_refusal_sends_nothing_to_arm(e2e: E2E, case: str):
    standby = STANDBY
    if case == "tier-mismatch":
        standby = PREMIUM
    elif case == "tier-cannot-restore":
        standby = V2
    elif case == "target-without-identity":
        standby = DEV
    e2e.configure([{"resourceId": e2e.rid(PROD), "alias": "prod", "standby": e2e.rid(standby)}])
    request = {"target": standby}
    expected_check, expected_status = {
        "backup-missing": ("backup-exists", 422), "backup-expired": ("backup-exists", 422),
        "backup-expiring": ("backup-exists", 422), "tier-mismatch": ("backup-exists", 422),
        "tier-cannot-restore": ("target-tier-supports-restore", 422), "target-busy": ("target-idle", 409),
        "target-without-identity": ("target-has-identity", 422), "cors": ("backup-account-cors-disabled", 422),
        "restore-in-progress": ("no-restore-in-progress", 409),
        "target-is-primary": ("target-is-not-source-or-primary", 409),
    }[case]
    cors_service = None
    if case != "backup-missing":
        backup = take_backup(e2e)
        if case == "backup-expired":
            _age_backup(e2e, backup["backup"]["blobName"], days=31)
        elif case == "backup-expiring":
            _age_backup(e2e, backup["backup"]["blobName"], days=29.5)
        elif case == "tier-cannot-restore":
            request["backup"] = backup["backup"]["blobName"]  # "latest" would already refuse on the tier
        elif case == "target-busy":
            e2e.admin.update_service(STANDBY, provisioningState="Updating")
        elif case == "cors":
            assert e2e.stack.azurite is not None
            cors_service = BlobServiceClient.from_connection_string(
                e2e.stack.azurite.connection_string(e2e.stack.backup_account))
            cors_service.set_service_properties(cors=[CorsRule(["https://portal.contoso.com"], ["GET", "PUT"])])
        elif case == "restore-in-progress":
            e2e.admin.set_op_duration(120, service=STANDBY)
            first = e2e.http("POST", "/api/restores", json={"target": STANDBY})
            assert first.status_code == 202, first.text
            # The first restore's own POST is sent by the worker after the 202: wait for it before
            # clearing the log, so only what the refused request does is counted.
            first_id = first.json()["operation"]["id"]
            eventually(lambda: e2e.job(first_id).state is JobState.RUNNING)
            e2e.admin.clear_requests()
        elif case == "target-is-primary":
            request = {"target": "prod"}
    try:
        response = e2e.http("POST", "/api/restores", json=request)
    finally:
        if cors_service is not None:
            cors_service.set_service_properties(cors=[])
    assert response.status_code == expected_status, response.text
    body = response.json()
    failed = {c["name"] for c in body["plan"]["preflight"] if c["outcome"] == "fail"}
    assert expected_check in failed, body["plan"]["preflight"]
    assert body["error"]["code"] == "PreflightFailed" and body["error"]["remediation"]
    assert restore_posts(e2e) == [], "a refused restore must not reach ARM"
    if case == "target-is-primary":
        # The same request, confirmed by the target's name, passes that check.
        confirmed = e2e.http("POST", "/api/restores", json={**request, "confirm": PROD, "dryRun": True})
        checks = {c["name"]: c["outcome"] for c in confirmed.json()["plan"]["preflight"]}
        assert checks["target-is-not-source-or-primary"] == "pass"


def test_two_concurrent_restores_into_one_target(e2e: E2E):
    take_backup(e2e)
    e2e.admin.set_op_duration(6, service=STANDBY)
    results: list[int] = []
    barrier = threading.Barrier(2)

    def post() -> None:
        barrier.wait()
        results.append(e2e.http("POST", "/api/restores", json={"target": STANDBY}).status_code)

    threads = [threading.Thread(target=post) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [202, 409]
    restores = [j for j in e2e.all_jobs() if j.kind.value == "restore" and j.state is not JobState.REFUSED]
    e2e.wait_terminal([j.job_id for j in restores])
    assert len([r for r in restore_posts(e2e) if r["status"] == 202]) == 1


def test_dry_run_writes_nothing(e2e: E2E):
    take_backup(e2e)
    before = [j.job_id for j in e2e.all_jobs()]
    response = e2e.http("POST", "/api/restores", json={"target": STANDBY, "dryRun": True})
    assert response.status_code == 200, response.text
    plan = response.json()["plan"]
    assert plan["target"].endswith(STANDBY) and plan["source"].endswith(PROD)
    assert plan["backup"]["blobName"].startswith(f"{PROD}/") and plan["storage"]["accessType"]
    assert [j.job_id for j in e2e.all_jobs()] == before
    assert restore_posts(e2e) == []


@pytest.mark.parametrize(("body", "field"), [
    ({}, "target"), ({"target": 5}, "target"), ({"target": STANDBY, "dryRun": "yes"}, "dryRun"),
    ({"target": STANDBY, "backup": "../../secrets"}, "backup"), ({"target": STANDBY, "nope": 1}, "nope"),
    ({"target": "x" * 10_000}, "target"), ({"target": STANDBY, "confirm": ["a"]}, "confirm"),
])
def test_malformed_restore_requests_name_each_bad_field(e2e: E2E, body: dict, field: str):
    response = e2e.http("POST", "/api/restores", json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"].get("fields", {}) or field in response.json()["error"]["message"]


@pytest.mark.parametrize("raw", [b"", b"{", b"null", b"\xff\xfe", b'{"target": "' + b"y" * 80_000 + b'"}'])
def test_hostile_restore_bodies_never_5xx(e2e: E2E, raw: bytes):
    response = e2e.http("POST", "/api/restores", data=raw)
    assert 400 <= response.status_code < 500, response.text
    assert "error" in response.json()


def test_unknown_targets_are_404(e2e: E2E):
    for target in (CONSUMPTION, "/subscriptions/00000000-0000-0000-0000-000000000009/resourceGroups/r/providers/"
                   "Microsoft.ApiManagement/service/elsewhere"):
        response = e2e.http("POST", "/api/restores", json={"target": target})
        assert response.status_code == 404, response.text


def _cli(e2e: E2E, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIM_DR_", "AzureWebJobsStorage"))}
    env.update(e2e.settings())
    return subprocess.run([sys.executable, "-m", "dr_core", *args], cwd=PROJECT_ROOT, env=env, text=True,
                          capture_output=True, timeout=180)


def test_cli_restore_with_wait_and_refusal_exit_codes(e2e: E2E):
    take_backup(e2e)
    listed = _cli(e2e, "--json", "backups", "list", "--service", "prod")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["backups"][0]["restorable"] is True

    done = _cli(e2e, "restore", "--target", STANDBY, "--wait", "--takeover-after", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Succeeded" in done.stdout and "restore" in done.stdout

    refused = _cli(e2e, "restore", "--target", "prod", "--wait")
    assert refused.returncode == 3
    assert "target-is-not-source-or-primary" in refused.stdout and "confirm" in refused.stdout

    missing = _cli(e2e, "restore", "--target", "no-such-instance")
    assert missing.returncode == 5

    bad_settings = subprocess.run([sys.executable, "-m", "dr_core", "backups", "list", "--service", "prod"],
                                  cwd=PROJECT_ROOT, text=True, capture_output=True, timeout=60,
                                  env={**{k: v for k, v in os.environ.items() if not k.startswith("APIM_DR_")},
                                       "APIM_DR_INSTANCES": "[]"})
    assert bad_settings.returncode == 4 and "APIM_DR_BACKUP_STORAGE_ACCOUNT" in bad_settings.stdout

