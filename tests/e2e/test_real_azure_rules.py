"""Issue 8 on local Azure: what passed locally but would fail in Azure, each held to Azure's rule.

ARM or a token unreachable, tag-discovered instances everywhere, backups ageing on one clock
shared by the app and the emulator.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from dr_core.kernel.phases import JobState

from .conftest import E2E, PREMIUM, PROD, PROJECT_ROOT, STANDBY, V2
from .test_restore_flow import backup_container, take_backup

pytestmark = pytest.mark.e2e

DAY = 86400


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def no_traceback(*outputs: str) -> None:
    for text in outputs:
        assert "Traceback" not in text, text


# -- ARM or the identity unreachable -----------------------------------------------------------------

def test_arm_unreachable_catalog_still_lists_and_restore_names_the_failed_check(e2e: E2E):
    take_backup(e2e)
    e2e.configure(APIM_DR_ARM_ENDPOINT=f"https://127.0.0.1:{closed_port()}")

    listed = e2e.http("GET", "/api/backups", params={"service": "prod"})
    assert listed.status_code == 200, listed.text
    assert len(listed.json()["backups"]) == 1 and "warnings" in listed.json()

    dry = e2e.http("POST", "/api/restores", json={"target": STANDBY, "dryRun": True})
    assert dry.status_code == 200, dry.text
    failed = [c for c in dry.json()["plan"]["preflight"] if c["outcome"] == "fail"]
    assert [c["name"] for c in failed] == ["target-exists"]
    assert "APIM_DR_ARM_ENDPOINT" in failed[0]["remediation"]

    real = e2e.http("POST", "/api/restores", json={"target": STANDBY})
    assert real.status_code == 503 and real.json()["error"]["code"] == "PreflightFailed"

    cli = _cli_with(e2e, {"APIM_DR_ARM_ENDPOINT": f"https://127.0.0.1:{closed_port()}"}, "preflight", "--target",
                    STANDBY)
    assert cli.returncode == 3 and "target-exists" in cli.stdout
    no_traceback(cli.stdout, cli.stderr)


def test_identity_token_failure_is_a_named_503_and_exit_code_6(e2e: E2E):
    take_backup(e2e)
    e2e.configure(IDENTITY_HEADER="wrong-secret")  # the identity endpoint answers 401: no token at all
    listed = e2e.http("GET", "/api/backups", params={"service": "prod"})
    assert listed.status_code == 503, listed.text
    error = listed.json()["error"]
    assert error["code"] == "TokenUnavailable" and "AZURE_CLIENT_ID" in error["remediation"]
    assert "wrong-secret" not in listed.text

    dry = e2e.http("POST", "/api/restores", json={"target": STANDBY, "dryRun": True})
    assert dry.status_code == 200
    failed = {c["name"] for c in dry.json()["plan"]["preflight"] if c["outcome"] == "fail"}
    assert {"target-exists", "backup-exists"} <= failed

    cli = _cli_with(e2e, {"IDENTITY_HEADER": "wrong-secret"}, "backups", "list", "--service", "prod")
    assert cli.returncode == 6, cli.stdout + cli.stderr
    assert "TokenUnavailable" in cli.stdout or "no token" in cli.stdout
    no_traceback(cli.stdout, cli.stderr)


def test_app_storage_unreachable_cli_exits_6_without_a_traceback(e2e: E2E):
    port = closed_port()
    broken = (f"DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=a2V5;"
              f"TableEndpoint=https://127.0.0.1:{port}/devstoreaccount1;"
              f"QueueEndpoint=https://127.0.0.1:{port}/devstoreaccount1;"
              f"BlobEndpoint=https://127.0.0.1:{port}/devstoreaccount1")
    cli = _cli_with(e2e, {"AzureWebJobsStorage": broken}, "status",
                    "backup-20261130T020000Z-apim-contoso-prod-00000000")
    assert cli.returncode == 6, cli.stdout + cli.stderr
    assert "StorageUnreachable" in cli.stdout or "could not be reached" in cli.stdout
    no_traceback(cli.stdout, cli.stderr)


def test_deeply_nested_json_is_a_400(e2e: E2E):
    for path in ("/api/backups", "/api/restores"):
        response = e2e.http("POST", path, data=b"[" * 10_000)
        assert response.status_code == 400, response.text
        assert "nested" in response.json()["error"]["message"]


def _cli_with(e2e: E2E, overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIM_DR_", "AzureWebJobsStorage"))}
    env.update(e2e.settings())
    env.update(overrides)
    return subprocess.run([sys.executable, "-m", "dr_core", *args], cwd=PROJECT_ROOT, env=env, text=True,
                          capture_output=True, timeout=180)


# -- instances found by tag discovery ----------------------------------------------------------------

def test_discovered_instances_are_backed_up_listed_and_restored(e2e: E2E):
    e2e.configure(instances=[], APIM_DR_DISCOVERY_SUBSCRIPTIONS=e2e.stack.subscription_id)
    take_backup(e2e, PREMIUM)  # tagged apim-dr:backup=true in the seed, listed nowhere
    listed = e2e.http("GET", "/api/backups", params={"service": PREMIUM})
    assert listed.status_code == 200, listed.text
    assert [b["restorable"] for b in listed.json()["backups"]] == [True]

    response = e2e.http("POST", "/api/restores", json={"target": PREMIUM, "confirm": PREMIUM})
    assert response.status_code == 202, response.text
    (job,) = e2e.wait_terminal([response.json()["operation"]["id"]])
    assert job.state is JobState.SUCCEEDED, job.error_message

    cli = _cli_with(e2e, {"APIM_DR_INSTANCES": "[]", "APIM_DR_DISCOVERY_SUBSCRIPTIONS": e2e.stack.subscription_id},
                    "--json", "backups", "list", "--service", PREMIUM)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert len(json.loads(cli.stdout)["backups"]) == 1
    # An instance that is neither listed nor tagged stays unknown everywhere.
    assert e2e.http("GET", "/api/backups", params={"service": STANDBY}).status_code == 404
    assert e2e.http("POST", "/api/backups", json={"instance": V2 + "x"}).status_code == 404


# -- one clock for the app and the emulator ----------------------------------------------------------

def test_backups_age_for_the_app_and_the_emulator_alike(e2e: E2E):
    take_backup(e2e)
    e2e.admin.advance_clock(29 * DAY + 12 * 3600)  # 29.5 days: inside the default 24 h margin
    entry = e2e.http("GET", "/api/backups", params={"service": "prod"}).json()["backups"][0]
    assert entry["restorable"] is False and "margin" in entry["notRestorableBecause"]
    refused = e2e.http("POST", "/api/restores", json={"target": STANDBY})
    assert refused.status_code == 422
    assert "backup-not-expired" in {c["name"] for c in refused.json()["plan"]["preflight"] if c["outcome"] == "fail"}

    # Without the margin the app lets it through, and the emulator (APIM) still accepts it.
    e2e.configure(APIM_DR_EXPIRY_MARGIN_HOURS="0")
    accepted = e2e.http("POST", "/api/restores", json={"target": STANDBY})
    assert accepted.status_code == 202, accepted.text
    (job,) = e2e.wait_terminal([accepted.json()["operation"]["id"]])
    assert job.state is JobState.SUCCEEDED, job.error_message

    e2e.admin.advance_clock(DAY)  # 30.5 days: expired for both
    entry = e2e.http("GET", "/api/backups", params={"service": "prod"}).json()["backups"][0]
    assert entry["restorable"] is False and "expired" in entry["notRestorableBecause"]
    assert e2e.http("POST", "/api/restores", json={"target": STANDBY}).status_code == 422


# -- a lost answer never starts a second operation ------------------------------------------------------

@pytest.mark.parametrize("then", ["close", 503])
def test_a_lost_answer_to_the_backup_post_starts_exactly_one_backup(e2e: E2E, then: str | int):
    e2e.admin.drop_answer("backup", then=then, service=PROD)
    response = e2e.http("POST", "/api/backups", json={"instance": "prod"})
    assert response.status_code == 202, response.text
    (job,) = e2e.wait_terminal([response.json()["id"]], timeout=120)
    assert job.state is JobState.SUCCEEDED, (job.error_code, job.error_message)
    operations = [o for o in e2e.admin.operations(PROD) if o.get("kind") == "backup"]
    assert len(operations) == 1, operations
    assert len(e2e.posts(PROD)) == 1  # retries are off for the POST; the worker checked the instance instead
    assert job.unanswered_posts == 1 and job.blob_name


@pytest.mark.parametrize("then", ["close", 503])
def test_a_lost_answer_to_the_restore_post_never_restores_twice(e2e: E2E, then: str | int):
    take_backup(e2e)
    e2e.admin.drop_answer("restore", then=then, service=STANDBY)
    response = e2e.http("POST", "/api/restores", json={"target": STANDBY})
    assert response.status_code == 202, response.text
    (job,) = e2e.wait_terminal([response.json()["operation"]["id"]], timeout=120)
    operations = [o for o in e2e.admin.operations(STANDBY) if o.get("kind") == "restore"]
    assert len(operations) == 1, operations
    assert len(e2e.posts(STANDBY, "restore")) == 1
    # A restore leaves no artefact apim-dr can read, so it says it cannot tell instead of restoring again.
    assert job.state is JobState.FAILED and job.error_code == "RestoreOutcomeUnknown"
    assert "activity log" in (job.remediation or "") or "configuration" in (job.error_message or "")


# -- what Blob Storage enforces: immutability and the roles infra/ grants ---------------------------

def test_a_backup_into_an_immutable_container_is_catalogued_by_its_tags(e2e: E2E):
    front = e2e.stack.front
    assert front is not None
    container = backup_container(e2e)
    if not container.exists():
        container.create_container()
    front.admin.set_container_policy(e2e.stack.backup_account, "apim-backups", retention_days=7)
    backup = take_backup(e2e)
    blob = backup["backup"]["blobName"]
    seen = front.admin.requests(path_contains=blob.split("/")[-1])
    by_operation = {r["operation"]: (r["status"], r["errorCode"]) for r in seen if r["auth"] == "bearer"}
    # Azure's rule: tags are allowed under WORM, metadata is not; the backup is complete either way.
    assert by_operation["SetBlobTags"][0] == 204
    assert by_operation["SetBlobMetadata"] == (409, "BlobImmutableDueToPolicy")
    assert "source_resource_id" not in container.get_blob_client(blob).get_blob_properties().metadata
    listed = e2e.http("GET", "/api/backups", params={"service": "prod"}).json()["backups"]
    assert [b["blobName"] for b in listed] == [blob] and listed[0]["restorable"] is True


def test_the_roles_infra_grants_are_enforced_on_the_backup_account(e2e: E2E):
    front = e2e.stack.front
    assert front is not None
    take_backup(e2e)
    table = front.admin.roles()
    app = e2e.stack.function_app_principal_id
    narrowed = {oid: entries for oid, entries in _table(table).items()}
    narrowed[app] = [a for a in narrowed[app] if not any("filter" in d for d in a.get("dataActions", []))]
    front.admin.set_roles(narrowed)
    listed = e2e.http("GET", "/api/backups", params={"service": "prod"})
    assert listed.status_code == 503, listed.text
    assert listed.json()["error"]["code"] == "StorageRequestFailed" and "403" in listed.json()["error"]["message"]


def _table(state: object) -> dict[str, list[dict]]:
    table = state.get("roles", state) if isinstance(state, dict) else {}
    return {oid: [dict(a) for a in entries] for oid, entries in table.items()}
